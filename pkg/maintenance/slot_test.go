package maintenance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/state"
)

// fakeSlots is a pool of one host: the slot is free, held, or (busy)
// held by another until the context ends; down fails every call as an
// unreachable etcd does.
type fakeSlots struct {
	mu       sync.Mutex
	held     *pool.Claim
	busy     bool
	down     bool
	log      *[]string // shared with the forwarder's calls, for order
	releases int
	// onAcquire, when set, runs as a slot is granted (time passing in line).
	onAcquire func()
	// freed, when set, frees a busy slot when closed: the waiter in line
	// gets it.
	freed chan struct{}
	// lostAnswer: the grant commits but its answer is lost (unavailable).
	lostAnswer bool
}

func (f *fakeSlots) note(s string) {
	if f.log != nil {
		*f.log = append(*f.log, s)
	}
}

func (f *fakeSlots) Acquire(ctx context.Context, c pool.Claim, wait func(pool.Wait)) (pool.Claim, error) {
	f.mu.Lock()
	if f.down {
		f.mu.Unlock()
		return pool.Claim{}, fmt.Errorf("pool web: etcd at http://198.19.0.10:2379: no answer: %w", pool.ErrUnavailable)
	}
	if f.held != nil {
		defer f.mu.Unlock()
		return *f.held, nil
	}
	if f.lostAnswer {
		defer f.mu.Unlock()
		c.ID = "web1"
		f.held = &c
		return pool.Claim{}, fmt.Errorf("pool web: take a slot: no answer within 5s: %w (it may still commit)", pool.ErrUnavailable)
	}
	if f.busy {
		f.mu.Unlock()
		wait(pool.Wait{Pool: "web", Allowed: 1, Holders: []pool.Claim{{ID: "web3", Reason: "kernel update", By: "root", Since: time.Now()}}})
		select {
		case <-ctx.Done():
			return pool.Claim{}, ctx.Err()
		case <-f.freed: // nil: never
		}
		f.mu.Lock()
		f.busy = false
	}
	defer f.mu.Unlock()
	c.ID = "web1"
	f.held = &c
	f.note("acquire")
	if f.onAcquire != nil {
		f.onAcquire()
	}
	return c, nil
}

func (f *fakeSlots) Release(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return fmt.Errorf("etcd down: %w", pool.ErrUnavailable)
	}
	f.held = nil
	f.releases++
	f.note("release")
	return nil
}

func (f *fakeSlots) Held(context.Context) (*pool.Claim, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, pool.ErrUnavailable
	}
	return f.held, nil
}

func (f *fakeSlots) Name() string { return "web" }

func (f *fakeSlots) isHeld() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.held != nil }

func (f *fakeSlots) setDown(d bool) { f.mu.Lock(); f.down = d; f.mu.Unlock() }

func newPoolRig(t *testing.T, slots *fakeSlots, initial *state.State) *rig {
	t.Helper()
	r := newRigDeps(t, context.Background(), initial, func(d *Deps) { d.Slots = slots; d.PoolWait = 100 * time.Millisecond })
	slots.log = &r.fw.calls
	return r
}

// The slot is taken before anything is withdrawn, recorded in the state
// before the withdraw, and given back after the restore.
func TestPoolRestartTakesAndGivesBack(t *testing.T) {
	slots := &fakeSlots{}
	r := newPoolRig(t, slots, nil)
	res, err := r.e.Restart(alice, nil)
	if err != nil {
		t.Fatal(err)
	}
	acq, rel := lastIndex(r.fw.calls, "acquire"), lastIndex(r.fw.calls, "release")
	wd, rs := lastIndex(r.fw.calls, "withdraw"), lastIndex(r.fw.calls, "restore")
	if acq < 0 || wd < 0 || rs < 0 || rel < 0 || acq >= wd || wd >= rs || rs >= rel {
		t.Fatalf("calls %v: want acquire, withdraw, restore, release in that order", r.fw.calls)
	}
	if !strings.Contains(res.Note, "pool web: slot released") || slots.isHeld() {
		t.Errorf("note %q, held %v", res.Note, slots.isHeld())
	}
	if st, _ := r.store.Load(); st.Slot != nil {
		t.Errorf("the state still owes a slot: %+v", st.Slot)
	}
}

