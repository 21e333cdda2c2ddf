// Package maintenance runs the maintenance cycle on one app server:
//
//	in-service → withdrawing → draining → [held] → configtest → restarting
//	           → ready-check → restoring → in-service
//
// "maintenance enter" stops at held (withdrawn, drained) until "maintenance
// exit" (ready-check → restoring) or a TTL. "restart" runs the whole cycle.
// Every transition is written to the state file before it is acted on, so
// an agent killed at any step converges when it starts again (Resume):
//
//	held, or entering (withdrawing/draining)   → withdrawn and held, as asked
//	restart before the web server was touched  → rolled back: ready-check, restore
//	  (withdrawing, draining, configtest)
//	restart after it (restarting, ready-check,  → finished: ready-check, restore
//	  restoring), or an exit in progress
//
// A forward is restored only after the readiness check passes; when it
// fails, the server stays out (held) and the failure is reported loudly. So
// a server is out of rotation only because someone asked, or because it
// does not answer.
package maintenance

// The engine's plumbing: the state it keeps, its subscribers, the status,
// and the one place where a phase is written. The operations are in
// operations.go, the steps they are made of in steps.go, and what every
// operation shares (the prologue, the busy rules) in run.go.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/drainctl/drainctl/pkg/conntable"
	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/history"
	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/state"
)

// Engine runs operations one at a time and keeps the forwards as the state
// says. Its methods are safe for concurrent use.
type Engine struct {
	d     Deps
	ctx   context.Context // the agent's lifetime: operations outlive requests
	clock drain.Clock
	log   *slog.Logger

	mu      sync.Mutex
	st      state.State
	running bool
	rec     *recording // the running operation's, for the history
	// lastForwards is the forwards as last read, for Snapshot: a scrape
	// reads them again only when the engine changed them since
	// (fwChanged), not at every scrape.
	lastForwards []forward.Status
	fwChanged    atomic.Bool
	lastDrain    *drain.Event
	subs         map[chan Event]struct{}
	// releaseKick wakes the pool slot's releaser (slot.go).
	releaseKick chan struct{}

	// fwMu serialises forwarder calls, and makes "write the phase, then
	// act" one step as seen by Reconcile: otherwise a reconcile that read
	// the phase just before a withdraw could undo it.
	fwMu sync.Mutex
}

// New makes an engine; call Resume before anything else. ctx bounds the
// operations (the agent's lifetime), not any one request.
func New(ctx context.Context, d Deps) *Engine {
	if d.Clock == nil {
		d.Clock = drain.RealClock
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	e := &Engine{d: d, ctx: ctx, clock: d.Clock, log: d.Log, subs: map[chan Event]struct{}{}, releaseKick: make(chan struct{}, 1)}
	e.d.Forwarder = marking{d.Forwarder, &e.fwChanged}
	return e
}

// Phase is where the server is, from memory (no netfilter read): for
// answers that must be cheap, HAProxy's agent-check among them.
func (e *Engine) Phase() state.Phase {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.Phase
}

// marking notes every change the engine makes to the forwards, so that
// Snapshot knows when its last read is out of date.
type marking struct {
	forward.Forwarder
	changed *atomic.Bool
}

func (m marking) Apply(ctx context.Context, fs ...forward.Forward) error {
	m.changed.Store(true)
	return m.Forwarder.Apply(ctx, fs...)
}
func (m marking) Withdraw(ctx context.Context, fs ...forward.Forward) error {
	m.changed.Store(true)
	return m.Forwarder.Withdraw(ctx, fs...)
}
func (m marking) Restore(ctx context.Context, fs ...forward.Forward) error {
	m.changed.Store(true)
	return m.Forwarder.Restore(ctx, fs...)
}
func (m marking) Remove(ctx context.Context, fs ...forward.Forward) error {
	m.changed.Store(true)
	return m.Forwarder.Remove(ctx, fs...)
}

// readForwards reads the forwards and keeps them for Snapshot. Call with
// fwMu held.
func (e *Engine) readForwards(ctx context.Context) ([]forward.Status, error) {
	e.fwChanged.Store(false) // a change during the read marks it again
	fs, err := e.d.Forwarder.Status(ctx)
	if err != nil {
		e.fwChanged.Store(true)
		return nil, err
	}
	e.mu.Lock()
	e.lastForwards = fs
	e.mu.Unlock()
	return fs, nil
}

// Subscribe returns a channel of every event until cancel is called. Slow
// readers miss events rather than block the engine.
func (e *Engine) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, 64)
	e.mu.Lock()
	e.subs[ch] = struct{}{}
	e.mu.Unlock()
	return ch, func() {
		e.mu.Lock()
		if _, ok := e.subs[ch]; ok {
			delete(e.subs, ch)
			close(ch)
		}
		e.mu.Unlock()
	}
}

// publish sends ev to every subscriber, and to progress (the caller of
// the operation) when it is set.
func (e *Engine) publish(ev Event, progress func(Event)) {
	ev.Time = e.clock.Now()
	e.mu.Lock()
	if ev.Drain != nil {
		d := *ev.Drain
		e.lastDrain = &d
	}
	for ch := range e.subs {
		select {
		case ch <- ev:
		default:
		}
	}
	e.mu.Unlock()
	if progress != nil {
		progress(ev)
	}
}

