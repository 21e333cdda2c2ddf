package lab

// Rolling drainctl itself through a pool: the last release's agents and
// this one's share the pool while the roll goes on.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lastRelease is the commit of drainctl's release before the pool's
// layout 2 (the budget that counts every member out): the agents a
// fleet runs when it upgrades to this one.
const lastRelease = "98911ed"

// buildRelease builds drainctl at commit rev from this repository's
// history, in a temporary directory.
func buildRelease(t *testing.T, rev string) string {
	t.Helper()
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("the upgrade test builds the last release from git history, and this is no git checkout: %v", err)
	}
	src := t.TempDir()
	archive := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", strings.TrimSpace(string(top)), rev, src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s (a shallow clone lacks it: fetch the history): %v\n%s", rev, err, out)
	}
	bin := filepath.Join(t.TempDir(), "drainctl-"+rev)
	build := exec.Command("go", "build", "-buildvcs=false", "-o", bin, "./cmd/drainctl")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build drainctl %s: %v\n%s", rev, err, out)
	}
	return bin
}

// upgrade stops w's agent as a package upgrade does (SIGTERM) and starts
// this release's in its place, on the same state directory.
func upgrade(t *testing.T, l *Lab, w *Web) {
	t.Helper()
	if w.agent != nil {
		w.agent.Process.Signal(syscall.SIGTERM)
		<-w.agentDone
		w.agent = nil
	}
	w.binary = l.o.Binary
	if err := l.StartAgent(w); err != nil {
		t.Fatal(err)
	}
}

// TestE2EPoolUpgradeRoll: three hosts run the last release in a pool
// (max_unavailable 1) under load; drainctl is rolled to this release one
// host at a time, with each host's cron run started right after its
// upgrade and the others' runs going on. The first new agent moves the
// pool to layout 2: from then on the old agents grant nothing (a budget
// on two rules is none) and say why; each host upgraded runs; HAProxy
// never shows more than one primary DOWN; at the end every host is in
// service and the pool is clean.
func TestE2EPoolUpgradeRoll(t *testing.T) {
	old := buildRelease(t, lastRelease)
	l := startLabWith(t, Options{Backend: "nftables", Pattern: Recommended, Servers: 3, Pool: &PoolOptions{MaxUnavailable: "1"}, Binary: old})
	l.o.Binary = binary
	ctx := context.Background()
	run := users(t, l)
	down := watchDown(t, l)
	w1, w2, w3 := l.Webs[0], l.Webs[1], l.Webs[2]

	// The old release works as it did.
	mustDrainctl(t, ctx, w1, 0, "maintenance", "run", "--reason", "before the roll", "--", "true")
	backInService(t, ctx, l, w1)

	t.Log("web3 upgraded")
	upgrade(t, l, w3)
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if ps := poolStatus(t, ctx, w3); ps.Settings != nil && ps.Settings.Version == 2 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the pool's settings are not layout 2 10 s after the first new agent: %+v", poolStatus(t, ctx, w3).Settings)
		}
	}
	// An old agent grants nothing on a layout it does not know, and says so.
	out, code, _ := w1.DrainctlIn(ctx, "maintenance", "run", "--reason", "old, mid-roll", "--pool-wait", "2s", "--", "true")
	if code != exitPoolBusy || !strings.Contains(out, "layout version 2") {
		t.Errorf("an old agent on a layout 2 pool: exit %d, want %d and why\n%s", code, exitPoolBusy, out)
	}
	if s, _ := l.Status(w1.Name); s != "UP" {
		t.Fatalf("web1 is %s after a refused run", s)
	}
	done3 := runAsync(ctx, w3, "after its upgrade")

	t.Log("web1 and web2 upgraded")
	upgrade(t, l, w1)
	done1 := runAsync(ctx, w1, "after its upgrade")
	upgrade(t, l, w2)
	done2 := runAsync(ctx, w2, "after its upgrade")
	for w, done := range map[*Web]<-chan string{w1: done1, w2: done2, w3: done3} {
		finished(t, done, w, "the roll")
	}
	for _, w := range l.Webs {
		backInService(t, ctx, l, w)
	}
	down.stop()
	<-down.done
	if p := down.peak.Load(); p != 1 {
		t.Errorf("HAProxy showed %d primaries DOWN at once during the roll; the budget is 1", p)
	}
	ps := poolStatus(t, ctx, w2)
	if len(ps.Holders) != 0 || len(ps.Unavailable) != 0 || len(ps.Members) != 3 || ps.Settings.MaxUnavailable != "1" {
		t.Errorf("the pool after the roll: %+v", ps)
	}
	noLoss(t, l, run)
	os.Remove(old)
}
