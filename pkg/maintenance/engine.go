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

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/drainctl/drainctl/pkg/conntable"
	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/history"
	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/runner"
	"github.com/drainctl/drainctl/pkg/state"
)

// Runner runs the web server's config test and graceful restart.
type Runner interface {
	ConfigTest(ctx context.Context) (runner.Output, error)
	Restart(ctx context.Context) (runner.Output, error)
}

// Readiness waits until the web server answers on its real port.
type Readiness interface {
	Wait(ctx context.Context) error
}

// Rotation is the load balancers' view of this host (lbview.Watch): who
// health-checks the forward ports, and when they confirm a withdraw or a
// restore.
type Rotation interface {
	Ports() []uint16 // where the checks are watched
	LoadBalancers() []lbview.LB
	Active(t time.Time) []lbview.LB
	Wait(ctx context.Context, w lbview.Want, since time.Time) lbview.Confirmation
}

// Store persists the state (state.Store does).
type Store interface {
	Load() (state.State, error)
	Save(state.State) error
}

// Deps are what the engine drives.
type Deps struct {
	Forwarder forward.Forwarder
	Forwards  []forward.Forward
	Table     drain.Lister
	Policy    drain.Policy
	Runner    Runner
	Ready     Readiness
	Store     Store
	// Rotation, when set, replaces the drain's fixed min-wait by the load
	// balancers' confirmation, and confirms the restore; nil waits
	// min-wait and confirms nothing.
	Rotation Rotation
	// History records every operation; nil records nothing.
	History History
	// Observer is told of every operation that ran (the metrics); nil for
	// none.
	Observer interface{ Observe(history.Entry) }
	Clock    drain.Clock // nil: the wall clock
	Log      *slog.Logger
}

// History keeps the record of operations (history.Store does).
type History interface {
	Append(history.Entry) error
	// List returns the last n entries (all with n <= 0), oldest first.
	List(n int) ([]history.Entry, error)
}

// Request is one operation's request.
type Request struct {
	Who    string        `json:"who"`
	Reason string        `json:"reason,omitempty"`
	TTL    time.Duration `json:"-"` // enter: end the hold by itself
	// Deadline and OnDeadline override the drain policy's, when set.
	Deadline   time.Duration    `json:"-"`
	OnDeadline drain.OnDeadline `json:"on_deadline,omitempty"`
	// Command (enter) makes the hold a `maintenance run`'s: until the run
	// says the command ended, enter and exit by others are busy. Log names
	// where the command's output is kept.
	Command string `json:"command,omitempty"`
	Log     string `json:"log,omitempty"`
	// CommandDone (exit) is how a run ends its hold: with the command's
	// outcome, then restoring the forward, or (Hold) keeping the server out.
	CommandDone *CommandDone `json:"command_done,omitempty"`
	// Force (exit) ends a hold that a running command owns.
	Force bool `json:"force,omitempty"`
	// PID is the caller's process, from the kernel (the API server sets
	// it from the socket's peer credentials; a client cannot).
	PID int `json:"-"`
}

// CommandDone is a `maintenance run` command's outcome.
type CommandDone struct {
	Command  string `json:"command"`
	ExitCode int    `json:"exit_code"` // -1: killed by a signal
	Signal   string `json:"signal,omitempty"`
	// Output is the end of what it printed (the whole is in the log).
	Output string `json:"output,omitempty"`
	// Hold keeps the server out of rotation instead of restoring it.
	Hold bool `json:"hold,omitempty"`
}

// Outcome says how the command ended, for people: "succeeded", "failed
// with exit status N", "was killed by SIGNAL".
func (d *CommandDone) Outcome() string {
	switch {
	case d.Signal != "":
		return "was killed by " + d.Signal
	case d.ExitCode != 0:
		return fmt.Sprintf("failed with exit status %d", d.ExitCode)
	}
	return "succeeded"
}

// Event is progress of the engine, for live displays and /v1/events.
type Event struct {
	Time    time.Time      `json:"time"`
	Op      state.Op       `json:"op,omitempty"`
	Phase   state.Phase    `json:"phase"`
	Message string         `json:"message,omitempty"`
	Drain   *drain.Event   `json:"drain,omitempty"`
	Output  *runner.Output `json:"output,omitempty"`
}

