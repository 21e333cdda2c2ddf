package maintenance

import (
	"fmt"
	"time"

	"github.com/drainctl/drainctl/pkg/state"
	"github.com/drainctl/drainctl/pkg/window"
)

// opRun is one operation as it runs: what was asked, where its progress
// goes and what it has done so far. The steps (steps.go) are its methods,
// so none of them is handed the operation, the request and the progress
// function again. Resume makes one too, to finish what an agent killed in
// the middle of an operation left.
type opRun struct {
	e   *Engine
	op  state.Op
	req Request
	// progress is the caller's, nil when nobody follows this operation
	// (subscribers still see its events).
	progress func(Event)
	// res is the answer being built; nil when nobody waits for one
	// (Resume): the load balancers' confirmation is then not waited for.
	res   *Result
	start time.Time
	// st is the state when the operation claimed the engine: what it
	// decides from (held or not, whose hold).
	st state.State
	// since is when the forward was withdrawn, by the packets' clock (not
	// e.clock): the load balancers' checks are counted from it.
	since time.Time
	rec   recording
	// released is what became of the pool slot given back (giveBack),
	// for the end of the result's note.
	released string
	// outRatio is the withdraw's confirmation ("1/1") when it was
	// confirmed in an earlier boot: the reboot's, for its history entry.
	outRatio string
	// win is the request's window, parsed once by prepare (zero: none).
	win window.Window
	// pastBudget: the server went out without a pool slot (overBudget).
	pastBudget bool
	// action: what a restart owed did (cheapest.go), for the history.
	action string
}

// operate is the prologue and epilogue every operation shares: it checks
// the request, claims the engine (one operation at a time), runs body,
// lets the engine go and records what ran. A request refused before it
// began (bad, or busy) is not an operation: it is not recorded.
func (e *Engine) operate(op state.Op, req Request, progress func(Event), body func(*opRun) error) (Result, error) {
	r, err := e.prepare(op, req, progress)
	if err != nil {
		return *r.res, err
	}
	return e.run(r, body)
}

// prepare checks the request once, whoever runs it next: checkRequest,
// the agent's ceilings and its policy as a floor (checkCeilings), the
// request's deadline against the agent's policy (a deadline shorter
// than min-wait is refused before anything is withdrawn, not found out
// in the middle of the drain), and the window, kept parsed on the run.
// The run keeps the request cleaned (a command's output made safe).
func (e *Engine) prepare(op state.Op, req Request, progress func(Event)) (*opRun, error) {
	r := &opRun{e: e, op: op, req: cleaned(req), progress: progress, res: &Result{Op: op}, start: e.clock.Now()}
	var err error
	if r.win, err = checkRequest(op, req); err != nil {
		return r, err
	}
	if err := checkCeilings(req, e.d.Policy, e.d.Limits); err != nil {
		return r, err
	}
	if err := r.policy().Validate(); err != nil {
		bad := fail(CodeBadRequest, "", "%v; nothing was changed", err)
		if req.Deadline > 0 {
			bad.Field = "deadline_ms" // else the agent's own policy
		}
		return r, bad
	}
	return r, nil
}

// run claims the engine for a prepared r, runs body, lets the engine go
// and records what ran.
func (e *Engine) run(r *opRun, body func(*opRun) error) (Result, error) {
	if err := e.begin(r); err != nil {
		return *r.res, err
	}
	err := func() error {
		defer e.led.release()
		err := body(r)
		r.done()
		return err
	}()
	e.record(r, err)
	return *r.res, err
}

// resuming is the run Resume finishes an interrupted op with: nobody
// follows it and nobody waits for its result.
func (e *Engine) resuming(op state.Op) *opRun { return &opRun{e: e, op: op} }

// begin claims the engine for r, or says who holds it.
func (e *Engine) begin(r *opRun) error {
	r.rec.start = e.clock.Now()
	st, err := e.led.claim(func(st state.State, running bool) error {
		if e.ctx.Err() != nil {
			return &Error{Code: CodeBusy, Phase: st.Phase, Msg: "busy: the agent is stopping"}
		}
		if running {
			return &Error{Code: CodeBusy, Holder: st.Holder, Phase: st.Phase,
				Msg: fmt.Sprintf("busy: %s in progress (%s)%s", st.Op, st.Phase, holderText(st.Holder))}
		}
		return nil
	}, &r.rec)
	r.st = st
	return err
}

// step writes the operation's next phase (with also's changes to the
// state) and announces it; only then may the caller act on it (see
// Engine.transition).
func (r *opRun) step(phase state.Phase, note string, also ...func(*state.State)) error {
	if err := r.e.transition(r.op, phase, note, also...); err != nil {
		return err
	}
	r.publish(Event{Op: r.op, Phase: phase, Message: note})
	return nil
}

// settle writes where the operation leaves the server, in service or
// held: the state file then says no operation is in progress. The event
// still names the operation that got there ("forward restored" is the
// restore's), for the displays that follow it (drainctl events); only
// Resume's, finishing no operation, has none.
func (r *opRun) settle(phase state.Phase, note string, also ...func(*state.State)) error {
	if err := r.e.transition(state.OpNone, phase, note, also...); err != nil {
		return err
	}
	r.publish(Event{Op: r.op, Phase: phase, Message: note})
	return nil
}

// publish sends ev to the subscribers and to the caller.
func (r *opRun) publish(ev Event) { r.e.publish(ev, r.progress) }

// elapsed is the operation's duration so far.
func (r *opRun) elapsed() time.Duration { return r.e.clock.Now().Sub(r.start) }

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

// holder is who holds the server once the request withdraws it: the
// caller, until the TTL if there is one; a run's hold is its command's.
func (r *opRun) holder() *state.Holder {
	req := r.req
	h := &state.Holder{Who: req.Who, Reason: req.Reason, Since: r.e.clock.Now(), Command: req.Command, Log: req.Log}
	if req.Command != "" {
		h.RunnerPID = req.PID
	}
	if req.TTL > 0 {
		h.Until = h.Since.Add(req.TTL)
	}
	return h
}

// holding sets the state's holder (nil: nobody) and last error, for a
// transition to write.
func holding(h *state.Holder, errMsg string) func(*state.State) {
	return func(st *state.State) { st.Holder, st.LastError = h, errMsg }
}
