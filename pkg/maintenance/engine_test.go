package maintenance

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/history"
	"github.com/drainctl/drainctl/pkg/state"
)

type rig struct {
	e     *Engine
	store *memStore
	fw    *fakeForwarder
	table *fakeTable
	run   *fakeRunner
	ready *fakeReady
	clock *fakeClock
}

func newRig(t *testing.T, initial *state.State) *rig {
	t.Helper()
	return newRigCtx(t, context.Background(), initial)
}

// newRigCtx makes a rig whose engine lives as long as ctx (the agent's
// lifetime: cancelling it is SIGTERM).
func newRigCtx(t *testing.T, ctx context.Context, initial *state.State) *rig {
	t.Helper()
	return newRigDeps(t, ctx, initial, nil)
}

// newRigDeps is newRigCtx with more dependencies set by more.
func newRigDeps(t *testing.T, ctx context.Context, initial *state.State, more func(*Deps)) *rig {
	t.Helper()
	r := &rig{store: &memStore{}, table: &fakeTable{}, run: &fakeRunner{}, ready: &fakeReady{},
		clock: &fakeClock{t: time.Unix(1_700_000_000, 0).UTC()}}
	if initial != nil {
		r.store.st = *initial
	}
	r.fw = &fakeForwarder{store: r.store}
	p := drain.DefaultPolicy()
	p.Deadline = 10 * time.Second
	d := Deps{
		Forwarder: r.fw, Forwards: []forward.Forward{fwd}, Table: r.table, Policy: p,
		Runner: r.run, Ready: r.ready, Store: r.store, Clock: r.clock,
	}
	if more != nil {
		more(&d)
	}
	r.e = New(ctx, d)
	if _, err := r.e.Resume(); err != nil {
		t.Fatal(err)
	}
	// Under their locks: Resume may have left work running (a reboot to
	// finish).
	r.fw.mu.Lock()
	r.fw.calls = nil
	r.fw.mu.Unlock()
	r.store.mu.Lock()
	r.store.saves = nil
	r.store.mu.Unlock()
	return r
}

var alice = Request{Who: "alice", Reason: "kernel update"}

func phases(ps ...state.Phase) []state.Phase { return ps }

func wantCode(t *testing.T, err error, code Code) {
	t.Helper()
	if CodeOf(err) != code {
		t.Fatalf("error %v: code %s, want %s", err, CodeOf(err), code)
	}
}

func TestRestartHappyPath(t *testing.T) {
	r := newRig(t, nil)
	var seen []state.Phase
	res, err := r.e.Restart(alice, func(ev Event) {
		if ev.Drain == nil && ev.Output == nil {
			seen = append(seen, ev.Phase)
		}
	})
	if err != nil || res.Phase != state.InService || res.ConfigTest == nil || res.Restart == nil {
		t.Fatalf("%+v, %v", res, err)
	}
	// Each command's own output (the restart's once overwrote the config test's).
	if res.ConfigTest.Command != "apache2ctl -t" || res.ConfigTest.Output != "Syntax OK" || res.Restart.Command != "apache2ctl -k graceful" {
		t.Errorf("config test %+v, restart %+v", *res.ConfigTest, *res.Restart)
	}
	want := phases(state.Withdrawing, state.Draining, state.ConfigTest, state.Restarting, state.ReadyCheck, state.Restoring, state.InService)
	if !reflect.DeepEqual(r.store.saves, want) || !reflect.DeepEqual(seen, want) {
		t.Errorf("phases written %v, announced %v; want %v", r.store.saves, seen, want)
	}
	// Each change of the forward came after the phase announcing it was written.
	if got := r.fw.Calls(); !reflect.DeepEqual(got, []string{"withdraw@withdrawing", "restore@restoring"}) {
		t.Errorf("forwarder calls %v", got)
	}
	if !reflect.DeepEqual(r.run.calls, []string{"configtest", "restart"}) || r.ready.calls != 1 {
		t.Errorf("runner %v, ready checks %d", r.run.calls, r.ready.calls)
	}
	if st := r.store.st; st.Holder != nil || st.Op != state.OpNone || len(st.History) != 7 {
		t.Errorf("final state %+v", st)
	}
}

