package integration

// TestSystemdDeferredUpgrade: a package's restart within the pool's
// budget. web2, a Debian 12 container with drainctl's .deb (its
// policy-rc.d the alternative /usr/sbin/policy-rc.d), is in a pool of
// max_unavailable 1 whose only slot web1 (the lab's own server) holds:
// web1 is in maintenance. unattended-upgrades upgrades apache2 in web2:
// drainctl's policy-rc.d answers 101 to apache2's postinst, so apt ends
// without waiting for a slot, the old Apache still runs, web2 stays in
// rotation and its status shows the restart owed. Then web1's
// maintenance ends, the slot is free, and web2's agent restarts Apache
// itself, drained: the new binary runs, the history names the deferred
// restart, and the e2e load (started once web1 is out, so every user is
// on web2) sees no failure and no user moved.

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/internal/lab"
	"github.com/drainctl/drainctl/pkg/internal/loadgen"
	"github.com/drainctl/drainctl/pkg/internal/nspawn"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

func TestSystemdDeferredUpgrade(t *testing.T) {
	nstest.RequireCmd(t, "haproxy", "apache2", "nft", "iptables", "systemd-nspawn", "debootstrap", "etcd", "dpkg-scanpackages")
	begin := time.Now()
	repo := newUpgradeRepo(t)
	t.Cleanup(func() { <-repo.done })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	base, err := nspawn.Base(ctx)
	cancel()
	if err != nil {
		t.Fatalf("nspawn root: %v", err)
	}
	go repo.build(base)

	l := startDeferLab(t)
	web1, web2 := l.Webs[0], l.Webs[1]
	c := bootRestartWeb(t, l, web2, repo.dir+":"+repoInside)
	joinPool(t, c, web2)
	waitPoolMembers(t, l, 2)
	if got := strings.TrimSpace(csh(t, c, "readlink -f /usr/sbin/policy-rc.d")); got != "/usr/lib/drainctl/policy-rc.d" {
		t.Fatalf("/usr/sbin/policy-rc.d is %q, want drainctl's (the alternative the .deb installs)", got)
	}
	up := repo.run(false)
	up.install(t, c)
	t.Logf("lab, etcd, the container and unattended-upgrades ready in %v", time.Since(begin).Round(time.Millisecond))

	// web1 takes the pool's only slot: in maintenance, before the users
	// come (nothing to drain), so every user is web2's.
	mctx, mcancel := context.WithTimeout(context.Background(), time.Minute)
	out, code, err := web1.Drainctl(mctx, "maintenance", "enter", "--reason", "kernel update on web1")
	mcancel()
	if err != nil || code != 0 {
		t.Fatalf("maintenance enter on web1: exit %d, %v\n%s", code, err, out)
	}
	if ps := poolStatusOf(t, l); len(ps.Holders) != 1 || ps.Holders[0].ID != web1.Name {
		t.Fatalf("pool after web1's enter: holders %+v, want web1 alone", ps.Holders)
	}

	run := loadgen.Start(context.Background(), loadgen.Config{
		URL: lab.Frontend, Users: 20, UserInterval: 50 * time.Millisecond,
		Anon: 4, AnonInterval: 20 * time.Millisecond,
		Duration: 3 * time.Minute, MaxRequests: 2_000_000, Dial: l.Dial,
	})
	t.Cleanup(func() { run.Stop() })
	time.Sleep(1500 * time.Millisecond)

	upBegin := time.Now()
	defer func() {
		if t.Failed() {
			t.Logf("web2: apache2's and drainctl's journal since the upgrade began:\n%s", journalSince(c, upBegin))
		}
	}()
	// The upgrade, as apt-daily-upgrade.service runs it. web_unit.wait
	// is 2 min (joinPool): a guard's stop waiting for the slot would hold
	// apt that long and then go over the budget.
	uctx, ucancel := context.WithTimeout(context.Background(), 2*time.Minute)
	uu, err := c.Sh(uctx, "unattended-upgrade -v 2>&1; echo; cat /var/log/unattended-upgrades/unattended-upgrades-dpkg.log 2>/dev/null | grep -i 'policy-rc.d\\|drainctl' || true")
	ucancel()
	took := time.Since(upBegin)
	if err != nil {
		t.Fatalf("unattended-upgrade: %v\n%s", err, uu)
	}
	t.Logf("unattended-upgrade in %v:\n%s", took.Round(time.Millisecond), uu)
	// deb-systemd-invoke was told no, and said so: apt did not wait for
	// a slot (its run above took the time it takes; a guard's stop
	// waiting for the slot would hold it web_unit.wait, 2 min).
	if !strings.Contains(uu, "/usr/sbin/policy-rc.d returned 101, not running 'restart apache2.service'") {
		t.Errorf("deb-systemd-invoke did not skip apache2's restart on policy-rc.d's word")
	}

	owedSince := checkOwed(t, l, c, up)

	// The slot comes: web1 back. web2's agent restarts Apache, drained.
	freed := time.Now()
	mctx, mcancel = context.WithTimeout(context.Background(), time.Minute)
	out, code, err = web1.Drainctl(mctx, "maintenance", "exit")
	mcancel()
	if err != nil || code != 0 {
		t.Fatalf("maintenance exit on web1: exit %d, %v\n%s", code, err, out)
	}
	waitOwedDone(t, c, 2*time.Minute)
	waitBack(t, l, web2, c, 90*time.Second)
	restarted := time.Since(freed)
	time.Sleep(time.Second)
	lr := run.Stop()

	h := historySince(t, c, upBegin)
	t.Logf("web2: drainctl history since the upgrade began: %s", historyLine(h))
	t.Logf("the restart owed since %s, done %v after web1's exit; load: %d requests, %d failed, %d users moved",
		owedSince.Format(time.RFC3339), restarted.Round(time.Millisecond), lr.Requests, lr.Failed, lr.Moved)
	checkDeferredRestart(t, h)
	if lr.Failed != 0 {
		t.Errorf("%d failed requests, want 0", lr.Failed)
	}
	if lr.Moved != 0 {
		t.Errorf("%d users moved, want 0", lr.Moved)
	}
	if ps := poolStatusOf(t, l); len(ps.Holders) != 0 {
		t.Errorf("pool after the restart: holders %+v, want none", ps.Holders)
	}
	up.check(t, c)
	t.Logf("the test took %v", time.Since(begin).Round(time.Millisecond))
}

