package origin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// The asks of this file are real processes, found in the real /proc:
// shell scripts named as the programs they stand for (the kernel names a
// script's process after the script, as it does deb-systemd-invoke or
// needrestart), each running the next and waiting, the last one
// (systemctl) waiting as a real systemctl waits for its job.

var unitSeq atomic.Int64

// uniqueUnit is a unit name no other process on the host names: tests
// of other packages run systemctl and dpkg at the same time (in their
// containers, whose processes the host's /proc shows too).
func uniqueUnit() string {
	return fmt.Sprintf("origin-test-%d-%d.service", os.Getpid(), unitSeq.Add(1))
}

// scripts writes each name → body as an executable script under dir
// (names may hold a directory: lib/dpkg/info/x.postinst).
func scripts(t *testing.T, dir string, bodies map[string]string) {
	t.Helper()
	for name, body := range bodies {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// startTree runs script (sh -c) with DIR and READY set and waits (at most
// 10 s) until the innermost process wrote READY. Every process of the
// tree is killed, by PID, when the test ends.
func startTree(t *testing.T, dir, script string) {
	t.Helper()
	ready := filepath.Join(dir, "ready")
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), "DIR="+dir, "READY="+ready)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	root := cmd.Process.Pid
	t.Cleanup(func() {
		killTree(root)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the process tree did not start within 10 s: %s", script)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killTree kills root and its descendants by PID (script(1) puts its
// child in a session of its own: no process group reaches them all).
func killTree(root int) {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p := (finder{procfs: "/proc"}).read(pid); p != nil {
			children[p.ppid] = append(children[p.ppid], pid)
		}
	}
	var kill func(pid, depth int)
	kill = func(pid, depth int) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if depth < maxChain {
			for _, c := range children[pid] {
				kill(c, depth+1)
			}
		}
	}
	kill(root, 0)
}

// A package upgrade by unattended-upgrades, as real processes: its dpkg
// runs the postinst, which restarts the unit through deb-systemd-invoke.
// systemd and dpkg's database are the fake runner's.
func TestRealProcessesDpkg(t *testing.T) {
	nstest.SkipShort(t)
	unit, dir := uniqueUnit(), t.TempDir()
	scripts(t, dir, map[string]string{
		"bin/unattended-upgrade":             `"$DIR/bin/dpkg" --status-fd 11 --configure originprobe`,
		"bin/dpkg":                           `"$DIR/lib/dpkg/info/originprobe.postinst" configure 1.0`,
		"lib/dpkg/info/originprobe.postinst": `"$DIR/bin/deb-systemd-invoke" restart ` + unit + ` >/dev/null || true`,
		"bin/deb-systemd-invoke":             `"$DIR/bin/systemctl" --quiet --system "$@"`,
		"bin/systemctl":                      `: >"$READY"; sleep 60; exit 0`,
	})
	startTree(t, dir, `"$DIR/bin/unattended-upgrade"`)
	r := &fakeRunner{answers: map[string]string{listJobs: "5 " + unit + " restart waiting\n", "dpkg-query -W -f ${Version} originprobe": "1.1\n"}}
	f := finder{procfs: "/proc", self: os.Getpid(), run: r.run, lookupUser: lookupUser}
	o := f.of(context.Background(), unit)
	t.Logf("%+v", o)
	if o.Job != "restart" || o.Kind != KindUnattended || !strings.HasPrefix(o.Text, "unattended-upgrades: dpkg: originprobe 1.0 → 1.1") {
		t.Errorf("%+v", o)
	}
}

// drainctl's agent restarting the unit, found by Of itself: its real
// systemctl and dpkg-query (systemctl fails where systemd is not PID 1:
// then the asking command's verb is the job).
func TestRealProcessesDrainctl(t *testing.T) {
	nstest.SkipShort(t)
	unit, dir := uniqueUnit(), t.TempDir()
	scripts(t, dir, map[string]string{
		"bin/drainctl":  `"$DIR/bin/systemctl" restart ` + unit,
		"bin/systemctl": `: >"$READY"; sleep 60; exit 0`,
	})
	startTree(t, dir, `"$DIR/bin/drainctl" agent --config /dev/null`)
	begin := time.Now()
	o := Of(context.Background(), strings.TrimSuffix(unit, ".service"))
	t.Logf("%+v in %v (%d processes on the host)", o, time.Since(begin), countProcs())
	if o.Kind != KindDrainctl || o.Text != "drainctl agent: systemctl restart "+unit || o.Shutdown {
		t.Errorf("%+v", o)
	}
}

// `systemctl restart UNIT` typed by a logged-in root on a terminal: the
// tree gets a login UID (as pam_loginuid gives a session) and a pty
// (script(1)).
func TestRealProcessesUserOnTerminal(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireCmd(t, "script")
	unit, dir := uniqueUnit(), t.TempDir()
	scripts(t, dir, map[string]string{
		"bin/login":     `echo 0 >/proc/self/loginuid || { echo no-loginuid >"$DIR/failed"; : >"$READY"; exit 1; }; exec script -qfec "$DIR/bin/systemctl restart ` + unit + `" /dev/null`,
		"bin/systemctl": `: >"$READY"; sleep 60; exit 0`,
	})
	startTree(t, dir, `"$DIR/bin/login" </dev/null >/dev/null 2>&1`)
	if _, err := os.Stat(filepath.Join(dir, "failed")); err == nil {
		t.Skip("this kernel does not let root set a login UID (loginuid immutable)")
	}
	r := &fakeRunner{answers: map[string]string{listJobs: "5 " + unit + " restart waiting\n"}}
	f := finder{procfs: "/proc", self: os.Getpid(), run: r.run, lookupUser: lookupUser}
	o := f.of(context.Background(), unit)
	t.Logf("%+v", o)
	if o.Kind != KindSystemctl || !regexp.MustCompile(`^systemctl restart `+regexp.QuoteMeta(unit)+` by root \(pts/[0-9]+\)$`).MatchString(o.Text) {
		t.Errorf("%+v", o)
	}
}

func countProcs() int {
	n := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	return n
}
