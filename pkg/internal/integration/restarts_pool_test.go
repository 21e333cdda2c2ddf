package integration

// Issue 25's last proof: two containers in a pool of max_unavailable 1,
// both patched by unattended-upgrades at the same moment (as
// apt-daily-upgrade.timer does on every host of a pool around 06:00).
// Each upgrade's postinst restarts apache2 through systemd; each guard's
// stop asks its agent for the pool's one slot: the first takes it, the
// second waits in line (its dpkg waiting in the postinst) until the
// first is back in rotation. Never both out of rotation, both end on
// the new binary, back in service, and the e2e load sees no failure and
// no sticky user moved. The two postinsts ask for the restart at the
// same instant: a barrier in each container's policy-rc.d holds the
// first there until the other arrives (barrierScript), so the two
// always meet.
//
// The harness is TestSystemdEveryRestart's (restarts_test.go,
// restarts_upgrade_test.go): the e2e lab, here with three app servers,
// web1 the lab's own and web2, web3 Debian 12 containers (the lab's
// Hosted servers) in a pool on a real etcd (the lab's, on its LAN, which
// both containers' namespaces join); one local repository for both.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/internal/lab"
	"github.com/drainctl/drainctl/pkg/internal/loadgen"
	"github.com/drainctl/drainctl/pkg/internal/nspawn"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
	"github.com/drainctl/drainctl/pkg/maintenance"
)

// poolWebUnitWait is the containers' web_unit.wait: the second stop
// waits for the slot while the first server is out (its drain and
// Apache's restart: about 2 s idle, 5-10 s on a busy machine), far
// below it; a wait past it would take the server out over the budget,
// which this test must never see.
const poolWebUnitWait = "2m"

func TestSystemdPoolUnattended(t *testing.T) {
	nstest.RequireCmd(t, "haproxy", "apache2", "nft", "iptables", "systemd-nspawn", "debootstrap", "etcd", "dpkg-scanpackages")
	begin := time.Now()
	repo := newUpgradeRepo(t)
	// Its build writes into its temporary directory: the directory is
	// removed only once the build (bounded: 3 minutes) is over.
	t.Cleanup(func() { <-repo.done })
	// The repository is built from the containers' shared root as
	// debootstrap made it, while the lab starts and the containers boot:
	// what the boot and drainctl's .deb add changes nothing apt weighs
	// for unattended-upgrades and apache2.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	base, err := nspawn.Base(ctx)
	cancel()
	if err != nil {
		t.Fatalf("nspawn root: %v", err)
	}
	go repo.build(base)

	l := startPoolLab(t)
	webs := l.Webs[1:]
	cs := make([]*nspawn.Container, len(webs))
	inParallel(t, len(webs), func(i int) {
		cs[i] = bootRestartWeb(t, l, webs[i], repo.dir+":"+repoInside)
		joinPool(t, cs[i], webs[i])
	})
	waitPoolMembers(t, l, len(l.Webs))
	t.Logf("lab, etcd and both containers ready in %v", time.Since(begin).Round(time.Millisecond))

	// unattended-upgrades installed from the repository in each, and
	// each one's Apache main PID before (install records it: one copy of
	// the repository's description per container).
	repo.wait(t, false)
	rs := make([]*upgradeRun, len(cs))
	for i := range rs {
		rs[i] = repo.run(false)
	}
	prepared := time.Now()
	inParallel(t, len(cs), func(i int) {
		rs[i].install(t, cs[i])
		csh(t, cs[i], "mkdir -p "+barrierDir+" && rm -f /usr/sbin/policy-rc.d && cat > /usr/sbin/policy-rc.d <<'EOF'\n"+barrierScript+"EOF\nchmod 755 /usr/sbin/policy-rc.d")
	})
	t.Logf("unattended-upgrades installed in both in %v", time.Since(prepared).Round(time.Millisecond))

	run := loadgen.Start(context.Background(), loadgen.Config{
		URL: lab.Frontend, Users: 20, UserInterval: 50 * time.Millisecond,
		Anon: 4, AnonInterval: 20 * time.Millisecond,
		Duration: 3 * time.Minute, MaxRequests: 2_000_000, Dial: l.Dial,
	})
	t.Cleanup(func() { run.Stop() })
	// The users find their servers (and keep them by their cookie).
	time.Sleep(1500 * time.Millisecond)

	names := []string{webs[0].Name, webs[1].Name}
	watch := watchPool(t, l, names)
	upBegin := time.Now()
	// Whatever fails from here on, the containers' own word on it.
	defer func() {
		if t.Failed() {
			for i, c := range cs {
				t.Logf("%s: apache2's and drainctl's journal since the upgrades began:\n%s", names[i], journalSince(c, upBegin))
			}
		}
	}()
	runs := upgradeAt(t, cs)
	for i, c := range cs {
		waitBack(t, l, webs[i], c, 90*time.Second)
	}
	settled := time.Since(upBegin)
	time.Sleep(time.Second)
	lr := run.Stop()
	watch.stop()

	t.Logf("both upgraded and back in rotation %v after the upgrades began", settled.Round(time.Millisecond))
	logPoolFigures(t, names, runs, watch, lr, upBegin)
	ops := make([]poolOps, len(cs))
	for i, c := range cs {
		h := historySince(t, c, upBegin)
		t.Logf("%s: drainctl history since the upgrades began: %s", names[i], historyLine(h))
		ops[i] = findPoolOps(h)
	}

	// The verdicts: every check is reported, none stops the others.
	if n := watch.maxOut(); n != 1 {
		t.Errorf("at most %d of the two containers out of rotation at once in HAProxy, want 1", n)
	}
	if watch.holders > 1 {
		t.Errorf("the pool had %d holders at once, want at most 1", watch.holders)
	}
	if lr.Failed != 0 {
		t.Errorf("%d failed requests, want 0", lr.Failed)
	}
	if lr.Moved != 0 {
		t.Errorf("%d users moved, want 0", lr.Moved)
	}
	checkPoolOps(t, names, ops, upBegin)
	ps := poolStatusOf(t, l)
	if len(ps.Holders) != 0 || len(ps.Waiters) != 0 {
		t.Errorf("pool after the upgrades: holders %+v, waiters %+v, want none", ps.Holders, ps.Waiters)
	}
	// Last: it stops the test at the first container not on the new
	// binary.
	for i, c := range cs {
		rs[i].check(t, c)
	}
	t.Logf("the test took %v", time.Since(begin).Round(time.Millisecond))
}