// Status reports the state and what the kernel says of the forwards.
func (e *Engine) Status(ctx context.Context) (Status, error) {
	e.fwMu.Lock()
	fs, err := e.readForwards(ctx)
	e.fwMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.statusLocked(fs), err
}

// statusLocked is the state with the forwards fs; e.mu is held.
func (e *Engine) statusLocked(fs []forward.Status) Status {
	st := Status{State: e.st, Running: e.running, Forwards: fs, Backend: e.d.Forwarder.Backend(), LastDrain: e.lastDrain,
		RunnerGone: runnerGone(e.st.Holder)}
	if e.d.Rotation != nil {
		hc := &HealthChecks{LoadBalancers: e.d.Rotation.LoadBalancers(), Ports: e.d.Rotation.Ports()}
		if hc.LoadBalancers == nil {
			hc.LoadBalancers = []lbview.LB{}
		}
		st.HealthChecks = hc
	}
	if p := e.d.Pool; p != nil {
		st.Pool = &StatusPool{Name: e.d.Slots.Name(), ID: p.ID(), MaxUnavailable: p.Limit().String()}
	}
	return st
}

// runnerGone says whether a maintenance run's drainctl process has died
// with the hold still its command's. A pid reused since would make a dead
// runner look alive: the hold then stays (the safe side).
func runnerGone(h *state.Holder) bool {
	if h == nil || h.Command == "" || h.RunnerPID <= 0 {
		return false
	}
	err := syscall.Kill(h.RunnerPID, 0)
	return errors.Is(err, syscall.ESRCH)
}

// Snapshot is the state, and the forwards as last read: it reads them
// again only when the engine has changed them since (or a read failed).
func (e *Engine) Snapshot() Status {
	if e.fwChanged.Load() {
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		e.fwMu.Lock()
		e.readForwards(ctx)
		e.fwMu.Unlock()
		cancel()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.statusLocked(e.lastForwards)
}

// Connections lists the service port's established connections.
func (e *Engine) Connections(ctx context.Context, fn func(*conntable.Conn)) error {
	return e.d.Table.Each(ctx, fn)
}

// transition writes the new phase to the state file, with op as the
// operation in progress (none once it has ended); only then may the caller
// act on it. It must be called with fwMu held when the action touches the
// forwards. Announcing the phase is the caller's (opRun.step, opRun.settle).
func (e *Engine) transition(op state.Op, phase state.Phase, note string) error {
	if e.ctx.Err() != nil {
		// The agent is stopping (SIGTERM): the state file stays as it is,
		// as after a kill -9, and the next start resumes from it. Writing
		// the failures a cancelled step reports would record a hold
		// nobody asked for.
		return errStopping
	}
	e.mu.Lock()
	st := e.st
	st.Op, st.Phase = op, phase
	if op == state.OpNone {
		st.Reboot = nil // a reboot's record lasts until it has ended
	}
	st.History = append(append([]state.Transition(nil), st.History...), state.Transition{Time: e.clock.Now(), Op: op, Phase: phase, Note: note})
	if err := e.d.Store.Save(st); err != nil {
		e.mu.Unlock()
		// Not written, so not acted on: the state file stays the truth.
		return fail(CodeInternal, e.st.Phase, "cannot write the state file, so not going on to %s: %v", phase, err)
	}
	e.st = st
	if e.rec != nil {
		e.rec.phases = append(e.rec.phases, history.Phase{Phase: string(phase), Start: e.clock.Now()})
	}
	e.mu.Unlock()
	e.log.Info("maintenance transition", "op", op, "phase", phase, "note", note)
	return nil
}

// setHolder and setError change the state; the next transition writes it.
func (e *Engine) setHolder(h *state.Holder) { e.mu.Lock(); e.st.Holder = h; e.mu.Unlock() }
func (e *Engine) setError(msg string)       { e.mu.Lock(); e.st.LastError = msg; e.mu.Unlock() }

// currentHolder is who holds the server now (nil: nobody).
func (e *Engine) currentHolder() *state.Holder {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.Holder
}

// end lets the engine go at the end of an operation (or of Resume).
func (e *Engine) end() { e.mu.Lock(); e.running = false; e.rec = nil; e.mu.Unlock() }

// WaitIdle waits, up to ctx, until no operation runs. The agent calls it
// when it stops, after cancelling the engine's context, so that it does
// not exit in the middle of a change of the forwards.
func (e *Engine) WaitIdle(ctx context.Context) error {
	for {
		e.mu.Lock()
		running := e.running
		e.mu.Unlock()
		if !running {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("an operation is still running: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// holderText is ", held by WHO since WHEN (WHY)", for the messages that
// must say who holds the server (busy, already in maintenance); nothing
// for nobody.
func holderText(h *state.Holder) string {
	if h == nil {
		return ""
	}
	s := fmt.Sprintf(", held by %s since %s", h.Who, h.Since.Format(time.RFC3339))
	if h.Reason != "" {
		s += fmt.Sprintf(" (%s)", h.Reason)
	}
	return s
}

// errStopping ends an operation cut short by the agent stopping. Nothing
// is recorded after it: the state file keeps the last phase written.
var errStopping = &Error{Code: CodeStopping, Msg: "the agent is stopping: the operation ends here and resumes when the agent starts again"}

// retry runs a change of the forwards up to three times: a firewall
// reload that changes the ruleset at the same moment makes one attempt
// fail, not the operation.
func retry(ctx context.Context, f func() error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = f(); err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
	return err
}
