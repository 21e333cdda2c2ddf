package maintenance

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/state"
)

func newTestLedger(t *testing.T) (*ledger, *memStore) {
	t.Helper()
	store := &memStore{}
	l := newLedger(store, &fakeClock{t: time.Unix(1_700_000_000, 0).UTC()})
	if _, err := l.load(); err != nil {
		t.Fatal(err)
	}
	l.release()
	return l, store
}

// A step is in the state file when it returns, with the changes asked
// for; and the running operation's recording has the phase.
func TestLedgerWritesBeforeItReturns(t *testing.T) {
	l, store := newTestLedger(t)
	rec := &recording{}
	if _, err := l.claim(nil, rec); err != nil {
		t.Fatal(err)
	}
	h := &state.Holder{Who: "alice"}
	if err := l.step(state.OpEnter, state.Withdrawing, "maintenance enter", func(st *state.State) { st.Holder = h }); err != nil {
		t.Fatal(err)
	}
	written, _ := store.Load()
	if written.Phase != state.Withdrawing || written.Op != state.OpEnter || written.Holder != h || len(written.History) != 1 {
		t.Fatalf("state file %+v", written)
	}
	if got := l.get(); got.Phase != written.Phase || got.Holder != h {
		t.Fatalf("memory %+v, file %+v", got, written)
	}
	if len(rec.phases) != 1 || rec.phases[0].Phase != string(state.Withdrawing) {
		t.Fatalf("recorded %+v", rec.phases)
	}
	// No operation ends a reboot's record.
	if err := l.apply(func(st *state.State) { st.Reboot = &state.Reboot{BootID: "b1"} }); err != nil {
		t.Fatal(err)
	}
	if err := l.step(state.OpNone, state.Held, ""); err != nil || l.get().Reboot != nil {
		t.Fatalf("settle: %v, reboot %+v", err, l.get().Reboot)
	}
}

// A write that fails changes nothing: not the memory, not the history
// entry's phases.
func TestLedgerFailedWriteChangesNothing(t *testing.T) {
	l, store := newTestLedger(t)
	rec := &recording{}
	if _, err := l.claim(nil, rec); err != nil {
		t.Fatal(err)
	}
	before := l.get()
	store.fail = errBoom
	if err := l.step(state.OpRestart, state.Withdrawing, "", func(st *state.State) { st.Holder = &state.Holder{Who: "alice"} }); !errors.Is(err, errBoom) {
		t.Fatalf("step: %v", err)
	}
	if err := l.apply(func(st *state.State) { st.LastError = "x" }); !errors.Is(err, errBoom) {
		t.Fatalf("apply: %v", err)
	}
	if got := l.get(); got.Phase != before.Phase || got.Holder != nil || got.LastError != "" || len(got.History) != len(before.History) {
		t.Fatalf("memory changed by failed writes: %+v", got)
	}
	if len(rec.phases) != 0 {
		t.Fatalf("recorded %+v", rec.phases)
	}
}

// One claim at a time: a second is refused until the first is let go;
// admit sees whether one runs and may refuse on its own terms.
func TestLedgerOneClaim(t *testing.T) {
	l, _ := newTestLedger(t)
	if _, err := l.claim(nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l.claim(nil, nil); !errors.Is(err, errRunning) {
		t.Fatalf("second claim: %v", err)
	}
	mine := errors.New("mine")
	if _, err := l.claim(func(_ state.State, running bool) error {
		if running {
			return mine
		}
		return nil
	}, nil); !errors.Is(err, mine) {
		t.Fatalf("admit's refusal: %v", err)
	}
	if _, running := l.view(); !running {
		t.Fatal("not running")
	}
	l.release()
	l.release() // idempotent: the channel is closed once
	if _, err := l.claim(nil, nil); err != nil {
		t.Fatalf("claim after release: %v", err)
	}
}

// WaitIdle returns as the operation ends (the channel the ledger closes),
// and says so when its context ends first.
func TestWaitIdleReturnsWhenTheOperationEnds(t *testing.T) {
	r := newRig(t, nil)
	if err := r.e.WaitIdle(context.Background()); err != nil {
		t.Fatalf("idle engine: %v", err)
	}
	if _, err := r.e.led.claim(nil, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.e.WaitIdle(ctx); err == nil {
		t.Fatal("WaitIdle returned while an operation runs")
	}
	done := make(chan error, 1)
	go func() { done <- r.e.WaitIdle(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("returned before the end: %v", err)
	case <-time.After(30 * time.Millisecond):
	}
	ended := time.Now()
	r.e.led.release()
	if err := within(t, done, time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(ended); d > 500*time.Millisecond {
		t.Errorf("WaitIdle returned %v after the end", d)
	}
}
