package maintenance

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/runner"
	"github.com/drainctl/drainctl/pkg/state"
)

// dpkgRestart is what policy-rc.d asks for apache2's postinst.
var dpkgRestart = Request{Who: "dpkg", Reason: "dpkg: apache2 2.4.68-1~deb12u1 → 2.4.71-1~deb12u1", Unit: "apache2.service", Job: "restart"}

// unitRestarts is a fake systemctl restart: it notes each unit, and the
// forwarder's calls so far (what was done before it).
type unitRestarts struct {
	mu     sync.Mutex
	units  []string
	before []string
	r      *rig
	done   chan struct{}
}

func (u *unitRestarts) restart(_ context.Context, unit string) (runner.Output, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.units = append(u.units, unit)
	u.before = append(u.before, calls(u.r))
	if len(u.units) == 1 {
		close(u.done)
	}
	return runner.Output{Command: "systemctl restart " + unit}, nil
}

func newPolicyRig(t *testing.T, slots *fakeSlots, initial *state.State, packagesBusy func() bool) (*rig, *unitRestarts, *memHistory) {
	t.Helper()
	u := &unitRestarts{done: make(chan struct{})}
	h := &memHistory{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := newRigDeps(t, ctx, initial, func(d *Deps) {
		d.Slots, d.PoolWait, d.WebWait, d.History = slots, 100*time.Millisecond, 100*time.Millisecond, h
		d.UnitRestart, d.PackagesBusy = u.restart, packagesBusy
	})
	u.r = r
	slots.log = &r.fw.calls
	return r, u, h
}

// waitRestart waits (bounded) for the owed restart to have run and the
// engine to be idle again.
func waitRestart(t *testing.T, r *rig, u *unitRestarts, h *memHistory) {
	t.Helper()
	select {
	case <-u.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the restart owed never ran")
	}
	// Its history entry is written once the engine is let go.
	for i := 0; ; i++ {
		h.mu.Lock()
		n := len(h.entries)
		h.mu.Unlock()
		if n > 0 {
			break
		}
		if i == 1000 {
			t.Fatal("the restart owed left no history entry")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r.e.led.get().Op != state.OpNone {
		t.Fatalf("an operation still runs: %+v", r.e.led.get())
	}
}

// The pool full: dpkg's restart is deferred (101), owed in the state
// file; once the slot comes drainctl restarts the unit itself, drained
// (slot, withdraw, new connections held, the restart, release, restore,
// slot back), and the owed record goes; the history names it.
func TestPolicyDefersUntilASlotThenRestartsDrained(t *testing.T) {
	slots := &fakeSlots{busy: true, freed: make(chan struct{})}
	r, u, h := newPolicyRig(t, slots, nil, func() bool { return false })
	ans, err := r.e.WebPolicy(dpkgRestart)
	if err != nil || !ans.Defer || ans.Owed == nil || ans.Owed.Unit != "apache2.service" || !strings.Contains(ans.Note, "deferred") {
		t.Fatalf("policy: %+v, %v", ans, err)
	}
	saved, _ := r.store.Load()
	if saved.Owed == nil || saved.Owed.Reason != dpkgRestart.Reason || saved.Owed.Action != "restart" {
		t.Fatalf("the restart owed is not in the state file: %+v", saved.Owed)
	}
	// A second package of the same upgrade asks again: the same restart.
	again := dpkgRestart
	again.Job = "try-restart"
	if ans, err := r.e.WebPolicy(again); err != nil || !ans.Defer || !strings.Contains(ans.Note, "owed already") {
		t.Fatalf("policy again: %+v, %v", ans, err)
	}
	// Waiting in line: nothing touched, still in service, still owed.
	if r.e.Phase() != state.InService || r.fw.withdrawn || len(u.units) != 0 || r.e.led.get().Owed == nil {
		t.Fatalf("while the pool is full: %s, withdrawn %v, restarts %v", r.e.Phase(), r.fw.withdrawn, u.units)
	}
	close(slots.freed)
	waitRestart(t, r, u, h)
	st := r.e.led.get()
	if st.Phase != state.InService || st.Owed != nil || r.fw.withdrawn || r.fw.isHeld() || slots.isHeld() {
		t.Fatalf("after the owed restart: %+v, withdrawn %v, conns held %v, slot %v", st, r.fw.withdrawn, r.fw.isHeld(), slots.isHeld())
	}
	if len(u.units) != 1 || u.units[0] != "apache2.service" || u.before[0] != "acquire,withdraw,hold" {
		t.Fatalf("restarts %v, before them %v", u.units, u.before)
	}
	if got := calls(r); got != "acquire,withdraw,hold,release,restore,release" {
		t.Errorf("calls %s", got)
	}
	if len(h.entries) != 1 || h.entries[0].Op != "restart" || h.entries[0].Reason != dpkgRestart.Reason+" (deferred for a pool slot)" {
		t.Fatalf("history: %+v", h.entries)
	}
}

// What policy-rc.d does not defer: another action, no pool, a server
// already out (the guard's stop finds it).
func TestPolicyGoesOn(t *testing.T) {
	r, u, _ := newPolicyRig(t, &fakeSlots{busy: true}, nil, func() bool { return false })
	for _, job := range []string{"start", "stop", "reload", "status"} {
		req := dpkgRestart
		req.Job = job
		if ans, err := r.e.WebPolicy(req); err != nil || ans.Defer {
			t.Errorf("%s: %+v, %v", job, ans, err)
		}
	}
	bad := dpkgRestart
	bad.Unit = "apache2 restart; rm"
	if _, err := r.e.WebPolicy(bad); err == nil {
		t.Error("a malformed unit was taken")
	}
	if _, err := r.e.Enter(alice, nil); err == nil {
		t.Fatal("enter with the pool full")
	}
	held := state.State{Version: state.Version, Phase: state.Held, Holder: &state.Holder{Who: "alice", Since: time.Now()}}
	rh, _, _ := newPolicyRig(t, &fakeSlots{busy: true}, &held, func() bool { return false })
	if ans, err := rh.e.WebPolicy(dpkgRestart); err != nil || ans.Defer || rh.e.led.get().Owed != nil {
		t.Errorf("held: %+v, %v", ans, err)
	}
	nopool := newRig(t, nil)
	if ans, err := nopool.e.WebPolicy(dpkgRestart); err != nil || ans.Defer || !strings.Contains(ans.Note, "no pool") {
		t.Errorf("no pool: %+v, %v", ans, err)
	}
	if len(u.units) != 0 || r.e.led.get().Owed != nil {
		t.Errorf("restarts %v, owed %+v", u.units, r.e.led.get().Owed)
	}
}

// A restart owed when the agent stopped is run by the next one, after
// the package manager is done; a restart by systemd meanwhile (a
// person's), drained as ever while the owed one waits for its slot,
// clears it.
func TestOwedRestartSurvivesTheAgentAndWaitsForDpkg(t *testing.T) {
	owed := state.State{Version: state.Version, Phase: state.InService,
		Owed: &state.Owed{Unit: "apache2.service", Action: "restart", Reason: "dpkg: apache2", Since: time.Unix(1_700_000_000, 0)}}
	var mu sync.Mutex
	dpkg := true
	asked := make(chan struct{}, 1)
	busy := func() bool {
		mu.Lock()
		defer mu.Unlock()
		select {
		case asked <- struct{}{}:
		default:
		}
		return dpkg
	}
	r, u, h := newPolicyRig(t, &fakeSlots{}, &owed, busy)
	<-asked
	if len(u.units) != 0 || r.e.led.get().Owed == nil {
		t.Fatalf("restarted while dpkg runs: %v", u.units)
	}
	mu.Lock()
	dpkg = false
	mu.Unlock()
	waitRestart(t, r, u, h)
	if st := r.e.led.get(); st.Owed != nil || st.Phase != state.InService || len(h.entries) != 1 || !strings.Contains(h.entries[0].Reason, "deferred") {
		t.Fatalf("after: %+v, history %+v", st, h.entries)
	}

	r2, u2, _ := newPolicyRig(t, &fakeSlots{busy: true}, nil, func() bool { return false })
	if ans, _ := r2.e.WebPolicy(dpkgRestart); !ans.Defer {
		t.Fatal("not deferred")
	}
	hand := sysRestart
	hand.Reason = "systemctl restart apache2 by alice"
	// The owed restart waits in the pool's line without claiming the
	// engine: a person's restart meanwhile is drained, not busy.
	if _, err := r2.e.WebStop(hand, nil); err != nil {
		t.Fatalf("a restart by hand while the restart owed waits for a slot: %v", err)
	}
	if st := r2.e.led.get(); st.Owed != nil {
		t.Fatalf("a restart by hand left the restart owed: %+v", st.Owed)
	}
	if len(u2.units) != 0 {
		t.Fatalf("restarts: %v", u2.units)
	}
}