// Result is what an operation did.
type Result struct {
	Op         state.Op       `json:"op"`
	Phase      state.Phase    `json:"phase"` // where the server is now
	Holder     *state.Holder  `json:"holder,omitempty"`
	Note       string         `json:"note,omitempty"`
	Drain      *drain.Result  `json:"drain,omitempty"`
	ConfigTest *runner.Output `json:"configtest,omitempty"`
	Restart    *runner.Output `json:"restart,omitempty"`
	// Out and Back say which load balancers confirmed the withdraw and
	// the restore (nil: not watched, or not done).
	Out  *lbview.Confirmation `json:"out_of_rotation,omitempty"`
	Back *lbview.Confirmation `json:"back_in_rotation,omitempty"`
	// Warnings are what the operator must know although the operation
	// succeeded: no load balancer confirmed the change, or some did not.
	Warnings []string      `json:"warnings,omitempty"`
	Elapsed  time.Duration `json:"-"`
}

// Status is the engine's state for `drainctl status`.
type Status struct {
	State     state.State      `json:"state"`
	Running   bool             `json:"running"` // an operation is in progress
	Forwards  []forward.Status `json:"forwards"`
	Backend   string           `json:"backend"`
	LastDrain *drain.Event     `json:"last_drain,omitempty"`
	// HealthChecks is the load balancers' view (absent: not watched).
	HealthChecks *HealthChecks `json:"health_checks,omitempty"`
	// RunnerGone: the hold is a maintenance run's, and the drainctl
	// process running its command is gone (killed, the host rebooted):
	// nobody will end the hold; the command's outcome is unknown.
	RunnerGone bool `json:"runner_gone,omitempty"`
}

// HealthChecks lists the load balancers that health-check the forward
// ports, as the host sees them.
type HealthChecks struct {
	Ports         []uint16    `json:"ports"`
	LoadBalancers []lbview.LB `json:"load_balancers"`
}

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
	e := &Engine{d: d, ctx: ctx, clock: d.Clock, log: d.Log, subs: map[chan Event]struct{}{}}
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

// transition writes the new phase to the state file; only then may the
// caller act on it. It must be called with fwMu held when the action
// touches the forwards.
func (e *Engine) transition(op state.Op, phase state.Phase, note string, progress func(Event)) error {
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
	e.publish(Event{Op: op, Phase: phase, Message: note}, progress)
	return nil
}

// setHolder and setError change the state; the next transition writes it.
func (e *Engine) setHolder(h *state.Holder) { e.mu.Lock(); e.st.Holder = h; e.mu.Unlock() }
func (e *Engine) setError(msg string)       { e.mu.Lock(); e.st.LastError = msg; e.mu.Unlock() }

// begin claims the engine for one operation, or says who holds it.
func (e *Engine) begin(op state.Op, rec *recording) (state.State, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx.Err() != nil {
		return e.st, &Error{Code: CodeBusy, Phase: e.st.Phase, Msg: "busy: the agent is stopping"}
	}
	if e.running {
		return e.st, &Error{Code: CodeBusy, Holder: e.st.Holder, Phase: e.st.Phase,
			Msg: fmt.Sprintf("busy: %s in progress (%s)%s", e.st.Op, e.st.Phase, holderText(e.st.Holder))}
	}
	e.running = true
	if rec != nil {
		rec.began, rec.start = true, e.clock.Now()
		e.rec = rec
	}
	return e.st, nil
}

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

// withdraw and restore change the forwards in the same step as the
// transition that announces them.
func (e *Engine) withdraw(op state.Op, note string, progress func(Event)) error {
	e.fwMu.Lock()
	defer e.fwMu.Unlock()
	if err := e.transition(op, state.Withdrawing, note, progress); err != nil {
		return err
	}
	err := retry(e.ctx, func() error { return e.d.Forwarder.Withdraw(e.ctx, e.d.Forwards...) })
	if err == nil {
		return nil
	}
	if e.ctx.Err() != nil {
		return errStopping
	}
	// Roll back: the server stays in service, and the state says so.
	msg := fmt.Sprintf("withdraw the forward failed (%v): the server stays in service", err)
	if rerr := e.d.Forwarder.Restore(e.ctx, e.d.Forwards...); rerr != nil {
		msg += fmt.Sprintf("; putting the forward back failed too (%v), and the agent retries it", rerr)
	}
	e.setHolder(nil)
	e.setError(msg)
	if terr := e.transition(state.OpNone, state.InService, "rolled back: "+msg, progress); terr != nil {
		return terr
	}
	return fail(CodeInternal, state.InService, "%s", msg)
}