func TestConfigTestFailureRestartsNothing(t *testing.T) {
	r := newRig(t, nil)
	r.run.configErr = errors.New(`"apache2ctl -t" failed: AH00526: Syntax error on line 12`)
	res, err := r.e.Restart(alice, nil)
	wantCode(t, err, CodeConfigTest)
	if !strings.Contains(err.Error(), "nothing was restarted") || !strings.Contains(err.Error(), "AH00526") {
		t.Errorf("message: %v", err)
	}
	if !reflect.DeepEqual(r.run.calls, []string{"configtest"}) {
		t.Errorf("runner calls %v: the restart ran", r.run.calls)
	}
	if res.Phase != state.InService || r.fw.withdrawn {
		t.Errorf("phase %s, withdrawn %v: want back in service", res.Phase, r.fw.withdrawn)
	}
}

func TestRestartCommandFailureKeepsTheServerOut(t *testing.T) {
	r := newRig(t, nil)
	r.run.restartErr = errBoom
	res, err := r.e.Restart(alice, nil)
	wantCode(t, err, CodeRestart)
	if res.Phase != state.Held || !r.fw.withdrawn || r.ready.calls != 0 || r.store.st.LastError == "" {
		t.Fatalf("%+v withdrawn=%v ready=%d state=%+v", res, r.fw.withdrawn, r.ready.calls, r.store.st)
	}
}

func TestNotReadyAfterRestartKeepsTheServerOut(t *testing.T) {
	r := newRig(t, nil)
	r.ready.err = errors.New("connection refused")
	res, err := r.e.Restart(alice, nil)
	wantCode(t, err, CodeNotReady)
	if res.Phase != state.Held || !r.fw.withdrawn || !strings.Contains(r.store.st.LastError, "connection refused") {
		t.Fatalf("%+v withdrawn=%v state=%+v", res, r.fw.withdrawn, r.store.st)
	}
	for _, c := range r.fw.Calls() {
		if strings.HasPrefix(c, "restore") {
			t.Fatalf("restored although not ready: %v", r.fw.Calls())
		}
	}
	// Once the web server answers, exit puts it back.
	r.ready.err = nil
	if res, err := r.e.Exit(Request{Who: "bob"}, nil); err != nil || res.Phase != state.InService || r.fw.withdrawn {
		t.Fatalf("exit after fixing: %+v, %v", res, err)
	}
}

func TestDrainDeadlineAbortRollsBack(t *testing.T) {
	r := newRig(t, nil)
	r.table.busy = true
	req := alice
	req.OnDeadline = drain.Abort
	res, err := r.e.Restart(req, nil)
	wantCode(t, err, CodeDeadline)
	if res.Phase != state.InService || r.fw.withdrawn || len(r.run.calls) != 0 {
		t.Fatalf("%+v withdrawn=%v runner=%v", res, r.fw.withdrawn, r.run.calls)
	}
	// With the default policy (proceed) the same drain goes on to restart.
	if res, err := r.e.Restart(alice, nil); err != nil || res.Drain.Outcome != drain.DeadlineProceed || len(r.run.calls) != 2 {
		t.Fatalf("proceed: %+v, %v, runner %v", res, err, r.run.calls)
	}
}

func TestEnterHoldExit(t *testing.T) {
	r := newRig(t, nil)
	req := alice
	req.TTL = time.Hour
	res, err := r.e.Enter(req, nil)
	if err != nil || res.Phase != state.Held || res.Holder == nil || res.Holder.Who != "alice" || res.Holder.Reason != "kernel update" {
		t.Fatalf("enter: %+v, %v", res, err)
	}
	if want := res.Holder.Since.Add(time.Hour); !res.Holder.Until.Equal(want) {
		t.Errorf("TTL: until %v, want %v", res.Holder.Until, want)
	}
	// Enter again: nothing changes, and it says who holds the server.
	calls := len(r.fw.Calls())
	if res, err := r.e.Enter(Request{Who: "cron"}, nil); err != nil || !strings.Contains(res.Note, "already in maintenance, held by alice") || len(r.fw.Calls()) != calls {
		t.Fatalf("second enter: %+v, %v", res, err)
	}
	// A restart is refused, naming the holder.
	if _, err := r.e.Restart(Request{Who: "cron"}, nil); CodeOf(err) != CodeBusy || !strings.Contains(err.Error(), "alice") {
		t.Fatalf("restart while held: %v", err)
	}
	if res, err := r.e.Exit(Request{Who: "alice"}, nil); err != nil || res.Phase != state.InService || r.fw.withdrawn || r.store.st.Holder != nil {
		t.Fatalf("exit: %+v, %v, %+v", res, err, r.store.st)
	}
	if res, err := r.e.Exit(Request{Who: "alice"}, nil); err != nil || res.Note != "not in maintenance" {
		t.Fatalf("second exit: %+v, %v", res, err)
	}
}

