// Package nspawn boots Debian 12 containers under systemd-nspawn for tests
// that need a real systemd as PID 1: the packaged agent under its unit,
// systemd's try-restart on upgrade, reboots.
//
// The host is not assumed to run systemd (no D-Bus, no machined): every
// container is started with --register=no --keep-unit from a cgroup of
// its own, entered with nsenter into its current init, and cleaned up by
// PID. A reboot inside (systemd-nspawn exits 133) starts it again on the
// same root, so a test sees a real reboot: a new boot ID, enabled units
// started again.
//
// Tests that use it need root and the tools (systemd-container,
// debootstrap); they skip without them, or fail when
// DRAINCTL_REQUIRE_KERNEL_TESTS=1 (nstest.Skip). Their TestMain calls
// Main (or RemoveCache), which removes the root's cache if the process
// made one for itself.
package nspawn

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// Options say how to boot a container; the zero value boots one with
// loopback only.
type Options struct {
	// NetNS is the path of a network namespace (/run/netns/NAME, as
	// `ip netns add` or nstest.New make) the container runs in, instead of
	// a private one with loopback only: the test wires it to others (a
	// load balancer's). The container gets CAP_NET_ADMIN in it, which
	// nspawn drops for a namespace it did not make. Its netfilter rules
	// and conntrack entries are flushed between boots: they would survive
	// a reboot of the container, never of a host.
	NetNS string
	// Bind and BindRO are host directories or files mounted into the
	// container, as nspawn's --bind and --bind-ro take them: "PATH" or
	// "HOST:CONTAINER" (e.g. a directory of .debs).
	Bind, BindRO []string
	// BootTimeout bounds each boot, from start to running; default 60 s.
	BootTimeout time.Duration
}

// Container is one booted container. Its methods are safe to call from
// several goroutines.
type Container struct {
	Name string // the machine name, unique on the host: dl-PID-N
	Dir  string // its root directory, on the host

	t       testing.TB
	o       Options
	cgroups []string // the run's own cgroup in each hierarchy nspawn uses
	console string   // the consoles' output, every boot's

	mu       sync.Mutex
	boots    []*boot
	changed  chan struct{} // closed and replaced at every change of boots
	stopping bool          // Stop or cleanup began: no boot after this one
	done     chan struct{} // closed when the last nspawn exited
	err      error         // why it ended: nil after a poweroff
}

// boot is one start of systemd-nspawn.
type boot struct {
	nspawn int    // systemd-nspawn's PID
	init   int    // the container's PID 1, as the host sees it; 0 before and after
	id     string // /proc/sys/kernel/random/boot_id inside, once running
	exit   int    // nspawn's exit status, once it exited; -1 before
}

var seq atomic.Int64

// Boot starts a container and waits until its systemd reports running
// (the first call in a process may build the root first: see Root). The
// container is killed, and every process, cgroup and file of it removed,
// when the test ends, whether it passed or not.
func Boot(t testing.TB, o Options) *Container {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireCmd(t, "systemd-nspawn", "nsenter", "tar", "debootstrap")
	if o.BootTimeout == 0 {
		o.BootTimeout = time.Minute
	}
	sweepOnce.Do(sweep)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	base, err := Base(ctx)
	if err != nil {
		t.Fatalf("nspawn root: %v", err)
	}
	c, err := start(ctx, t, base, o)
	if c != nil {
		t.Cleanup(c.cleanup)
	}
	if err != nil {
		t.Fatalf("boot a container: %v", err)
	}
	bctx, bcancel := context.WithTimeout(context.Background(), o.BootTimeout)
	defer bcancel()
	if err := c.WaitBoot(bctx, 1); err != nil {
		t.Fatalf("boot %s: %v", c.Name, err)
	}
	return c
}

// start mounts the container's root (an overlay on the shared base),
// makes the run's cgroups and starts the reboot loop. A non-nil Container
// is returned whenever there is something to clean up.
func start(ctx context.Context, t testing.TB, base string, o Options) (*Container, error) {
	name := fmt.Sprintf("dl-%d-%d", os.Getpid(), seq.Add(1))
	dir, err := os.MkdirTemp("", "drainctl-nspawn-"+name+"-")
	if err != nil {
		return nil, fmt.Errorf("container dir: %w", err)
	}
	c := &Container{Name: name, Dir: filepath.Join(dir, "root"), t: t, o: o,
		console: filepath.Join(dir, "console.log"), changed: make(chan struct{}), done: make(chan struct{})}
	begin := time.Now()
	if err := mountRoot(ctx, base, dir); err != nil {
		close(c.done)
		return c, err
	}
	t.Logf("%s: root ready in %v", name, time.Since(begin).Round(time.Millisecond))
	if c.cgroups, err = makeCgroups(name); err != nil {
		close(c.done)
		return c, err
	}
	go c.loop()
	return c, nil
}

// loop starts nspawn, and again after each reboot, until the container
// powers off, fails or is stopped.
func (c *Container) loop() {
	var err error
	defer func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.done)
	}()
	for {
		var code int
		if code, err = c.runOnce(); err != nil {
			return
		}
		c.mu.Lock()
		stopping := c.stopping
		c.mu.Unlock()
		switch {
		case code == 0:
			return // powered off
		case code == 133 && !stopping:
			// A reboot: what a host's reboot would reset, before the next.
			if err = c.resetBetweenBoots(); err != nil {
				return
			}
		case code == 133:
			err = fmt.Errorf("%s: rebooted while being stopped", c.Name)
			return
		default:
			err = fmt.Errorf("%s: systemd-nspawn exited %d (console: %s)", c.Name, code, c.console)
			return
		}
	}
}

