package maintenance

// The safety sequence, written once: the opening that takes the server
// out (slot, holder, withdraw, drain, or the rollback when the drain
// fails) and the closing that puts it back (readiness, restore, the load
// balancers' confirmation, the slot given back). Every operation that
// takes the server out opens with takeOut; every way back (exit, the end
// of a restart, a rollback, Resume, the boot after a reboot) is putBack.
// What an operation does in between (nothing: enter; the config test and
// the restart; the reboot) is its own. They are two entry points, with
// options, because a restart performed by someone else (systemd, the
// package manager) needs the opening before the web server stops and the
// closing after it starts: Engine.TakeOut and Engine.PutBack would be
// e.operate around each.

import (
	"fmt"
	"time"

	"github.com/drainctl/drainctl/pkg/state"
)

// opening is how takeOut takes the server out.
type opening struct {
	// note is the withdrawing phase's ("restart: kernel update").
	note string
	// window: go out only within the request's window (when it has
	// one), checked before the pool's line and again once a slot is
	// granted. Without it, the window is not looked at.
	window bool
	// slotNow: take a pool slot only if one is free now, without
	// waiting in line (pool-busy at once otherwise).
	slotNow bool
	// grace: once the load balancers confirm the server out, the drain
	// goes on after the policy's grace even if users remain (a restart:
	// the graceful restart finishes their requests).
	grace bool
	// inFlight, when set, replaces the grace: once the load balancers
	// confirm the server out, the drain waits this long at most for the
	// requests then in flight (a web server's stop: Apache's graceful-stop
	// closes its listener at once and then waits for them, so the longer
	// one runs past the stop, the longer nobody is served).
	inFlight time.Duration
	// overBudget: a slot the pool does not grant (busy, or etcd not
	// answering) is a warning, not a refusal: the web server's unit
	// stops whatever drainctl says (WebStop).
	overBudget bool
}

// takeOut takes the pool slot (within the window, as o says), withdraws
// the forward with the request's holder, and drains. A withdraw that
// fails leaves the server in service; a drain that fails (the deadline
// with abort, the table unreadable) puts it back (rollBack). On success
// the server is out, drained, in the phase "draining" of r's operation:
// what comes next is the caller's.
func (r *opRun) takeOut(o opening) error {
	if err := r.takeSlotIn(o); err != nil {
		if !o.overBudget {
			return err
		}
		if err := r.overBudget(err); err != nil {
			return err
		}
	}
	if err := r.withdraw(o.note, r.holder()); err != nil {
		return err
	}
	var grace time.Duration
	if o.grace {
		grace = r.e.d.Policy.Grace
	}
	if o.inFlight > 0 {
		grace = o.inFlight
	}
	dr, err := r.drain(grace)
	r.res.Drain = &dr
	if err != nil {
		if r.e.ctx.Err() != nil {
			return errStopping
		}
		code := CodeInternal
		if isDeadline(err) {
			code = CodeDeadline
		}
		return r.rollBack("rolling back: "+err.Error(), fail(code, state.InService, "%v; the forward was restored, nothing was restarted", err))
	}
	return nil
}

// closing is how putBack puts the server back.
type closing struct {
	// note is the ready-check phase's: why the server goes back.
	note string
	// ready replaces the engine's readiness check (after a reboot: the
	// boot's longer timeout), and after says when it ran in the message
	// of a failure (" after the reboot"); both empty for the others.
	ready Readiness
	after string
}

// putBack checks the web server, restores the forward, waits for the
// load balancers to confirm it back (and says so in the result; none at
// Resume: nobody asks) and gives the pool slot back. A server that is not
// ready stays out: held, with the error recorded (CodeNotReady). A
// restore that fails leaves the state in service, for the agent to retry
// the forward (CodeInternal).
func (r *opRun) putBack(c closing) error {
	e := r.e
	if err := r.step(state.ReadyCheck, c.note); err != nil {
		return err
	}
	ready := e.d.Ready
	if c.ready != nil {
		ready = c.ready
	}
	if err := ready.Wait(e.ctx); err != nil {
		if e.ctx.Err() != nil {
			return errStopping
		}
		msg := fmt.Sprintf("web server not ready%s, so the server stays out of rotation: %v", c.after, err)
		r.hold(&state.Holder{Who: "drainctl", Reason: msg, Since: e.clock.Now()}, msg)
		return fail(CodeNotReady, state.Held, "%s", msg)
	}
	restored, err := r.restore()
	if err != nil {
		return err
	}
	r.confirmBack(restored)
	r.giveBack()
	return nil
}

// rollBack puts the server back after the operation stopped short of
// the web server (a failed drain or config test, a window that closed):
// failure is the operation's answer once the server is back; when it
// cannot be (not ready), putBack's error is.
func (r *opRun) rollBack(note string, failure *Error) error {
	if err := r.putBack(closing{note: note}); err != nil {
		r.res.Phase = state.Held
		return err
	}
	r.res.Phase = state.InService
	return failure
}