func TestExitNotReadyStaysOut(t *testing.T) {
	r := newRig(t, &state.State{Phase: state.Held, Holder: &state.Holder{Who: "alice"}})
	r.ready.err = errBoom
	res, err := r.e.Exit(Request{Who: "alice"}, nil)
	wantCode(t, err, CodeNotReady)
	if res.Phase != state.Held || !r.fw.withdrawn {
		t.Fatalf("%+v, withdrawn %v", res, r.fw.withdrawn)
	}
}

func TestOneOperationAtATime(t *testing.T) {
	r := newRig(t, nil)
	gate := make(chan struct{})
	r.table.gate = gate
	done := make(chan error)
	go func() { _, err := r.e.Enter(alice, nil); done <- err }()
	// Wait until the first enter is draining (blocked on the gate).
	for i := 0; r.store.last() != state.Draining; i++ {
		if i > 2000 {
			t.Fatal("first enter never started draining")
		}
		time.Sleep(time.Millisecond)
	}
	for _, op := range []func(Request, func(Event)) (Result, error){r.e.Enter, r.e.Restart, r.e.Exit} {
		_, err := op(Request{Who: "cron"}, nil)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeBusy || e.Holder == nil || e.Holder.Who != "alice" || !strings.Contains(e.Msg, "held by alice") {
			t.Fatalf("second operation: %v", err)
		}
	}
	close(gate)
	if err := within(t, done, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestStateWriteFailureActsOnNothing(t *testing.T) {
	r := newRig(t, nil)
	r.store.fail = errors.New("no space left on device")
	_, err := r.e.Restart(alice, nil)
	wantCode(t, err, CodeInternal)
	if len(r.fw.Calls()) != 0 || len(r.run.calls) != 0 {
		t.Fatalf("acted without writing the state: %v %v", r.fw.Calls(), r.run.calls)
	}
}

func TestBadRequests(t *testing.T) {
	r := newRig(t, nil)
	for _, req := range []Request{{}, {Who: "a", TTL: -1}, {Who: "a", OnDeadline: "later"}} {
		if _, err := r.e.Enter(req, nil); CodeOf(err) != CodeBadRequest {
			t.Errorf("Enter(%+v) = %v", req, err)
		}
	}
	// The API is a trust boundary: a bad on-deadline is refused with the
	// words of the one parser the CLI and the config file use too.
	_, err := r.e.Restart(Request{Who: "a", OnDeadline: "later"}, nil)
	if _, perr := drain.ParseOnDeadline("later"); CodeOf(err) != CodeBadRequest || perr == nil || err.Error() != perr.Error() {
		t.Errorf("bad on-deadline: %v, want %v", err, perr)
	}
	if len(r.fw.Calls()) != 0 {
		t.Fatal("bad request changed the forward")
	}
}

// TestResumeConverges starts the engine from the state file an agent killed
// at each step would leave, and checks where the server ends up.
func TestResumeConverges(t *testing.T) {
	alice := &state.Holder{Who: "alice"}
	for _, tc := range []struct {
		op        state.Op
		phase     state.Phase
		notReady  bool
		want      state.Phase
		wantCalls []string
	}{
		{state.OpNone, state.InService, false, state.InService, []string{"restore@"}},
		{state.OpNone, state.Held, false, state.Held, []string{"withdraw@held"}},
		{state.OpEnter, state.Withdrawing, false, state.Held, []string{"withdraw@withdrawing"}},
		{state.OpEnter, state.Draining, false, state.Held, []string{"withdraw@draining"}},
		{state.OpRestart, state.Withdrawing, false, state.InService, []string{"withdraw@withdrawing", "restore@restoring"}},
		{state.OpRestart, state.Draining, false, state.InService, []string{"withdraw@draining", "restore@restoring"}},
		{state.OpRestart, state.ConfigTest, false, state.InService, []string{"withdraw@configtest", "restore@restoring"}},
		{state.OpRestart, state.Restarting, false, state.InService, []string{"withdraw@restarting", "restore@restoring"}},
		{state.OpRestart, state.Restarting, true, state.Held, []string{"withdraw@restarting"}},
		{state.OpRestart, state.ReadyCheck, false, state.InService, []string{"withdraw@ready-check", "restore@restoring"}},
		{state.OpRestart, state.Restoring, false, state.InService, []string{"withdraw@restoring", "restore@restoring"}},
		{state.OpExit, state.ReadyCheck, false, state.InService, []string{"withdraw@ready-check", "restore@restoring"}},
		{state.OpExit, state.Restoring, true, state.Held, []string{"withdraw@restoring"}},
	} {
		name := string(tc.op) + "/" + string(tc.phase)
		if tc.notReady {
			name += "/not-ready"
		}
		t.Run(name, func(t *testing.T) {
			r := &rig{store: &memStore{st: state.State{Version: 1, Op: tc.op, Phase: tc.phase, Holder: alice}},
				table: &fakeTable{}, run: &fakeRunner{}, ready: &fakeReady{}, clock: &fakeClock{t: time.Unix(0, 0)}}
			if tc.phase == state.InService {
				r.store.st.Holder = nil
			}
			if tc.notReady {
				r.ready.err = errBoom
			}
			r.fw = &fakeForwarder{store: r.store}
			r.e = New(context.Background(), Deps{Forwarder: r.fw, Forwards: []forward.Forward{fwd}, Table: r.table,
				Policy: drain.DefaultPolicy(), Runner: r.run, Ready: r.ready, Store: r.store, Clock: r.clock})
			note, err := r.e.Resume()
			if err != nil {
				t.Fatal(err)
			}
			calls := r.fw.Calls()
			if tc.phase == state.InService { // nothing written: the call sees the initial phase
				calls = []string{strings.SplitAfter(calls[0], "@")[0]}
			}
			if st := r.store.st; st.Phase != tc.want || st.Op != state.OpNone || !reflect.DeepEqual(calls, tc.wantCalls) {
				t.Fatalf("ended %s/%s with calls %v (%s); want %s with %v", st.Op, st.Phase, r.fw.Calls(), note, tc.want, tc.wantCalls)
			}
			if len(r.run.calls) != 0 {
				t.Fatalf("resume ran %v: it must never restart the web server", r.run.calls)
			}
			if tc.want == state.Held && r.store.st.Holder == nil {
				t.Fatal("held with no holder")
			}
		})
	}
}

func TestReconcileRepairsAndExpiresTTL(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	if repaired, err := r.e.Reconcile(ctx); err != nil || repaired {
		t.Fatalf("nothing to repair: %v %v", repaired, err)
	}
	r.fw.applied = false // a firewall reload flushed the rules
	if repaired, err := r.e.Reconcile(ctx); err != nil || !repaired || !r.fw.applied || r.fw.withdrawn {
		t.Fatalf("in service: repaired=%v err=%v fw=%+v", repaired, err, r.fw)
	}
	req := alice
	req.TTL = time.Minute
	if _, err := r.e.Enter(req, nil); err != nil {
		t.Fatal(err)
	}
	r.fw.withdrawn = false // the reload took the withdraw rule away: still held
	if repaired, _ := r.e.Reconcile(ctx); !repaired || !r.fw.withdrawn {
		t.Fatalf("held: the forward was not withdrawn again")
	}
	r.clock.advance(2 * time.Minute)
	r.e.Reconcile(ctx)
	for i := 0; r.store.last() != state.InService; i++ {
		if i > 2000 {
			t.Fatalf("TTL passed but the server is %s", r.store.last())
		}
		time.Sleep(time.Millisecond)
	}
	if r.fw.withdrawn || r.ready.calls == 0 {
		t.Fatal("TTL exit did not check readiness and restore")
	}
}

// A withdraw that fails once (a firewall reload at that moment) is
// retried; one that keeps failing is rolled back, and the state says the
// server is in service and why.
func TestWithdrawFailureRetriedThenRolledBack(t *testing.T) {
	r := newRig(t, nil)
	r.fw.failWithdraw = 1
	if _, err := r.e.Enter(alice, nil); err != nil {
		t.Fatalf("a withdraw that failed once: %v", err)
	}
	if r.store.last() != state.Held || !r.fw.withdrawn {
		t.Fatalf("after a retried withdraw: %s, withdrawn=%v", r.store.last(), r.fw.withdrawn)
	}

	r = newRig(t, nil)
	r.fw.failWithdraw = 100
	res, err := r.e.Restart(alice, nil)
	wantCode(t, err, CodeInternal)
	st := r.store.st
	if st.Phase != state.InService || st.Op != state.OpNone || !strings.Contains(st.LastError, "withdraw the forward failed") || st.Holder != nil {
		t.Fatalf("after a failed withdraw the state is %+v, want in service with the error", st)
	}
	if res.Restart != nil || len(r.run.calls) != 0 {
		t.Fatalf("a failed withdraw went on to %v", r.run.calls)
	}
	if !strings.Contains(err.Error(), "stays in service") {
		t.Errorf("error %q does not say where the server is", err)
	}
}

// A restore that keeps failing leaves the state in service with the error
// (the user asked for it back and the web server is ready), and reconcile
// puts the forward back once netfilter takes it. Before, the state stayed
// "restoring" and reconcile skipped it for ever.
func TestRestoreFailureIsRetriedByReconcile(t *testing.T) {
	r := newRig(t, nil)
	if _, err := r.e.Enter(alice, nil); err != nil {
		t.Fatal(err)
	}
	r.fw.failRestore = 100
	_, err := r.e.Exit(alice, nil)
	wantCode(t, err, CodeInternal)
	if st := r.store.st; st.Phase != state.InService || !strings.Contains(st.LastError, "restore the forward failed") {
		t.Fatalf("after a failed restore the state is %+v", st)
	}
	if !r.fw.withdrawn {
		t.Fatal("the fake restored although it failed")
	}
	r.fw.failRestore = 0
	if repaired, err := r.e.Reconcile(context.Background()); err != nil || !repaired || r.fw.withdrawn {
		t.Fatalf("reconcile after the failed restore: repaired=%v err=%v withdrawn=%v", repaired, err, r.fw.withdrawn)
	}
}

// Reconcile repairs a server left in a transient phase with no operation
// running (a failed state write): before, "restoring" was skipped for ever.
func TestReconcileDoesNotSkipRestoring(t *testing.T) {
	r := newRig(t, nil)
	if err := r.e.led.apply(func(st *state.State) { st.Phase, st.Op = state.Restoring, state.OpExit }); err != nil {
		t.Fatal(err)
	}
	r.fw.applied = false
	if repaired, err := r.e.Reconcile(context.Background()); err != nil || !repaired {
		t.Fatalf("reconcile in restoring with nothing running: repaired=%v err=%v", repaired, err)
	}
}

// Forwards installed but no longer configured are removed, at start and
// by reconcile.
func TestUnconfiguredForwardsAreRemoved(t *testing.T) {
	old := forward.Forward{From: 82, To: 8080}
	r := &rig{}
	r = newRigWith(t, func(f *fakeForwarder) { f.extra = []forward.Forward{old} })
	if !slices.Contains(r.fw.removed, old) {
		t.Fatalf("resume left %v installed (removed %v)", old, r.fw.removed)
	}
	r.fw.extra = []forward.Forward{old} // a second agent's config, a hand-made rule
	if repaired, err := r.e.Reconcile(context.Background()); err != nil || !repaired || len(r.fw.extra) != 0 {
		t.Fatalf("reconcile left %v: repaired=%v err=%v", r.fw.extra, repaired, err)
	}
}

// newRigWith lets a test set up the forwarder before Resume.
func newRigWith(t *testing.T, setup func(*fakeForwarder)) *rig {
	t.Helper()
	r := &rig{store: &memStore{}, table: &fakeTable{}, run: &fakeRunner{}, ready: &fakeReady{},
		clock: &fakeClock{t: time.Unix(1_700_000_000, 0).UTC()}}
	r.fw = &fakeForwarder{store: r.store}
	setup(r.fw)
	r.e = New(context.Background(), Deps{
		Forwarder: r.fw, Forwards: []forward.Forward{fwd}, Table: r.table, Policy: drain.DefaultPolicy(),
		Runner: r.run, Ready: r.ready, Store: r.store, Clock: r.clock,
	})
	if _, err := r.e.Resume(); err != nil {
		t.Fatal(err)
	}
	return r
}

// SIGTERM (the agent's context cancelled) during an operation leaves the
// state file as a kill -9 would: the last phase written, no hold recorded
// that nobody asked for, and the forwards untouched after it.
func TestStopDuringOperationRecordsNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		op    func(*Engine) (Result, error)
		setup func(*rig)
		at    state.Phase
	}{
		{"enter, while draining", func(e *Engine) (Result, error) { return e.Enter(alice, nil) },
			func(r *rig) { r.table.gate = make(chan struct{}) }, state.Draining},
		{"restart, during the readiness check", func(e *Engine) (Result, error) { return e.Restart(alice, nil) },
			func(r *rig) { r.ready.block = true }, state.ReadyCheck},
		{"exit, during the readiness check", func(e *Engine) (Result, error) { return e.Exit(alice, nil) },
			func(r *rig) {
				if _, err := r.e.Enter(alice, nil); err != nil {
					t.Fatal(err)
				}
				r.ready.block = true
			}, state.ReadyCheck},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			r := newRigCtx(t, ctx, nil)
			r.ready.started = make(chan struct{})
			tc.setup(r)
			done := make(chan error, 1)
			go func() { _, err := tc.op(r.e); done <- err }()
			// Wait until the operation is in the phase, then stop.
			for i := 0; r.store.last() != tc.at; i++ {
				if i > 5000 {
					t.Fatalf("operation never reached %s (at %s)", tc.at, r.store.last())
				}
				time.Sleep(time.Millisecond)
			}
			if tc.at == state.ReadyCheck {
				within(t, r.ready.started, 10*time.Second)
			}
			calls := len(r.fw.Calls())
			stop()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("an operation cut short by the agent stopping reported success")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the operation did not end when the agent stopped")
			}
			if err := r.e.WaitIdle(context.Background()); err != nil {
				t.Fatal(err)
			}
			st := r.store.st
			if st.Phase != tc.at || st.LastError != "" {
				t.Fatalf("after the stop the state file says %s (error %q), want %s as written before the stop", st.Phase, st.LastError, tc.at)
			}
			if got := r.fw.Calls(); len(got) != calls {
				t.Fatalf("the forwards changed after the stop: %v", got[calls:])
			}
			if _, err := r.e.Enter(alice, nil); CodeOf(err) != CodeBusy {
				t.Fatalf("a new operation while stopping: %v, want busy", err)
			}
		})
	}
}