// etcd unreachable: refused with its own code, nothing withdrawn.
func TestPoolUnavailableChangesNothing(t *testing.T) {
	slots := &fakeSlots{down: true}
	r := newPoolRig(t, slots, nil)
	for _, op := range []func(Request, func(Event)) (Result, error){r.e.Restart, r.e.Enter} {
		_, err := op(alice, nil)
		wantCode(t, err, CodePoolUnavailable)
		if !strings.Contains(err.Error(), "198.19.0.10:2379") || !strings.Contains(err.Error(), "nothing was changed") {
			t.Errorf("message %q", err)
		}
	}
	if len(r.fw.calls) != 0 || len(r.store.saves) != 0 {
		t.Fatalf("calls %v, saves %v: want none", r.fw.calls, r.store.saves)
	}
}

// A full pool: the waiter is shown who holds the slots, then busy with
// its own code after the pool wait, or at once when its caller leaves,
// or when the opening does not wait (slotNow); nothing changed either
// way.
func TestPoolBusy(t *testing.T) {
	slots := &fakeSlots{busy: true}
	r := newPoolRig(t, slots, nil)
	var shown []string
	_, err := r.e.Enter(alice, func(ev Event) {
		if ev.Phase == WaitingForSlot {
			shown = append(shown, ev.Message)
		}
	})
	wantCode(t, err, CodePoolBusy)
	if len(shown) != 1 || !strings.Contains(shown[0], "pool web: 1/1 unavailable — web3, kernel update, by root") {
		t.Errorf("shown %q", shown)
	}
	done := make(chan struct{})
	req := alice
	req.Done, req.PoolWait = done, time.Hour
	go func() { time.Sleep(50 * time.Millisecond); close(done) }()
	start := time.Now()
	_, err = r.e.Restart(req, nil)
	wantCode(t, err, CodePoolBusy)
	if time.Since(start) > 10*time.Second || !strings.Contains(err.Error(), "gave up") {
		t.Errorf("after %v: %v", time.Since(start), err)
	}
	// The opening's slotNow: busy at once, without waiting in line.
	req.Done = nil
	_, err = between(r.e, state.OpRestart, req, func(r *opRun) error { return r.takeOut(opening{slotNow: true}) })
	if CodeOf(err) != CodePoolBusy || !strings.Contains(err.Error(), "free now") {
		t.Errorf("slotNow: %v", err)
	}
	if len(r.fw.calls) != 0 || r.e.Phase() != state.InService {
		t.Fatalf("calls %v, phase %s", r.fw.calls, r.e.Phase())
	}
}

// Held: the slot stays taken, across an agent restart, until exit; the
// web server not ready after a restart keeps it too.
func TestPoolSlotHeldUntilBack(t *testing.T) {
	slots := &fakeSlots{}
	r := newPoolRig(t, slots, nil)
	if _, err := r.e.Enter(alice, nil); err != nil {
		t.Fatal(err)
	}
	st, _ := r.store.Load()
	if st.Slot == nil || st.Slot.Pool != "web" || st.Slot.Op != state.OpEnter || !slots.isHeld() {
		t.Fatalf("state slot %+v, held %v", st.Slot, slots.isHeld())
	}
	// The agent restarts: still held, the slot still owed.
	r2 := newPoolRig(t, slots, &st)
	if r2.e.Phase() != state.Held || !slots.isHeld() {
		t.Fatalf("after restart: %s, held %v", r2.e.Phase(), slots.isHeld())
	}
	if _, err := r2.e.Exit(alice, nil); err != nil {
		t.Fatal(err)
	}
	if slots.isHeld() {
		t.Fatal("exit kept the slot")
	}
	r2.ready.err = errors.New("connection refused")
	_, err := r2.e.Restart(alice, nil)
	wantCode(t, err, CodeNotReady)
	if !slots.isHeld() {
		t.Fatal("a server that did not come back gave its slot back")
	}
}