// errStopping ends an operation cut short by the agent stopping. Nothing
// is recorded after it: the state file keeps the last phase written.
var errStopping = &Error{Code: CodeInternal, Msg: "the agent is stopping: the operation ends here and resumes when the agent starts again"}

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

// readyAndRestore checks the web server, then restores the forward. When
// the server is not ready it stays out: held, with the error recorded.
// With the load balancers' view, it then waits for them to put the server
// back, and says so in res (nil: nobody asks).
func (e *Engine) readyAndRestore(op state.Op, note string, res *Result, progress func(Event)) error {
	if err := e.transition(op, state.ReadyCheck, note, progress); err != nil {
		return err
	}
	if err := e.d.Ready.Wait(e.ctx); err != nil {
		if e.ctx.Err() != nil {
			return errStopping
		}
		msg := fmt.Sprintf("web server not ready, so the server stays out of rotation: %v", err)
		e.hold(&state.Holder{Who: "drainctl", Reason: msg, Since: e.clock.Now()}, msg, progress)
		return fail(CodeNotReady, state.Held, "%s", msg)
	}
	e.fwMu.Lock()
	defer e.fwMu.Unlock()
	if err := e.transition(op, state.Restoring, "", progress); err != nil {
		return err
	}
	restored := time.Now() // packets' time, not e.clock's
	err := retry(e.ctx, func() error { return e.d.Forwarder.Restore(e.ctx, e.d.Forwards...) })
	if err != nil && e.ctx.Err() != nil {
		return errStopping
	}
	e.setHolder(nil)
	if err != nil {
		// The web server is ready and the user asked for it back: the
		// state says in service, and the agent's reconcile retries the
		// forward until the kernel takes it (status shows the forward as
		// it really is meanwhile).
		msg := fmt.Sprintf("restore the forward failed (%v); the agent retries it", err)
		e.setError(msg)
		if terr := e.transition(state.OpNone, state.InService, msg, progress); terr != nil {
			return terr
		}
		return fail(CodeInternal, state.InService, "%s", msg)
	}
	e.setError("")
	if err := e.transition(state.OpNone, state.InService, "forward restored", progress); err != nil {
		return err
	}
	e.confirmBack(op, restored, res, progress)
	return nil
}

// hold leaves the server out of rotation with no operation in progress.
// A new holder (the one a failure names) replaces the old; nil keeps it.
func (e *Engine) hold(h *state.Holder, errMsg string, progress func(Event)) {
	e.mu.Lock()
	if h != nil {
		e.st.Holder = h
	}
	e.st.LastError = errMsg
	e.mu.Unlock()
	if err := e.transition(state.OpNone, state.Held, errMsg, progress); err != nil && err != errStopping {
		e.log.Error("cannot record the hold", "err", err)
	}
}