// runOnce runs one boot's systemd-nspawn to its end and returns its exit
// status. The wrapper shell moves itself into the run's cgroups before it
// becomes nspawn: nspawn makes its payload and supervisor cgroups below
// its own, and without one of its own it would make them at the roots
// of the host's hierarchies, shared by every container.
func (c *Container) runOnce() (int, error) {
	args := []string{"sh", "-c", `n=$1; shift
while [ "$n" -gt 0 ]; do echo $$ >"$1/cgroup.procs" || exit 125; shift; n=$((n-1)); done
exec "$@"`, "sh", fmt.Sprint(len(c.cgroups))}
	args = append(append(args, c.cgroups...), c.nspawnArgs()...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	if unifiedRoot() != "" {
		// The container gets cgroup v2 (what systemd 252 wants), even on a
		// hybrid host.
		cmd.Env = append(cmd.Env, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1")
	}
	log, err := os.OpenFile(c.console, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("console log: %w", err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return 0, fmt.Errorf("%s: stopped", c.Name)
	}
	if err := cmd.Start(); err != nil {
		c.mu.Unlock()
		return 0, fmt.Errorf("start systemd-nspawn: %w", err)
	}
	b := &boot{nspawn: cmd.Process.Pid, exit: -1}
	c.boots = append(c.boots, b)
	c.notifyLocked()
	c.mu.Unlock()

	exited := make(chan struct{})
	var werr error
	go func() { werr = cmd.Wait(); close(exited) }()
	if pid, err := findInit(b.nspawn, exited); err == nil {
		c.mu.Lock()
		b.init = pid
		c.notifyLocked()
		c.mu.Unlock()
	}
	<-exited
	code := cmd.ProcessState.ExitCode()
	c.mu.Lock()
	b.init, b.exit = 0, code
	c.notifyLocked()
	c.mu.Unlock()
	if code < 0 {
		return code, fmt.Errorf("%s: systemd-nspawn: %w", c.Name, werr)
	}
	return code, nil
}

func (c *Container) nspawnArgs() []string {
	a := []string{"systemd-nspawn", "-q", "-D", c.Dir, "-M", c.Name,
		// No machined, no bus on this host: no registration, and no
		// scope unit of nspawn's own (plain --register=no still asks the
		// bus for one).
		"--register=no", "--keep-unit",
		// Without it the container's systemd silently enforces no
		// IPAddressDeny= nor DeviceAllow=.
		"--system-call-filter=bpf",
		"--console=read-only"}
	if c.o.NetNS != "" {
		a = append(a, "--network-namespace-path="+c.o.NetNS, "--capability=CAP_NET_ADMIN")
	} else {
		a = append(a, "--private-network")
	}
	for _, b := range c.o.Bind {
		a = append(a, "--bind="+b)
	}
	for _, b := range c.o.BindRO {
		a = append(a, "--bind-ro="+b)
	}
	return append(a, "-b")
}

// findInit waits for nspawn's child that is PID 1 of a PID namespace of
// its own: the container's init.
func findInit(nspawn int, exited <-chan struct{}) (int, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", nspawn, nspawn))
		for _, f := range strings.Fields(string(b)) {
			status, _ := os.ReadFile("/proc/" + f + "/status")
			for _, line := range strings.Split(string(status), "\n") {
				if ids := strings.Fields(strings.TrimPrefix(line, "NSpid:")); strings.HasPrefix(line, "NSpid:") && len(ids) > 1 && ids[len(ids)-1] == "1" {
					var pid int
					fmt.Sscan(f, &pid)
					return pid, nil
				}
			}
		}
		select {
		case <-exited:
			return 0, fmt.Errorf("systemd-nspawn %d exited before its init started", nspawn)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("systemd-nspawn %d: no init after 30 s", nspawn)
}

// resetBetweenBoots flushes what the kernel keeps in a network namespace
// the container does not own, and the cgroups the last boot left.
func (c *Container) resetBetweenBoots() error {
	if c.o.NetNS != "" {
		out, err := exec.Command("nsenter", "--net="+c.o.NetNS, "sh", "-c", flushNet).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: flush %s between boots: %w\n%s", c.Name, c.o.NetNS, err, out)
		}
	}
	for _, cg := range c.cgroups {
		removeBelow(cg)
	}
	return nil
}

// flushNet empties nftables (iptables-nft's rules with it), the legacy
// iptables tables in use, and the connection tracking table.
const flushNet = `set -e
nft flush ruleset
for v in iptables-legacy ip6tables-legacy; do
	command -v $v-save >/dev/null || continue
	for t in $($v-save | sed -n 's/^\*//p'); do $v -t "$t" -F; $v -t "$t" -X; done
done
if command -v conntrack >/dev/null; then conntrack -F 2>/dev/null || true; fi
`

// notifyLocked wakes the waiters of a change (c.mu held).
func (c *Container) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}
