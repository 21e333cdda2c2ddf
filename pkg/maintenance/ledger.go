package maintenance

// The ledger: the one owner of the engine's state and of the claim of the
// running operation.

import (
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/history"
	"github.com/drainctl/drainctl/pkg/state"
)

// ledger owns the state: the copy in memory, the state file (Store) and
// the phases the history records of the running operation. The state
// changes only through apply (and step, an apply that also records the
// phase), which writes the file before it changes memory and returns: so
// a caller acts only on a state already written ("write the phase, then
// act" has no other order), a failed write changes nothing, and memory
// differs from the file only inside apply.
//
// It also owns the claim of the running operation (claim, release: one
// at a time), with a channel closed when the engine goes idle, so that
// WaitIdle waits for the end instead of polling for it.
//
// Lock order: mu is taken by the ledger's own methods only, and none of
// them calls out but to the Store, so it is always the innermost lock:
// the forwards' lock (forwards.with) is taken before it, never inside it.
type ledger struct {
	store Store
	clock drain.Clock

	mu      sync.Mutex
	st      state.State
	running bool
	// idle is closed when the running operation ends (release); a new
	// one is made by each claim.
	idle chan struct{}
	// rec is the running operation's recording, whose phases step adds;
	// nil when nothing is recorded (Resume's own steps).
	rec *recording
}

// errRunning is claim's refusal when an operation runs and admit did
// not say otherwise.
var errRunning = errors.New("an operation is running")

func newLedger(store Store, clock drain.Clock) *ledger {
	idle := make(chan struct{})
	close(idle)
	return &ledger{store: store, clock: clock, idle: idle}
}

// load reads the state file into memory and claims the engine, for
// Resume: before it, nothing runs. release lets it go.
func (l *ledger) load() (state.State, error) {
	st, err := l.store.Load()
	if err != nil {
		return st, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running {
		return st, errRunning
	}
	l.st = st
	l.claimLocked(nil)
	return st, nil
}

// get is the state as written.
func (l *ledger) get() state.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

// view is the state as written, and whether an operation runs.
func (l *ledger) view() (state.State, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st, l.running
}

// apply changes the state by f and writes it; only then does memory
// change. A failed write returns the Store's error and changes nothing.
// f (as step's also and claim's admit) runs under the ledger's lock: it
// may only assign fields of the copy it is given — never call the
// engine, and never change what a pointer of the state points to (copy
// it first), or memory would change before the write.
func (l *ledger) apply(f func(*state.State)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.applyLocked(f)
}

func (l *ledger) applyLocked(f func(*state.State)) error {
	st := l.st
	f(&st)
	if err := l.store.Save(st); err != nil {
		return err
	}
	l.st = st
	return nil
}

// step writes op and phase (with also's changes, if any) and the
// transition to the state's history, and records the phase for the
// operation's history entry. No operation (OpNone) ends a reboot's
// record: it lasts until the reboot has ended.
func (l *ledger) step(op state.Op, phase state.Phase, note string, also ...func(*state.State)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	err := l.applyLocked(func(st *state.State) {
		for _, f := range also {
			f(st)
		}
		st.Op, st.Phase = op, phase
		if op == state.OpNone {
			st.Reboot = nil
		}
		// A new slice: a caller's copy of the state keeps its history.
		st.History = append(slices.Clip(st.History), state.Transition{Time: now, Op: op, Phase: phase, Note: note})
	})
	if err == nil && l.rec != nil {
		l.rec.phases = append(l.rec.phases, history.Phase{Phase: string(phase), Start: now})
	}
	return err
}

// mark records a phase that the state does not hold (waiting for a
// slot: nothing has changed while it lasts) for the history entry.
func (l *ledger) mark(phase state.Phase, start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rec != nil {
		l.rec.phases = append(l.rec.phases, history.Phase{Phase: string(phase), Start: start})
	}
}

// phases are the running operation's phases so far.
func (l *ledger) phases() []history.Phase {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rec == nil {
		return nil
	}
	return slices.Clone(l.rec.phases)
}

// claim claims the engine for one operation, recorded into rec (nil:
// not recorded), and returns the state as it was claimed. admit, if set,
// sees the state and whether an operation runs, and may refuse; an
// operation running is refused in any case (errRunning).
func (l *ledger) claim(admit func(st state.State, running bool) error, rec *recording) (state.State, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if admit != nil {
		if err := admit(l.st, l.running); err != nil {
			return l.st, err
		}
	}
	if l.running {
		return l.st, errRunning
	}
	l.claimLocked(rec)
	return l.st, nil
}

func (l *ledger) claimLocked(rec *recording) {
	l.running, l.rec, l.idle = true, rec, make(chan struct{})
}

// follow records the running operation into rec from now on (a reboot
// that Resume continues: its recording is made from the state).
func (l *ledger) follow(rec *recording) {
	l.mu.Lock()
	l.rec = rec
	l.mu.Unlock()
}

// release lets the engine go at the end of an operation.
func (l *ledger) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running {
		return
	}
	l.running, l.rec = false, nil
	close(l.idle)
}

// idled is closed once no operation runs.
func (l *ledger) idled() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.idle
}