// drain waits for the server to be quiet, with the request's overrides.
// With the load balancers' view, their confirmation that the server is
// out (withdrawn at since) replaces the fixed min-wait; a restart (grace)
// then goes on after the policy's grace even if users still come through
// the backup entry: the graceful restart finishes their requests.
func (e *Engine) drain(op state.Op, req Request, since time.Time, grace bool, res *Result, progress func(Event)) (drain.Result, error) {
	if err := e.transition(op, state.Draining, "", progress); err != nil {
		return drain.Result{}, err
	}
	p := e.d.Policy
	if req.Deadline > 0 {
		p.Deadline = req.Deadline
	}
	if req.OnDeadline != "" {
		p.OnDeadline = req.OnDeadline
	}
	if progress != nil {
		// The confirmation is published from a goroutine of its own:
		// callers' progress functions see one event at a time all the same.
		var mu sync.Mutex
		inner := progress
		progress = func(ev Event) { mu.Lock(); defer mu.Unlock(); inner(ev) }
	}
	show := func(ev drain.Event) { e.publish(Event{Op: op, Phase: state.Draining, Drain: &ev}, progress) }
	if e.d.Rotation == nil {
		return drain.Wait(e.ctx, e.d.Table, p, e.clock, show)
	}
	if len(e.d.Rotation.Active(since)) == 0 {
		c := e.d.Rotation.Wait(e.ctx, lbview.Out, since) // at once: nobody to wait for
		res.Out = &c
		res.Warnings = append(res.Warnings, fmt.Sprintf("no load balancer health-checks %s, so none is known to have taken the server out of rotation: waited the %v min-wait instead (drainctl haproxy-check tells whether haproxy.cfg checks the right port)",
			lbview.PortsText(e.d.Rotation.Ports()), p.MinWait))
		e.publish(Event{Op: op, Phase: state.Draining, Message: res.Warnings[len(res.Warnings)-1]}, progress)
		return drain.Wait(e.ctx, e.d.Table, p, e.clock, show)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	gate := make(chan drain.Opening, 1)
	done := make(chan lbview.Confirmation, 1)
	go func() {
		c := e.d.Rotation.Wait(ctx, lbview.Out, since)
		o := drain.Opening{Quiet: p.Quiet}
		if c.All() {
			// Nobody new comes: a short quiet shows nobody is at work.
			o.Quiet = min(p.Quiet, 2*p.Poll)
			if grace {
				o.Grace = p.Grace
			}
		}
		if ctx.Err() == nil {
			e.publish(Event{Op: op, Phase: state.Draining, Message: c.Text()}, progress)
		}
		gate <- o
		done <- c
	}()
	dr, err := drain.WaitGated(e.ctx, e.d.Table, p, gate, e.clock, show)
	cancel()
	c := <-done
	res.Out = &c
	if !c.All() {
		res.Warnings = append(res.Warnings, c.Text()+": they may still send new users to this server")
	}
	return dr, err
}

// confirmed is the start of a note on a confirmed withdraw: "out of
// rotation on 2/2 load balancers (…); ", or nothing.
func confirmed(c *lbview.Confirmation) string {
	if c == nil || !c.All() {
		return ""
	}
	return c.Text() + "; "
}

// backNote says the server is back: confirmed by the load balancers, or
// as far as drainctl knows.
func backNote(c *lbview.Confirmation) string {
	if c != nil && c.All() {
		return c.Text()
	}
	return "back in rotation"
}

// confirmBack waits for the load balancers to put the server back after
// a restore at since, and says so in res.
func (e *Engine) confirmBack(op state.Op, since time.Time, res *Result, progress func(Event)) {
	if e.d.Rotation == nil || res == nil {
		return
	}
	c := e.d.Rotation.Wait(e.ctx, lbview.Back, since)
	res.Back = &c
	if len(c.LoadBalancers) == 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("no load balancer health-checks %s: nothing confirms the server is back in rotation", lbview.PortsText(e.d.Rotation.Ports())))
		return
	}
	if !c.All() {
		res.Warnings = append(res.Warnings, c.Text())
	}
	e.publish(Event{Op: op, Phase: state.InService, Message: c.Text()}, progress)
}

func (e *Engine) holderOf(req Request) *state.Holder {
	h := &state.Holder{Who: req.Who, Reason: req.Reason, Since: e.clock.Now(), Command: req.Command, Log: req.Log}
	if req.Command != "" {
		h.RunnerPID = req.PID
	}
	if req.TTL > 0 {
		h.Until = h.Since.Add(req.TTL)
	}
	return h
}

// runBusy is the answer to anyone but the run itself while a command of
// `maintenance run` holds the server.
func runBusy(st state.State) error {
	h := st.Holder
	msg := fmt.Sprintf("busy: maintenance run of %q%s; it ends the hold when the command ends", h.Command, holderText(h))
	if h.Log != "" {
		msg += " (its output: " + h.Log + ")"
	}
	return &Error{Code: CodeBusy, Holder: h, Phase: st.Phase, Msg: msg + "; maintenance exit --force ends it now"}
}

func validate(req Request) error {
	if req.Who == "" {
		return fail(CodeBadRequest, "", "who is required")
	}
	if req.TTL < 0 || req.Deadline < 0 {
		return fail(CodeBadRequest, "", "ttl and deadline must not be negative")
	}
	if req.OnDeadline != "" { // empty: the policy's
		// The API is a trust boundary: what the CLI checked is checked
		// again, by the same rule.
		if _, err := drain.ParseOnDeadline(string(req.OnDeadline)); err != nil {
			return fail(CodeBadRequest, "", "%v", err)
		}
	}
	if req.Command != "" && req.TTL > 0 {
		return fail(CodeBadRequest, "", "ttl does not apply to a maintenance run's hold: the run bounds its command and ends the hold itself")
	}
	if req.CommandDone != nil && req.CommandDone.Command == "" {
		return fail(CodeBadRequest, "", "command_done: command is required")
	}
	return nil
}

// Enter withdraws the forward, waits for the drain, and holds the server
// out until Exit (or the TTL). Entering a held server changes nothing.
func (e *Engine) Enter(req Request, progress func(Event)) (Result, error) {
	return e.recorded(state.OpEnter, req, func(rec *recording) (Result, error) { return e.enter(req, progress, rec) })
}