type memHistory struct {
	mu      sync.Mutex
	entries []history.Entry
}

func (h *memHistory) List(int) ([]history.Entry, error) { return h.entries, nil }

func (h *memHistory) Append(e history.Entry) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.entries = append(h.entries, e)
	return nil
}

// Every operation that ran is in the history: who, why, the outcome, each
// phase with its duration, and the commands' exit statuses. Refused
// requests are not operations.
func TestHistoryRecordsOperations(t *testing.T) {
	r := newRig(t, nil)
	h := &memHistory{}
	r.e.d.History = h
	if _, err := r.e.Restart(alice, nil); err != nil {
		t.Fatal(err)
	}
	r.run.configErr = errBoom
	if _, err := r.e.Restart(Request{Who: "cron", Reason: "nightly"}, nil); CodeOf(err) != CodeConfigTest {
		t.Fatal(err)
	}
	r.run.configErr = nil
	if _, err := r.e.Enter(Request{}, nil); CodeOf(err) != CodeBadRequest {
		t.Fatal(err)
	}
	if len(h.entries) != 2 {
		t.Fatalf("history has %d entries, want 2 (a bad request is not an operation): %+v", len(h.entries), h.entries)
	}
	ok, failed := h.entries[0], h.entries[1]
	var names []string
	for _, p := range ok.Phases {
		names = append(names, p.Phase)
	}
	if ok.Op != "restart" || ok.Who != "alice" || ok.Reason != "kernel update" || ok.Outcome != "ok" || ok.Phase != "in-service" ||
		strings.Join(names, ",") != "withdrawing,draining,configtest,restarting,ready-check,restoring,in-service" ||
		ok.ConfigTestExit == nil || ok.RestartExit == nil || ok.End.Before(ok.Start) {
		t.Fatalf("entry of a restart: %+v", ok)
	}
	if ok.Phases[1].DurationMS <= 0 {
		t.Fatalf("the drain took no time: %+v", ok.Phases)
	}
	if failed.Outcome != "configtest-failed" || failed.Who != "cron" || failed.RestartExit != nil || !strings.Contains(failed.Error, "config test failed") {
		t.Fatalf("entry of a failed config test: %+v", failed)
	}
}