// Giving back never holds the server out: with etcd down the restore
// goes on, the release is pending in the state, and done when etcd is
// back.
func TestPoolReleasePending(t *testing.T) {
	slots := &fakeSlots{}
	r := newPoolRig(t, slots, nil)
	if _, err := r.e.Enter(alice, nil); err != nil {
		t.Fatal(err)
	}
	slots.setDown(true)
	res, err := r.e.Exit(alice, nil)
	if err != nil || res.Phase != state.InService {
		t.Fatalf("%+v %v", res, err)
	}
	if !strings.Contains(res.Note, "slot release pending") {
		t.Errorf("note %q", res.Note)
	}
	if st, _ := r.store.Load(); st.Slot == nil || !st.Slot.Release {
		t.Fatalf("state slot %+v: want a pending release", st.Slot)
	}
	slots.setDown(false)
	r.e.kickReleaser()
	for end := time.Now().Add(5 * time.Second); slots.isHeld(); {
		if time.Now().After(end) {
			t.Fatal("the release was not retried")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for end := time.Now().Add(5 * time.Second); r.e.led.get().Slot != nil; {
		if time.Now().After(end) {
			t.Fatal("the state still owes the slot")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lastIndex is where the last call named v is (calls read "v" or "v@phase").
func lastIndex(s []string, v string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if name, _, _ := strings.Cut(s[i], "@"); name == v {
			return i
		}
	}
	return -1
}

// gatedRotation holds its first wait for the server back until gate is
// closed (a slow load balancer), after closing waiting.
type gatedRotation struct {
	fakeRotation
	once          sync.Once
	waiting, gate chan struct{}
}

func (g *gatedRotation) Wait(ctx context.Context, w lbview.Want, since time.Time) lbview.Confirmation {
	if w == lbview.Back {
		first := false
		g.once.Do(func() { first = true })
		if first {
			close(g.waiting)
			<-g.gate
		}
	}
	return g.fakeRotation.Wait(ctx, w, since)
}

// The releaser waits for the load balancers before giving an owed slot
// back; an operation that took the server out meanwhile (its slot is the
// same claim, given back by Acquire) must keep it: the releaser checks
// again after its wait.
func TestReleaserKeepsASlotTakenAgainDuringItsWait(t *testing.T) {
	since := time.Unix(1_700_000_000, 0).UTC()
	slots := &fakeSlots{held: &pool.Claim{ID: "web1", Op: "exit", Since: since}}
	rot := &gatedRotation{fakeRotation: fakeRotation{lbs: []lbview.LB{lb1}}, waiting: make(chan struct{}), gate: make(chan struct{})}
	owed := state.State{Version: state.Version, Phase: state.InService, Slot: &state.Slot{Pool: "web", Op: state.OpExit, Since: since}}
	r := newRigDeps(t, context.Background(), &owed, func(d *Deps) { d.Slots, d.Rotation, d.PoolWait = slots, rot, time.Second })
	<-rot.waiting // the releaser waits for the load balancers
	if _, err := r.e.Enter(alice, nil); err != nil {
		t.Fatal(err)
	}
	close(rot.gate)
	time.Sleep(100 * time.Millisecond) // the releaser's turn
	if st, _ := r.store.Load(); !slots.isHeld() || st.Slot == nil || st.Phase != state.Held {
		t.Fatalf("slot held %v, state %+v: the held server's slot was given back", slots.isHeld(), st)
	}
}

// A slot granted that the state file cannot record, and that etcd does
// not take back either, is known only to etcd: the releaser asks the pool
// for it at its next round (not only at the agent's start), records it
// and gives it back once both answer again.
func TestPoolUnrecordedSlotIsFoundAgain(t *testing.T) {
	slots := &fakeSlots{}
	r := newPoolRig(t, slots, nil)
	slots.onAcquire = func() {
		slots.down = true // under slots.mu: Release fails next
		r.store.mu.Lock()
		r.store.fail = errors.New("disk full")
		r.store.mu.Unlock()
	}
	_, err := r.e.Restart(alice, nil)
	wantCode(t, err, CodeInternal)
	if !strings.Contains(err.Error(), "giving the pool slot back failed too") || !slots.isHeld() {
		t.Fatalf("err %v, held %v: want the failed give-back said, the slot still in etcd", err, slots.isHeld())
	}
	if !r.e.unrecorded.Load() {
		t.Fatal("the engine does not know a slot is unrecorded")
	}
	// A round while etcd is still down changes nothing and keeps asking.
	r.e.releaseOnce(r.e.unrecorded.Load())
	if !r.e.unrecorded.Load() || !slots.isHeld() {
		t.Fatalf("after a round with etcd down: unrecorded %v, held %v", r.e.unrecorded.Load(), slots.isHeld())
	}
	slots.onAcquire = nil
	slots.setDown(false)
	r.store.mu.Lock()
	r.store.fail = nil
	r.store.mu.Unlock()
	r.e.releaseOnce(r.e.unrecorded.Load())
	// This round, or the agent's releaser (kicked by the failure) if it
	// had the engine meanwhile: given back, and the state owes nothing.
	waitUntil(t, "the slot given back once etcd and the disk are back", func() bool {
		st, _ := r.store.Load()
		return !slots.isHeld() && !r.e.unrecorded.Load() && st.Slot == nil
	})
}

// A grant that commits in etcd but whose answer is lost: the operation
// fails closed (nothing withdrawn, the server in service), and the
// releaser, told a slot may be there, finds it and gives it back; the
// pool is not left stuck until the agent restarts.
func TestPoolLostGrantIsGivenBack(t *testing.T) {
	slots := &fakeSlots{lostAnswer: true}
	r := newPoolRig(t, slots, nil)
	_, err := r.e.Restart(alice, nil)
	wantCode(t, err, CodePoolUnavailable)
	if r.fw.withdrawn || r.e.Phase() != state.InService {
		t.Fatalf("withdrawn %v, phase %s", r.fw.withdrawn, r.e.Phase())
	}
	// The releaser, kicked by the failure, may be done already.
	waitUntil(t, "the releaser gives the slot back, and the state owes nothing", func() bool {
		st, _ := r.store.Load()
		return !slots.isHeld() && st.Slot == nil && !r.e.unrecorded.Load()
	})
	slots.mu.Lock()
	released := slots.releases
	slots.mu.Unlock()
	if released != 1 {
		t.Fatalf("releases %d, want 1: the releaser's", released)
	}
}

// A slot in etcd that nothing told the engine of (its news lost some
// way nobody saw) is still given back within askPoolEvery rounds.
func TestPoolUnknownSlotIsGivenBack(t *testing.T) {
	slots := &fakeSlots{}
	// The engine ends with the test: the releaser started here with it.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := newRigDeps(t, ctx, nil, func(d *Deps) { d.Slots = slots; d.PoolWait = 100 * time.Millisecond })
	slots.log = &r.fw.calls
	// Rounds of 5 ms (Resume's releaser has 10 s ones: asleep here).
	go r.e.releaser(5 * time.Millisecond)
	for i := range 3 {
		// After the releaser's first round, which asks anyway.
		time.Sleep(20 * time.Millisecond)
		slots.mu.Lock()
		slots.held = &pool.Claim{ID: "web1", Op: "restart", Since: time.Now()}
		slots.mu.Unlock()
		if r.e.unrecorded.Load() {
			t.Fatal("unrecorded: the test would not test the backstop")
		}
		waitUntil(t, fmt.Sprintf("the releaser's backstop gives the slot back (%d)", i+1), func() bool { return !slots.isHeld() })
	}
}

// waitUntil waits (10 s at most) for cond.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("after 10 s: %s", what)
		}
	}
}