func (e *Engine) enter(req Request, progress func(Event), rec *recording) (Result, error) {
	start := e.clock.Now()
	if err := validate(req); err != nil {
		return Result{}, err
	}
	st, err := e.begin(state.OpEnter, rec)
	if err != nil {
		return Result{}, err
	}
	defer e.end()
	if st.Phase == state.Held {
		// A run must not run its command on a server another holds, and
		// nobody joins a hold that a running command owns.
		if st.Holder != nil && st.Holder.Command != "" {
			return Result{}, runBusy(st)
		}
		if req.Command != "" {
			return Result{}, &Error{Code: CodeBusy, Holder: st.Holder, Phase: st.Phase,
				Msg: "busy: the server is already in maintenance" + holderText(st.Holder) + "; maintenance run needs a server in service"}
		}
		return Result{Op: state.OpEnter, Phase: state.Held, Holder: st.Holder,
			Note: "already in maintenance" + holderText(st.Holder)}, nil
	}
	e.setHolder(e.holderOf(req))
	since := time.Now()
	if err := e.withdraw(state.OpEnter, "maintenance enter: "+req.Reason, progress); err != nil {
		return Result{}, err
	}
	res := Result{Op: state.OpEnter}
	dr, err := e.drain(state.OpEnter, req, since, false, &res, progress)
	res.Drain = &dr
	if err != nil {
		return e.rollback(state.OpEnter, res, err, progress)
	}
	e.hold(nil, "", progress)
	res.Phase, res.Holder, res.Elapsed = state.Held, e.currentHolder(), e.clock.Now().Sub(start)
	res.Note = fmt.Sprintf("%sdrained (%s after %s); held out of rotation until maintenance exit",
		confirmed(res.Out), dr.Outcome, dr.Elapsed.Round(time.Millisecond))
	return res, nil
}

func (e *Engine) currentHolder() *state.Holder {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st.Holder
}

// rollback puts the server back after a failed drain (deadline with abort,
// or the table could not be read): the web server was not touched.
func (e *Engine) rollback(op state.Op, res Result, cause error, progress func(Event)) (Result, error) {
	if e.ctx.Err() != nil {
		return res, errStopping
	}
	code := CodeInternal
	if isDeadline(cause) {
		code = CodeDeadline
	}
	if err := e.readyAndRestore(op, "rolling back: "+cause.Error(), &res, progress); err != nil {
		res.Phase = state.Held
		return res, err
	}
	res.Phase = state.InService
	return res, fail(code, state.InService, "%v; the forward was restored, nothing was restarted", cause)
}

// Exit checks the web server and restores the forward. Exiting a server
// that is in service changes nothing.
func (e *Engine) Exit(req Request, progress func(Event)) (Result, error) {
	return e.recorded(state.OpExit, req, func(rec *recording) (Result, error) { return e.exit(req, progress, rec) })
}

func (e *Engine) exit(req Request, progress func(Event), rec *recording) (Result, error) {
	start := e.clock.Now()
	if err := validate(req); err != nil {
		return Result{}, err
	}
	st, err := e.begin(state.OpExit, rec)
	if err != nil {
		return Result{}, err
	}
	defer e.end()
	run := st.Holder != nil && st.Holder.Command != ""
	done := req.CommandDone
	switch {
	case done != nil && (!run || st.Holder.Command != done.Command):
		// The hold is no longer this run's (forced out, and maybe taken
		// again): its outcome must not end another's hold.
		return Result{}, &Error{Code: CodeBusy, Holder: st.Holder, Phase: st.Phase,
			Msg: fmt.Sprintf("the hold is no longer this run's (the command %q %s; the server is %s%s)",
				done.Command, done.Outcome(), st.Phase, holderText(st.Holder))}
	case st.Phase == state.InService:
		return Result{Op: state.OpExit, Phase: state.InService, Note: "not in maintenance"}, nil
	case run && done == nil && !req.Force:
		return Result{}, runBusy(st)
	case done != nil && done.Hold:
		// The command failed: the server stays out, held for people now.
		h := *st.Holder
		h.Command, h.Reason = "", fmt.Sprintf("maintenance run: %q %s", done.Command, done.Outcome())
		msg := h.Reason
		if tail := lastLine(done.Output); tail != "" {
			msg += ": " + tail
		}
		e.hold(&h, msg, progress)
		return Result{Op: state.OpExit, Phase: state.Held, Holder: e.currentHolder(), Note: "held out of rotation: " + msg},
			&Error{Code: CodeCommand, Holder: e.currentHolder(), Phase: state.Held,
				Msg: msg + "; the server stays out of rotation until maintenance exit"}
	}
	note := "maintenance exit by " + req.Who
	if done != nil {
		note = fmt.Sprintf("maintenance run: %q %s", done.Command, done.Outcome())
	} else if run {
		note += fmt.Sprintf(" (--force, while %q ran)", st.Holder.Command)
	}
	res := Result{Op: state.OpExit}
	if err := e.readyAndRestore(state.OpExit, note, &res, progress); err != nil {
		res.Phase, res.Holder = state.Held, e.currentHolder()
		return res, err
	}
	res.Phase, res.Elapsed, res.Note = state.InService, e.clock.Now().Sub(start), backNote(res.Back)
	return res, nil
}