// Snapshot shows the forwards as last read, and reads them again after
// the engine changed them: never a withdraw that status has not seen.
func TestSnapshotFollowsTheEnginesChanges(t *testing.T) {
	r := newRig(t, nil)
	if s := r.e.Snapshot(); len(s.Forwards) != 1 || s.Forwards[0].Withdrawn {
		t.Fatalf("after resume: %+v", s.Forwards)
	}
	if _, err := r.e.Enter(alice, nil); err != nil {
		t.Fatal(err)
	}
	if s := r.e.Snapshot(); len(s.Forwards) != 1 || !s.Forwards[0].Withdrawn {
		t.Fatalf("after enter: %+v", s.Forwards)
	}
	// Unchanged since: a snapshot reads nothing.
	reads := r.fw.reads
	r.e.Snapshot()
	r.e.Snapshot()
	if r.fw.reads != reads {
		t.Fatalf("two snapshots of unchanged forwards read them %d times", r.fw.reads-reads)
	}
}

// within receives from ch, failing the test if nothing comes within d.
func within[T any](t *testing.T, ch <-chan T, d time.Duration) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("nothing within %v", d)
		var zero T
		return zero
	}
}

// A `maintenance run` hold is the command's: others are busy until the run
// ends it, with the command's outcome; a failed command keeps the server
// out, held for people; --force ends it.
func TestMaintenanceRunHold(t *testing.T) {
	r := newRig(t, nil)
	run := Request{Who: "cron", Reason: "patch", Command: "apt-get -y upgrade", Log: "/var/log/x.log"}
	if res, err := r.e.Enter(run, nil); err != nil || res.Phase != state.Held || res.Holder.Command != run.Command {
		t.Fatalf("enter: %+v, %v", res, err)
	}
	busy := func(name string, err error) {
		t.Helper()
		wantCode(t, err, CodeBusy)
		if name != "other run's end" && !strings.Contains(err.Error(), `maintenance run of "apt-get -y upgrade"`) {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err := r.e.Enter(alice, nil)
	busy("enter", err)
	_, err = r.e.Restart(alice, nil)
	busy("restart", err)
	_, err = r.e.Exit(alice, nil)
	busy("exit", err)
	_, err = r.e.Exit(Request{Who: "x", CommandDone: &CommandDone{Command: "other"}}, nil)
	busy("other run's end", err)
	if !r.fw.withdrawn {
		t.Fatal("not withdrawn while the command runs")
	}

	// The command fails: held, for people now.
	res, err := r.e.Exit(Request{Who: "cron", CommandDone: &CommandDone{Command: run.Command, ExitCode: 100, Output: "Reading...\nE: dpkg was interrupted\n", Hold: true}}, nil)
	wantCode(t, err, CodeCommand)
	if res.Phase != state.Held || res.Holder == nil || res.Holder.Command != "" || !strings.Contains(res.Holder.Reason, "failed with exit status 100") ||
		!strings.Contains(r.store.st.LastError, "E: dpkg was interrupted") || !r.fw.withdrawn {
		t.Fatalf("after a failed command: %+v %v; state %+v", res, err, r.store.st)
	}
	if _, err := r.e.Exit(alice, nil); err != nil || r.fw.withdrawn {
		t.Fatalf("an operator's exit after the failed run: %v", err)
	}

	// It succeeds: back in service.
	if _, err := r.e.Enter(run, nil); err != nil {
		t.Fatal(err)
	}
	if res, err := r.e.Exit(Request{Who: "cron", CommandDone: &CommandDone{Command: run.Command}}, nil); err != nil || res.Phase != state.InService || r.fw.withdrawn {
		t.Fatalf("after a good command: %+v, %v", res, err)
	}

	// A run never starts on a server someone holds; --force ends a run.
	if _, err := r.e.Enter(alice, nil); err != nil {
		t.Fatal(err)
	}
	_, err = r.e.Enter(run, nil)
	wantCode(t, err, CodeBusy)
	r.e.Exit(alice, nil)
	r.e.Enter(run, nil)
	if res, err := r.e.Exit(Request{Who: "alice", Force: true}, nil); err != nil || res.Phase != state.InService {
		t.Fatalf("--force: %+v, %v", res, err)
	}
	if _, err := r.e.Enter(Request{Who: "x", Command: "true", TTL: time.Hour}, nil); CodeOf(err) != CodeBadRequest {
		t.Fatalf("a run with a ttl: %v", err)
	}
}

// Every event of an operation names it, its last one too (the forward
// restored, the server held): drainctl events prints its operation column
// from it. The state file says no operation is in progress by then.
func TestEventsNameTheirOperation(t *testing.T) {
	r := newRig(t, nil)
	sub, cancel := r.e.Subscribe()
	defer cancel()
	check := func(op state.Op, evs []Event, lastPhase state.Phase, lastMsg string) {
		t.Helper()
		if len(evs) == 0 {
			t.Fatalf("%s: no event", op)
		}
		if last := evs[len(evs)-1]; last.Phase != lastPhase || !strings.HasPrefix(last.Message, lastMsg) {
			t.Errorf("%s: last event %+v, want %s %q", op, last, lastPhase, lastMsg)
		}
		for i, ev := range evs {
			if ev.Op != op {
				t.Errorf("%s: event %d (%s %q) has op %q", op, i, ev.Phase, ev.Message, ev.Op)
			}
			// Subscribers (GET /v1/events) see the same events.
			if got := within(t, sub, time.Second); got.Op != ev.Op || got.Phase != ev.Phase || got.Message != ev.Message {
				t.Errorf("%s: subscriber got %+v, the caller %+v", op, got, ev)
			}
		}
		if st := r.store.st; st.Op != state.OpNone {
			t.Errorf("%s: the state file says %s in progress", op, st.Op)
		}
	}
	for _, tc := range []struct {
		op        state.Op
		run       func(Request, func(Event)) (Result, error)
		lastPhase state.Phase
		lastMsg   string
	}{
		{state.OpRestart, r.e.Restart, state.InService, "forward restored"},
		{state.OpEnter, r.e.Enter, state.Held, ""},
		{state.OpExit, r.e.Exit, state.InService, "forward restored"},
	} {
		var evs []Event
		if _, err := tc.run(alice, func(ev Event) { evs = append(evs, ev) }); err != nil {
			t.Fatalf("%s: %v", tc.op, err)
		}
		check(tc.op, evs, tc.lastPhase, tc.lastMsg)
	}
	// Failures settle too: not ready after the restart, the server held.
	r.ready.err = errBoom
	var evs []Event
	if _, err := r.e.Restart(alice, func(ev Event) { evs = append(evs, ev) }); CodeOf(err) != CodeNotReady {
		t.Fatalf("restart, not ready: %v", err)
	}
	check(state.OpRestart, evs, state.Held, "web server not ready")
}