// startPoolLab is the lab: HAProxy with the recommended pattern, web1
// run by the lab, web2 and web3 left to the test (Hosted), all three in
// the pool "web" of max_unavailable 1 on a one-member etcd.
func startPoolLab(t *testing.T) *lab.Lab {
	return startHostedLab(t, "pu", 3, 2, &lab.PoolOptions{Members: 1, MaxUnavailable: "1"})
}

// inParallel runs f(0) ... f(n-1) at once and waits for all of them. f
// may fail the test: t.Fatal ends only its own goroutine (wg.Go's Done
// still runs), so a failure stops the test here, on the test's.
func inParallel(t *testing.T, n int, f func(i int)) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { f(i) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// joinPool puts c's agent (run by bootRestartWeb's drop-in) in the lab's
// pool as w, with the web unit wait of the test, and restarts it: its
// own restart never takes the server out.
func joinPool(t *testing.T, c *nspawn.Container, w *lab.Web) {
	t.Helper()
	flags := append(w.PoolFlags(), "--web-unit-wait", poolWebUnitWait)
	csh(t, c, fmt.Sprintf(`set -e
sed -i '/^ExecStart=\/usr\/bin\/drainctl agent/ s|$| %s|' /etc/systemd/system/drainctl.service.d/lab.conf
grep -q -- '--pool-id %s' /etc/systemd/system/drainctl.service.d/lab.conf
systemctl daemon-reload
systemctl restart drainctl`, strings.Join(flags, " "), w.Name))
}

// poolStatusOf is the pool's status as web1's agent (the lab's) reads it.
func poolStatusOf(t *testing.T, l *lab.Lab) apitype.PoolStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps, err := readPool(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func readPool(ctx context.Context, l *lab.Lab) (apitype.PoolStatus, error) {
	w := l.Webs[0]
	var ps apitype.PoolStatus
	out, code, err := w.Drainctl(ctx, "pool", "status", "--json")
	switch {
	case err != nil:
		return ps, fmt.Errorf("pool status on %s: %w", w.Name, err)
	case code != 0:
		return ps, fmt.Errorf("pool status on %s: exit %d\n%s", w.Name, code, out)
	}
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		return ps, fmt.Errorf("pool status on %s: %w\n%s", w.Name, err, out)
	}
	return ps, nil
}

// waitPoolMembers waits until the pool has n live members, 20 s at most.
func waitPoolMembers(t *testing.T, l *lab.Lab, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ps := poolStatusOf(t, l)
		live := 0
		for _, m := range ps.Members {
			if m.Live {
				live++
			}
		}
		if live == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pool has %d live members of %d after 20 s: %+v", live, n, ps.Members)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// barrierDir is where, in each container, the barrier's files are:
// "arrived" written by its policy-rc.d, "go" by the test (through the
// container's root on the host: not under /tmp or /run, which are
// tmpfs of the container's own).
const barrierDir = "/var/tmp/drainctl-pool-barrier"

// barrierScript is the containers' /usr/sbin/policy-rc.d, which
// deb-systemd-invoke asks before apache2's postinst restarts apache2:
// the upgrade's restart waits there until the test lets both go at
// once. unattended-upgrade spends seconds, and more when the machine is
// busy, in python, apt and dpkg's unpack before the postinst, differing
// from one container to the other by more than one server's whole
// restart under drain (measured: postinsts 1.5 s apart, the first out
// for 1.9 s): without the barrier the two restarts may not meet, and a
// pass would prove nothing. Bounded (60 s) should the test not say go;
// 0 (run) in any case, and at once for everything else.
const barrierScript = `#!/bin/sh
case "$1 $2" in
"apache2.service restart")
	touch ` + barrierDir + `/arrived
	i=0
	while [ ! -e ` + barrierDir + `/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
	;;
esac
exit 0
`

// uuRun is one container's unattended-upgrade.
type uuRun struct {
	out  string
	took time.Duration
	// postinst: when apache2's postinst was first seen running, and
	// when it asked policy-rc.d for apache2's restart (arrived at the
	// barrier), from the common start.
	postinst, arrived time.Duration
}

// upgradeAt runs unattended-upgrade in every container at the same
// moment, as apt-daily-upgrade.service does, and waits for all; it
// notes when each one's apache2 postinst (the restart's caller) runs,
// and lets their restarts go at once when all of them are at the
// barrier (or one run ended without getting there: the verdicts say
// the restarts did not meet).
func upgradeAt(t *testing.T, cs []*nspawn.Container) []uuRun {
	t.Helper()
	runs := make([]uuRun, len(cs))
	errs := make([]error, len(cs))
	start := make(chan struct{})
	ended := make(chan int, len(cs))
	for i, c := range cs {
		go func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			b := time.Now()
			out, err := c.Sh(ctx, "unattended-upgrade -v 2>&1")
			runs[i].out, runs[i].took, errs[i] = out, time.Since(b), err
			ended <- i
		}()
	}
	begin := time.Now()
	close(start)
	released := false
	release := func() {
		released = true
		for _, c := range cs {
			if err := os.WriteFile(filepath.Join(c.Dir, barrierDir, "go"), nil, 0o644); err != nil {
				t.Errorf("the barrier in %s: %v", c.Name, err)
			}
		}
		t.Logf("the barrier let the restarts go %v after the upgrades began", time.Since(begin).Round(time.Millisecond))
	}
	// The host sees the containers' processes in its /proc, and their
	// files under their root.
	for n := 0; n < len(cs); {
		all := true
		for i, c := range cs {
			if runs[i].postinst == 0 && len(pidsIn(c.InitPID(), postinst)) > 0 {
				runs[i].postinst = time.Since(begin)
			}
			if runs[i].arrived == 0 {
				if _, err := os.Stat(filepath.Join(c.Dir, barrierDir, "arrived")); err == nil {
					runs[i].arrived = time.Since(begin)
				}
			}
			all = all && runs[i].arrived != 0
		}
		if all && !released {
			release()
		}
		select {
		case <-ended:
			// A run that ended without reaching the barrier: the
			// others wait no longer.
			n++
			if !released {
				release()
			}
		case <-time.After(10 * time.Millisecond):
		}
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("unattended-upgrade in %s: %v\n%s", cs[i].Name, err, runs[i].out)
		}
	}
	return runs
}

