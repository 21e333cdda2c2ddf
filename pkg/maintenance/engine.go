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

// The engine's plumbing: its subscribers, the status, and where a phase
// is written (transition). The state and the claim of the running
// operation are the ledger's (ledger.go), the forwarder is reached only
// through forwards.go; the operations are in operations.go and reboot.go,
// the safety sequence they share (take out, put back) in safety.go, the
// steps it is made of in steps.go, the request's rules in request.go and
// what every operation shares (the prologue, the busy rules) in run.go.

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
	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/state"
)

// Engine runs operations one at a time and keeps the forwards as the state
// says. Its methods are safe for concurrent use. The state and the claim
// of the running operation are its ledger's (ledger.go), the forwarder
// its forwards' (forwards.go): the lock order is theirs.
type Engine struct {
	d     Deps            // without Forwarder, Forwards (fw's) and Store (led's)
	ctx   context.Context // the agent's lifetime: operations outlive requests
	clock drain.Clock
	log   *slog.Logger

	led *ledger
	fw  *forwards

	mu        sync.Mutex // subs and lastDrain
	lastDrain *drain.Event
	subs      map[chan Event]struct{}
	// releaseKick wakes the pool slot's releaser (slot.go).
	releaseKick chan struct{}
	// unrecorded: a slot was taken that the state file could not record
	// and the pool did not take back; only etcd knows of it, so the
	// releaser asks the pool until it is found or gone (slot.go).
	unrecorded atomic.Bool
	// hold is a restart's hold of new connections (webunit.go).
	hold connHold
	// owedKick wakes the loop that runs a restart owed (policy.go).
	owedKick chan struct{}
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
	e := &Engine{d: d, ctx: ctx, clock: d.Clock, log: d.Log, subs: map[chan Event]struct{}{}, releaseKick: make(chan struct{}, 1), owedKick: make(chan struct{}, 1),
		led: newLedger(d.Store, d.Clock), fw: newForwards(d.Forwarder, d.Forwards)}
	// Only through e.fw (its lock) and e.led (the state written first).
	e.d.Forwarder, e.d.Forwards, e.d.Store = nil, nil, nil
	return e
}

// Phase is where the server is, from memory (no netfilter read): for
// answers that must be cheap, HAProxy's agent-check among them.
func (e *Engine) Phase() state.Phase { return e.led.get().Phase }

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
	var fs []forward.Status
	err := e.fw.with(func(x fwx) (err error) { fs, err = x.read(ctx); return err })
	return e.status(fs), err
}

// status is the state with the forwards fs.
func (e *Engine) status(fs []forward.Status) Status {
	st, running := e.led.view()
	e.mu.Lock()
	last := e.lastDrain
	e.mu.Unlock()
	s := Status{State: st, Running: running, Forwards: fs, Backend: e.fw.fw.Backend(), LastDrain: last,
		RunnerGone: runnerGone(st.Holder)}
	if e.d.Rotation != nil {
		hc := &HealthChecks{LoadBalancers: e.d.Rotation.LoadBalancers(), Ports: e.d.Rotation.Ports()}
		if hc.LoadBalancers == nil {
			hc.LoadBalancers = []lbview.LB{}
		}
		s.HealthChecks = hc
	}
	if p := e.d.Pool; p != nil {
		s.Pool = &StatusPool{Name: e.d.Slots.Name(), ID: p.ID(), ConfiguredMaxUnavailable: p.Limit().String()}
		if ps, _ := p.Settings(); ps != nil {
			s.Pool.MaxUnavailable = ps.MaxUnavailable.String()
		}
	}
	return s
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
	if e.fw.stale() {
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		_ = e.fw.with(func(x fwx) error { _, err := x.read(ctx); return err }) // the last read stays
		cancel()
	}
	return e.status(e.fw.lastRead())
}

// Connections lists the service port's established connections.
func (e *Engine) Connections(ctx context.Context, fn func(*conntable.Conn)) error {
	return e.d.Table.Each(ctx, fn)
}

// transition writes the new phase to the state file, with op as the
// operation in progress (none once it has ended), and also's changes to
// the state (the holder, the error); only then may the caller act on it.
// A change of the forwards and its transition are made in one
// forwards.with. Announcing the phase is the caller's (opRun.step,
// opRun.settle).
func (e *Engine) transition(op state.Op, phase state.Phase, note string, also ...func(*state.State)) error {
	if e.ctx.Err() != nil {
		// The agent is stopping (SIGTERM): the state file stays as it is,
		// as after a kill -9, and the next start resumes from it. Writing
		// the failures a cancelled step reports would record a hold
		// nobody asked for.
		return errStopping
	}
	if err := e.led.step(op, phase, note, also...); err != nil {
		// Not written, so not acted on: the state file stays the truth.
		return fail(CodeInternal, e.Phase(), "cannot write the state file, so not going on to %s: %v", phase, err)
	}
	e.log.Info("maintenance transition", "op", op, "phase", phase, "note", note)
	return nil
}

// WaitIdle waits, up to ctx, until no operation runs. The agent calls it
// when it stops, after cancelling the engine's context, so that it does
// not exit in the middle of a change of the forwards.
func (e *Engine) WaitIdle(ctx context.Context) error {
	idle := e.led.idled()
	select {
	case <-idle: // idle now: not an error, whatever ctx says
		return nil
	default:
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("an operation is still running: %w", ctx.Err())
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
