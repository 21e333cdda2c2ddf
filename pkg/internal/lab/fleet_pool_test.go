package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestE2EFleetPool: drainctl-roll over four hosts in a pool of
// max_unavailable 2, two at a time: each host takes its own slot, so
// HAProxy shows two primaries DOWN at once and never more, every Apache
// is restarted, no request fails and no user moves. --parallel without a
// pool, or not a count, is refused.
func TestE2EFleetPool(t *testing.T) {
	f := startFleetWith(t, Options{Backend: "nftables", Pattern: Recommended, Servers: 4,
		Pool: &PoolOptions{MaxUnavailable: "2"}})
	env := []string{"DRAINCTL_ROLL_SSH=" + f.ssh.Command(), "DRAINCTL_ROLL_DRAINCTL=" + f.ssh.Drainctl, "DRAINCTL_ROLL_LOCK=" + f.lock}
	cmd, out := f.start(t, env, rollScript, "--parallel", "0", f.hosts[0])
	if err := cmd.Wait(); exitCode(err) != 2 || !strings.Contains(out.String(), "--parallel 0") {
		t.Fatalf("--parallel 0: exit %d\n%s", exitCode(err), out)
	}
	run := users(t, f.l)
	time.Sleep(time.Second)
	before := f.generations(t)
	down := watchDown(t, f.l)
	start := time.Now()
	cmd, out = f.start(t, env, append([]string{rollScript, "--reason", "fleet pool", "--parallel", "2"}, f.hosts...)...)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("roll: %v\n%s", err, out)
	}
	took := time.Since(start)
	down.stop()
	<-down.done
	t.Logf("roll of 4 hosts, 2 at a time, in a pool of max_unavailable 2: %v, at most %d primaries DOWN at once\n%s",
		took.Round(100*time.Millisecond), down.peak.Load(), out)
	if !strings.Contains(out.String(), "in pool web, 2 at a time") {
		t.Errorf("the roll did not see the pool:\n%s", out)
	}
	if down.peak.Load() != 2 {
		t.Errorf("at most %d primaries DOWN at once, want 2", down.peak.Load())
	}
	for i, g := range f.generationsAfter(t, before) {
		if g != before[i]+1 {
			t.Errorf("%s: Apache generation %d -> %d: not restarted once", f.l.Webs[i].Name, before[i], g)
		}
	}
	for _, w := range f.l.Webs {
		backInService(t, context.Background(), f.l, w)
	}
	if _, err := exec.LookPath("ansible-playbook"); err == nil {
		// The playbook, serial 2: the same, the pool keeping the limit.
		before = f.generations(t)
		down = watchDown(t, f.l)
		start = time.Now()
		cmd, out = f.ansible(t, playbook, fmt.Sprintf("drainctl=%s\ndrainctl_lock=%s\n", f.ssh.Drainctl, f.lock), "-e", "drainctl_serial=2")
		if err := cmd.Wait(); err != nil {
			t.Fatalf("playbook: %v\n%s", err, out)
		}
		took = time.Since(start)
		down.stop()
		<-down.done
		t.Logf("playbook, serial 2, in a pool of max_unavailable 2: %v, at most %d primaries DOWN at once", took.Round(100*time.Millisecond), down.peak.Load())
		if down.peak.Load() != 2 {
			t.Errorf("playbook: at most %d primaries DOWN at once, want 2\n%s", down.peak.Load(), out)
		}
		for i, g := range f.generationsAfter(t, before) {
			if g != before[i]+1 {
				t.Errorf("playbook: %s: Apache generation %d -> %d: not restarted once", f.l.Webs[i].Name, before[i], g)
			}
		}
		if _, err := os.Stat(f.lock); err == nil {
			t.Error("the playbook left a lock in a pool")
		}
	}
	noLoss(t, f.l, run)
}