// checkOwed checks web2 (c) once apt is done: the new package
// installed, the restart owed, not done (the old Apache serves), the
// server in service and in rotation, the slot still web1's. It returns
// when the restart became owed.
func checkOwed(t *testing.T, l *lab.Lab, c *nspawn.Container, up *upgradeRun) time.Time {
	t.Helper()
	web1, web2 := l.Webs[0], l.Webs[1]
	// apt is done; the restart is owed, not done: the old Apache serves,
	// web2 in service and in rotation.
	st, raw := cstatus(t, c)
	owedStatus := csh(t, c, "drainctl status | grep '^owed:' || true")
	t.Logf("web2 after the upgrade: %s", strings.TrimSpace(owedStatus))
	if v := strings.TrimSpace(csh(t, c, "dpkg-query -W -f '${Version}' apache2-bin")); v != up.to {
		t.Fatalf("apache2-bin %s after the upgrade, want %s", v, up.to)
	}
	if pid := unitPID(t, c, "apache2"); pid != up.mainPID {
		t.Errorf("Apache restarted during the upgrade (main PID %d, before %d): the pool had no slot", pid, up.mainPID)
	}
	if st.State.Owed == nil || st.State.Owed.Unit != "apache2.service" || st.State.Phase != apitype.PhaseInService {
		t.Fatalf("web2's status after the upgrade: no restart owed, or not in service:\n%s", raw)
	}
	if !strings.Contains(owedStatus, "apache2.service") {
		t.Errorf("drainctl status does not show the restart owed: %q", owedStatus)
	}
	if s, _ := l.Status(web2.Name); s != "UP" {
		t.Errorf("web2 is %q in HAProxy after the upgrade, want UP", s)
	}
	if ps := poolStatusOf(t, l); len(ps.Holders) != 1 || ps.Holders[0].ID != web1.Name {
		t.Errorf("pool after the upgrade: holders %+v, want web1 alone", ps.Holders)
	}
	return st.State.Owed.Since
}

// checkDeferredRestart checks web2's history: the deferred restart, ok,
// and no guard's web-stop (the owed restart's own systemctl restart
// finds the engine busy and is not recorded).
func checkDeferredRestart(t *testing.T, h []apitype.HistoryEntry) {
	t.Helper()
	var op *apitype.HistoryEntry
	for i, e := range h {
		if e.Op == string(apitype.OpRestart) && strings.Contains(e.Reason, "(deferred for a pool slot)") {
			op = &h[i]
		}
		if e.Op == string(apitype.OpWebStop) && e.Outcome == "ok" {
			t.Errorf("a guard's web-stop took web2 out during the upgrade: %+v", e)
		}
	}
	if op == nil || op.Outcome != "ok" {
		t.Errorf("no deferred restart in web2's history: %s", historyLine(h))
	}
}

// startDeferLab is the lab: HAProxy with the recommended pattern, web1
// run by the lab, web2 left to the test, both in the pool "web" of
// max_unavailable 1 on a one-member etcd.
func startDeferLab(t *testing.T) *lab.Lab {
	return startHostedLab(t, "df", 2, 1, &lab.PoolOptions{Members: 1, MaxUnavailable: "1"})
}

// waitOwedDone waits until c's agent owes no restart and runs no
// operation.
func waitOwedDone(t *testing.T, c *nspawn.Container, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := c.Exec(ctx, "drainctl", "status", "--json")
		cancel()
		var st apitype.Status
		if err == nil && json.Unmarshal([]byte(out), &st) == nil && st.State.Owed == nil && !st.Running {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restart owed not done after %v: %v\n%s", timeout, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