// lastLine is the last non-empty line of s, at most 200 bytes.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if len(l) > 200 {
		l = l[:200] + "…"
	}
	return l
}

// Restart runs the whole cycle: withdraw, drain, config test, graceful
// restart, readiness check, restore. A held server is busy: exit first.
func (e *Engine) Restart(req Request, progress func(Event)) (Result, error) {
	return e.recorded(state.OpRestart, req, func(rec *recording) (Result, error) { return e.restart(req, progress, rec) })
}

func (e *Engine) restart(req Request, progress func(Event), rec *recording) (Result, error) {
	start := e.clock.Now()
	if err := validate(req); err != nil {
		return Result{}, err
	}
	st, err := e.begin(state.OpRestart, rec)
	if err != nil {
		return Result{}, err
	}
	defer e.end()
	if st.Phase == state.Held && st.Holder != nil && st.Holder.Command != "" {
		return Result{}, runBusy(st)
	}
	if st.Phase == state.Held {
		return Result{}, &Error{Code: CodeBusy, Holder: st.Holder, Phase: st.Phase,
			Msg: "busy: the server is in maintenance" + holderText(st.Holder) + "; run maintenance exit first"}
	}
	op := state.OpRestart
	res := Result{Op: op}
	e.setHolder(e.holderOf(req))
	since := time.Now()
	if err := e.withdraw(op, "restart: "+req.Reason, progress); err != nil {
		return res, err
	}
	dr, err := e.drain(op, req, since, true, &res, progress)
	res.Drain = &dr
	if err != nil {
		return e.rollback(op, res, err, progress)
	}
	if err := e.transition(op, state.ConfigTest, "", progress); err != nil {
		return res, err
	}
	out, err := e.d.Runner.ConfigTest(e.ctx)
	res.ConfigTest = &out
	e.publish(Event{Op: op, Phase: state.ConfigTest, Output: &out}, progress)
	if err != nil && e.ctx.Err() != nil {
		return res, errStopping
	}
	if err != nil {
		// Nothing was restarted: the old configuration still serves.
		if rerr := e.readyAndRestore(op, "config test failed, nothing restarted", &res, progress); rerr != nil {
			res.Phase = state.Held
			return res, rerr
		}
		res.Phase = state.InService
		return res, fail(CodeConfigTest, state.InService, "config test failed, nothing was restarted and the forward was restored: %v", err)
	}
	if err := e.transition(op, state.Restarting, "", progress); err != nil {
		return res, err
	}
	// A variable of its own: res.ConfigTest points at out.
	rout, err := e.d.Runner.Restart(e.ctx)
	res.Restart = &rout
	e.publish(Event{Op: op, Phase: state.Restarting, Output: &rout}, progress)
	if err != nil && e.ctx.Err() != nil {
		return res, errStopping
	}
	if err != nil {
		msg := fmt.Sprintf("restart command failed, so the server stays out of rotation: %v", err)
		e.hold(&state.Holder{Who: "drainctl", Reason: msg, Since: e.clock.Now()}, msg, progress)
		res.Phase, res.Holder = state.Held, e.currentHolder()
		return res, fail(CodeRestart, state.Held, "%s", msg)
	}
	if err := e.readyAndRestore(op, "restarted", &res, progress); err != nil {
		res.Phase, res.Holder = state.Held, e.currentHolder()
		return res, err
	}
	res.Phase, res.Elapsed = state.InService, e.clock.Now().Sub(start)
	res.Note = "restarted; " + backNote(res.Back)
	return res, nil
}