// poolWatch reads HAProxy's stats every 20 ms (one reading for all the
// servers: "at once" is one instant) and the pool's holders and waiters
// every 200 ms, until stop.
type poolWatch struct {
	names  []string
	cancel context.CancelFunc
	done   sync.WaitGroup

	mu     sync.Mutex
	status []statusChange
	// peaks over the readings: primaries out of rotation (not UP: DOWN,
	// coming up), primaries not plainly UP (going down too).
	out, notUP int
	// the pool's, after stop
	holders, waiters, readings int
}

func watchPool(t *testing.T, l *lab.Lab, names []string) *poolWatch {
	ctx, cancel := context.WithCancel(context.Background())
	pw := &poolWatch{names: names, cancel: cancel}
	pw.done.Add(2)
	go func() {
		defer pw.done.Done()
		last := map[string]string{}
		for ctx.Err() == nil {
			st, err := l.Statuses()
			pw.mu.Lock()
			out, notUP := 0, 0
			for _, n := range names {
				for _, s := range []string{n, n + "-bak"} {
					v, ok := st[s]
					if err != nil {
						v = "error: " + err.Error()
					} else if !ok {
						v = "absent"
					}
					if v != last[s] {
						last[s] = v
						pw.status = append(pw.status, statusChange{time.Now(), s, v})
					}
				}
				if err == nil && !strings.HasPrefix(st[n], "UP") {
					out++
				}
				if err == nil && st[n] != "UP" {
					notUP++
				}
			}
			pw.out, pw.notUP = max(pw.out, out), max(pw.notUP, notUP)
			pw.mu.Unlock()
			sleepCtx(ctx, 20*time.Millisecond)
		}
	}()
	go func() {
		defer pw.done.Done()
		for ctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			ps, err := readPool(rctx, l)
			rcancel()
			if err == nil {
				pw.mu.Lock()
				pw.holders, pw.waiters = max(pw.holders, len(ps.Holders)), max(pw.waiters, len(ps.Waiters))
				pw.readings++
				pw.mu.Unlock()
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
	}()
	t.Cleanup(pw.stop)
	return pw
}

func (pw *poolWatch) stop() { pw.cancel(); pw.done.Wait() }

func (pw *poolWatch) maxOut() int {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return pw.out
}

func (pw *poolWatch) maxNotUP() int {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return pw.notUP
}

// outages lists when server was out of rotation (not UP) from begin on,
// and for how long, for the log.
func (pw *poolWatch) outages(server string, begin time.Time) string {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	var parts []string
	var out time.Time
	for _, s := range pw.status {
		if s.server != server || s.at.Before(begin) {
			continue
		}
		up := strings.HasPrefix(s.status, "UP")
		switch {
		case !up && out.IsZero():
			out = s.at
		case up && !out.IsZero():
			parts = append(parts, fmt.Sprintf("%v (from +%v)", s.at.Sub(out).Round(time.Millisecond), out.Sub(begin).Round(time.Millisecond)))
			out = time.Time{}
		}
	}
	if !out.IsZero() {
		parts = append(parts, fmt.Sprintf("from +%v, not back", out.Sub(begin).Round(time.Millisecond)))
	}
	if len(parts) == 0 {
		return "never"
	}
	return strings.Join(parts, ", ")
}

// transitions lists HAProxy's status changes from begin on, for the log.
func (pw *poolWatch) transitions(begin time.Time) string {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return transitionsOf(pw.status, begin)
}

// poolOps are the upgrade's operations in one container's history: the
// guard's web-stop, whose reason names unattended-upgrades and dpkg's
// apache2, and the web-start after it.
type poolOps struct {
	stop, start *apitype.HistoryEntry
}

func findPoolOps(es []apitype.HistoryEntry) poolOps {
	var o poolOps
	i := slices.IndexFunc(es, func(e apitype.HistoryEntry) bool {
		return e.Op == "web-stop" && historySays([]apitype.HistoryEntry{e}, []string{"unattended-upgrades", "dpkg: apache2 "})
	})
	if i < 0 {
		return o
	}
	o.stop = &es[i]
	for j := range es {
		if es[j].Op == "web-start" && es[j].Start.After(o.stop.Start) && (o.start == nil || es[j].Start.Before(o.start.Start)) {
			o.start = &es[j]
		}
	}
	return o
}

// withdrawing is the phase that follows the slot's.
const withdrawing = string(apitype.PhaseWithdrawing)

// slotWait is how long e waited for the pool's slot (its phase
// waiting-for-slot, up to its withdraw), and whether it has both.
func slotWait(e apitype.HistoryEntry) (time.Duration, bool) {
	wait, out := slotPhaseStart(e, string(maintenance.WaitingForSlot)), slotPhaseStart(e, withdrawing)
	if wait.IsZero() || out.IsZero() {
		return 0, false
	}
	return out.Sub(wait), true
}

// slotPhaseStart is when the entry's phase began (zero if absent).
func slotPhaseStart(e apitype.HistoryEntry, phase string) time.Time {
	for _, p := range e.Phases {
		if p.Phase == phase {
			return p.Start
		}
	}
	return time.Time{}
}

// checkPoolOps checks each container's web-stop and web-start of the
// upgrade, and that they went one at a time: the second's stop asked for
// the slot while the first held it, and waited in line for it.
func checkPoolOps(t *testing.T, names []string, ops []poolOps, upBegin time.Time) {
	t.Helper()
	complete := true
	for i, o := range ops {
		if o.stop == nil || o.start == nil {
			t.Errorf("%s: no web-stop whose reason names unattended-upgrades and dpkg: apache2, and web-start after it, in the history", names[i])
			complete = false
			continue
		}
		for _, w := range o.stop.Warnings {
			if strings.Contains(w, "over the pool's budget") {
				t.Errorf("%s: its stop went over the pool's budget: %s", names[i], w)
			}
		}
		if o.stop.Outcome != "ok" || o.start.Outcome != "ok" || o.start.BackInRotation != "1/1" {
			t.Errorf("%s: web-stop %s, web-start %s back %q: want ok, ok, 1/1", names[i], o.stop.Outcome, o.start.Outcome, o.start.BackInRotation)
		}
	}
	if !complete {
		return
	}
	first, second := 0, 1
	if slotPhaseStart(*ops[1].stop, withdrawing).Before(slotPhaseStart(*ops[0].stop, withdrawing)) {
		first, second = 1, 0
	}
	f, s := ops[first], ops[second]
	wait, waited := slotWait(*s.stop)
	t.Logf("%s out first: withdrawn at +%v, back at +%v (out %v by its agent); %s asked for the slot at +%v, waited for it %v, withdrawn at +%v, back at +%v (out %v)",
		names[first], slotPhaseStart(*f.stop, withdrawing).Sub(upBegin).Round(time.Millisecond), f.start.End.Sub(upBegin).Round(time.Millisecond),
		f.start.End.Sub(slotPhaseStart(*f.stop, withdrawing)).Round(time.Millisecond),
		names[second], s.stop.Start.Sub(upBegin).Round(time.Millisecond), wait.Round(time.Millisecond),
		slotPhaseStart(*s.stop, withdrawing).Sub(upBegin).Round(time.Millisecond), s.start.End.Sub(upBegin).Round(time.Millisecond),
		s.start.End.Sub(slotPhaseStart(*s.stop, withdrawing)).Round(time.Millisecond))
	// The second asked while the first held the slot, or the two
	// upgrades did not meet and the test proves nothing.
	if !s.stop.Start.Before(f.start.Start) {
		t.Errorf("%s's stop began at +%v, after %s was being put back (+%v): the upgrades did not meet, nothing was proven",
			names[second], s.stop.Start.Sub(upBegin).Round(time.Millisecond), names[first], f.start.Start.Sub(upBegin).Round(time.Millisecond))
	}
	// It waited in line: its withdraw came only once the first was
	// being put back (its start gives the slot back).
	if !waited || slotPhaseStart(*s.stop, withdrawing).Before(f.start.Start) {
		t.Errorf("%s's web-stop did not wait for the slot: phases %s; %s's web-start began at %v",
			names[second], historyLine([]apitype.HistoryEntry{*s.stop}), names[first], f.start.Start.Format("15:04:05.000"))
	}
}

// logPoolFigures logs what the upgrades took, HAProxy's and the pool's
// view, and the load's failures and moves.
func logPoolFigures(t *testing.T, names []string, runs []uuRun, watch *poolWatch, lr loadgen.Result, upBegin time.Time) {
	t.Helper()
	for i, r := range runs {
		t.Logf("%s: unattended-upgrade took %v; apache2's postinst ran %v after both began, asked for the restart after %v", names[i], r.took.Round(time.Millisecond),
			r.postinst.Round(time.Millisecond), r.arrived.Round(time.Millisecond))
		t.Logf("%s: unattended-upgrade -v:\n%s", names[i], r.out)
	}
	t.Logf("HAProxy's transitions: %s", watch.transitions(upBegin))
	for _, n := range names {
		t.Logf("HAProxy: %s out of rotation %s", n, watch.outages(n, upBegin))
	}
	t.Logf("HAProxy: at most %d of %v out of rotation at once (not UP: DOWN, coming up), %d not plainly UP (going down counted too); the pool: at most %d holders, %d waiters at once (%d readings)",
		watch.maxOut(), names, watch.maxNotUP(), watch.holders, watch.waiters, watch.readings)
	t.Logf("load: requests %d, failed %d, users moved %d, by server %v", lr.Requests, lr.Failed, lr.Moved, lr.ByServer)
	for _, fl := range lr.Failures {
		t.Logf("  failed: %s (+%v) user %d %s %s", fl.Time.Format("15:04:05.000"), fl.Time.Sub(upBegin).Round(time.Millisecond), fl.User, fl.Kind, fl.Err)
	}
	for _, m := range lr.Moves {
		t.Logf("  moved: %s (+%v) user %d %s -> %s", m.Time.Format("15:04:05.000"), m.Time.Sub(upBegin).Round(time.Millisecond), m.User, m.From, m.To)
	}
}
