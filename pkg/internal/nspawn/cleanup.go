package nspawn

// The run's cgroups, and cleaning up after a container: by PID and by
// cgroup, never by a process's name, so that containers of other tests
// (and of other test binaries) are never touched.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cgroupRoots are the hierarchies nspawn uses: the unified one (cgroup
// v2) and, on a hybrid host, the named systemd one of v1 too.
func cgroupRoots() ([]string, error) {
	if exists("/sys/fs/cgroup/cgroup.controllers") {
		return []string{"/sys/fs/cgroup"}, nil // cgroup v2 only
	}
	var roots []string
	if r := unifiedRoot(); r != "" {
		roots = append(roots, r)
	}
	if exists("/sys/fs/cgroup/systemd/cgroup.procs") {
		roots = append(roots, "/sys/fs/cgroup/systemd")
	}
	if len(roots) == 0 {
		return nil, errors.New("no cgroup hierarchy for systemd at /sys/fs/cgroup (neither unified nor name=systemd)")
	}
	return roots, nil
}

// unifiedRoot is where the cgroup v2 hierarchy is mounted, or "".
func unifiedRoot() string {
	for _, r := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if exists(filepath.Join(r, "cgroup.controllers")) {
			return r
		}
	}
	return ""
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// makeCgroups makes the run's cgroup, named after the machine, in each
// hierarchy.
func makeCgroups(name string) ([]string, error) {
	roots, err := cgroupRoots()
	if err != nil {
		return nil, err
	}
	var made []string
	for _, r := range roots {
		cg := filepath.Join(r, name)
		if err := os.Mkdir(cg, 0o755); err != nil {
			return made, fmt.Errorf("cgroup for %s: %w", name, err)
		}
		made = append(made, cg)
	}
	return made, nil
}

// cleanup kills the container and removes everything it made: its
// processes (init first, so that nspawn can undo its own mounts and
// files; then nspawn; then whatever is left in the cgroups), the cgroups
// and the root directory. On a failed test it logs the console's end.
func (c *Container) cleanup() {
	c.mu.Lock()
	c.stopping = true
	var b *boot
	if len(c.boots) > 0 {
		b = c.boots[len(c.boots)-1]
	}
	c.mu.Unlock()
	if b != nil && b.exit < 0 {
		if b.init > 0 {
			_ = syscall.Kill(b.init, syscall.SIGKILL)
		}
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(b.nspawn, syscall.SIGKILL)
		}
	}
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.t.Errorf("%s: systemd-nspawn did not exit after SIGKILL", c.Name)
	}
	var errs []error
	for _, cg := range c.cgroups {
		if err := removeCgroup(cg); err != nil {
			errs = append(errs, err)
		}
	}
	// nspawn's own files for the machine, if it was killed before it
	// removed them.
	os.RemoveAll("/run/systemd/nspawn/propagate/" + c.Name)
	if err := unmountRoot(filepath.Dir(c.Dir)); err != nil {
		errs = append(errs, err)
	} else if err := removeDir(filepath.Dir(c.Dir)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		c.t.Errorf("clean up %s: %v", c.Name, err)
	}
	if c.t.Failed() {
		b, _ := os.ReadFile(c.console)
		c.t.Logf("%s: the console's end:\n%s", c.Name, tail(b, 3000))
	}
}

// removeCgroup kills every process left in the cgroup tree, then removes
// it, deepest first.
func removeCgroup(cg string) error {
	for i := 0; i < 50; i++ {
		pids := procsBelow(cg)
		if len(pids) == 0 {
			break
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	removeBelow(cg)
	if err := os.Remove(cg); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove cgroup %s: %w (processes: %v)", cg, err, procsBelow(cg))
	}
	return nil
}

// procsBelow lists the PIDs in the cgroup and every cgroup below it.
func procsBelow(cg string) []int {
	var pids []int
	_ = filepath.WalkDir(cg, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(f); err == nil {
				pids = append(pids, p)
			}
		}
		return nil
	})
	return pids
}

// removeBelow removes the (empty) cgroups below cg, deepest first; cg
// itself stays.
func removeBelow(cg string) {
	var dirs []string
	_ = filepath.WalkDir(cg, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && path != cg {
			dirs = append(dirs, path)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Remove(dirs[i])
	}
}

// removeDir removes a container's directory, unless something is still
// mounted below it (RemoveAll would then delete through the mount, in
// the host's files).
func removeDir(dir string) error {
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			return fmt.Errorf("%s still mounted: not removing %s", f[4], dir)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

var sweepOnce sync.Once

// sweep removes what containers of test processes that died (killed by
// go test's timeout: no cleanup ran) left: cgroups and directories named
// dl-PID-N whose PID is no longer running.
func sweep() {
	roots, _ := cgroupRoots()
	for _, r := range roots {
		entries, _ := os.ReadDir(r)
		for _, e := range entries {
			if e.IsDir() && deadOwner(e.Name()) {
				_ = removeCgroup(filepath.Join(r, e.Name()))
			}
		}
	}
	entries, _ := os.ReadDir(os.TempDir())
	for _, e := range entries {
		if name, ok := strings.CutPrefix(e.Name(), "drainctl-nspawn-"); ok && e.IsDir() && deadOwner(name) {
			dir := filepath.Join(os.TempDir(), e.Name())
			if unmountRoot(dir) == nil {
				_ = removeDir(dir)
			}
		}
	}
}

// deadOwner tells whether name is "dl-PID-..." for a PID not running.
func deadOwner(name string) bool {
	parts := strings.Split(name, "-")
	if len(parts) < 3 || parts[0] != "dl" {
		return false
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
