package maintenance

// The steps the operations are made of. Each writes its phase before it
// acts (opRun.step), so that an agent killed in the middle knows where it
// was; a step that fails leaves the server where the state file says.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/state"
)

// withdraw refuses new connections to the forward ports, in the same step
// (under fwMu) as the transition that announces it: a reconcile never sees
// the one without the other. A withdraw that keeps failing is rolled back:
// the server stays in service, and the state says so.
func (r *opRun) withdraw(note string) error {
	e := r.e
	r.since = time.Now() // packets' time, not e.clock's
	e.fwMu.Lock()
	defer e.fwMu.Unlock()
	if err := r.step(state.Withdrawing, note); err != nil {
		return err
	}
	err := retry(e.ctx, func() error { return e.d.Forwarder.Withdraw(e.ctx, e.d.Forwards...) })
	if err == nil {
		return nil
	}
	if e.ctx.Err() != nil {
		return errStopping
	}
	msg := fmt.Sprintf("withdraw the forward failed (%v): the server stays in service", err)
	if rerr := e.d.Forwarder.Restore(e.ctx, e.d.Forwards...); rerr != nil {
		msg += fmt.Sprintf("; putting the forward back failed too (%v), and the agent retries it", rerr)
	}
	e.setHolder(nil)
	e.setError(msg)
	if terr := r.settle(state.InService, "rolled back: "+msg); terr != nil {
		return terr
	}
	return fail(CodeInternal, state.InService, "%s", msg)
}

// drain waits for the server to be quiet, with the request's overrides.
// With the load balancers' view, their confirmation that the server is
// out replaces the fixed min-wait; a restart (grace) then goes on after
// the policy's grace even if users still come through the backup entry:
// the graceful restart finishes their requests.
func (r *opRun) drain(grace bool) (drain.Result, error) {
	if err := r.step(state.Draining, ""); err != nil {
		return drain.Result{}, err
	}
	e, p := r.e, r.policy()
	// The confirmation is published from a goroutine of its own: callers'
	// progress functions see one event at a time all the same.
	var mu sync.Mutex
	say := func(ev Event) { mu.Lock(); defer mu.Unlock(); r.publish(ev) }
	show := func(ev drain.Event) { say(Event{Op: r.op, Phase: state.Draining, Drain: &ev}) }
	switch {
	case e.d.Rotation == nil:
		return drain.Wait(e.ctx, e.d.Table, p, e.clock, show)
	case len(e.d.Rotation.Active(r.since)) == 0:
		c := e.d.Rotation.Wait(e.ctx, lbview.Out, r.since) // at once: nobody to wait for
		r.res.Out = &c
		msg := fmt.Sprintf("no load balancer health-checks %s, so none is known to have taken the server out of rotation: waited the %v min-wait instead (drainctl haproxy-check tells whether haproxy.cfg checks the right port)",
			lbview.PortsText(e.d.Rotation.Ports()), p.MinWait)
		r.warn(msg)
		say(Event{Op: r.op, Phase: state.Draining, Message: msg}) // at once, not only in the result
		return drain.Wait(e.ctx, e.d.Table, p, e.clock, show)
	}
	return r.drainConfirmed(p, grace, say, show)
}

// policy is the drain policy with the request's overrides.
func (r *opRun) policy() drain.Policy {
	p := r.e.d.Policy
	if r.req.Deadline > 0 {
		p.Deadline = r.req.Deadline
	}
	if r.req.OnDeadline != "" {
		p.OnDeadline = r.req.OnDeadline
	}
	return p
}

// drainConfirmed drains while the load balancers' view waits for them to
// take the server out: their confirmation opens the drain's gate.
func (r *opRun) drainConfirmed(p drain.Policy, grace bool, say func(Event), show func(drain.Event)) (drain.Result, error) {
	e := r.e
	ctx, cancel := context.WithCancel(e.ctx)
	gate := make(chan drain.Opening, 1)
	done := make(chan lbview.Confirmation, 1)
	go func() {
		c := e.d.Rotation.Wait(ctx, lbview.Out, r.since)
		o := drain.Opening{Quiet: p.Quiet}
		if c.All() {
			// Nobody new comes: a short quiet shows nobody is at work.
			o.Quiet = min(p.Quiet, 2*p.Poll)
			if grace {
				o.Grace = p.Grace
			}
		}
		if ctx.Err() == nil {
			say(Event{Op: r.op, Phase: state.Draining, Message: c.Text()})
		}
		gate <- o
		done <- c
	}()
	dr, err := drain.WaitGated(e.ctx, e.d.Table, p, gate, e.clock, show)
	cancel()
	c := <-done
	r.res.Out = &c
	if !c.All() {
		r.warn(c.Text() + ": they may still send new users to this server")
	}
	return dr, err
}

// warn records what the operator must know although the operation
// succeeded (the load balancers did not all confirm): in the result, and
// in the journal at WARN, so that journalctl -p warning shows it.
func (r *opRun) warn(msg string) {
	r.res.Warnings = append(r.res.Warnings, msg)
	r.e.log.Warn(msg, "op", r.op)
}

// rollback puts the server back after a failed drain (deadline with abort,
// or the table could not be read): the web server was not touched.
func (r *opRun) rollback(cause error) error {
	if r.e.ctx.Err() != nil {
		return errStopping
	}
	code := CodeInternal
	if isDeadline(cause) {
		code = CodeDeadline
	}
	if err := r.readyAndRestore("rolling back: " + cause.Error()); err != nil {
		r.res.Phase = state.Held
		return err
	}
	r.res.Phase = state.InService
	return fail(code, state.InService, "%v; the forward was restored, nothing was restarted", cause)
}

// configTest runs the web server's config test. When it fails nothing is
// restarted: the old configuration still serves, and the forward comes
// back.
func (r *opRun) configTest() error {
	e := r.e
	if err := r.step(state.ConfigTest, ""); err != nil {
		return err
	}
	out, err := e.d.Runner.ConfigTest(e.ctx)
	r.res.ConfigTest = &out
	r.publish(Event{Op: r.op, Phase: state.ConfigTest, Output: &out})
	if err != nil && e.ctx.Err() != nil {
		return errStopping
	}
	if err == nil {
		return nil
	}
	if rerr := r.readyAndRestore("config test failed, nothing restarted"); rerr != nil {
		r.res.Phase = state.Held
		return rerr
	}
	r.res.Phase = state.InService
	return fail(CodeConfigTest, state.InService, "config test failed, nothing was restarted and the forward was restored: %v", err)
}

// restartServer runs the graceful restart. When it fails the server stays
// out: whether the web server serves is not known.
func (r *opRun) restartServer() error {
	e := r.e
	if err := r.step(state.Restarting, ""); err != nil {
		return err
	}
	out, err := e.d.Runner.Restart(e.ctx)
	r.res.Restart = &out
	r.publish(Event{Op: r.op, Phase: state.Restarting, Output: &out})
	if err != nil && e.ctx.Err() != nil {
		return errStopping
	}
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf("restart command failed, so the server stays out of rotation: %v", err)
	r.hold(&state.Holder{Who: "drainctl", Reason: msg, Since: e.clock.Now()}, msg)
	r.res.Phase, r.res.Holder = state.Held, e.currentHolder()
	return fail(CodeRestart, state.Held, "%s", msg)
}

// readyAndRestore checks the web server, then restores the forward. When
// the server is not ready it stays out: held, with the error recorded.
// With the load balancers' view, it then waits for them to put the server
// back, and says so in the result (none at Resume: nobody asks).
func (r *opRun) readyAndRestore(note string) error {
	e := r.e
	if err := r.step(state.ReadyCheck, note); err != nil {
		return err
	}
	ready := e.d.Ready
	if r.ready != nil {
		ready = r.ready
	}
	if err := ready.Wait(e.ctx); err != nil {
		if e.ctx.Err() != nil {
			return errStopping
		}
		msg := fmt.Sprintf("web server not ready%s, so the server stays out of rotation: %v", r.after, err)
		r.hold(&state.Holder{Who: "drainctl", Reason: msg, Since: e.clock.Now()}, msg)
		return fail(CodeNotReady, state.Held, "%s", msg)
	}
	e.fwMu.Lock()
	defer e.fwMu.Unlock()
	restored, err := r.restore()
	if err != nil {
		return err
	}
	r.confirmBack(restored)
	return nil
}

// restore puts the forward back, in the same step as the transition that
// announces it; fwMu is held. A restore that keeps failing still leaves
// the state in service: the web server is ready and the user asked for it
// back, so the agent's reconcile retries the forward until the kernel
// takes it (status shows the forward as it really is meanwhile). It
// returns when the forward was restored, by the packets' clock.
func (r *opRun) restore() (time.Time, error) {
	e := r.e
	if err := r.step(state.Restoring, ""); err != nil {
		return time.Time{}, err
	}
	restored := time.Now() // packets' time, not e.clock's
	err := retry(e.ctx, func() error { return e.d.Forwarder.Restore(e.ctx, e.d.Forwards...) })
	if err != nil && e.ctx.Err() != nil {
		return restored, errStopping
	}
	e.setHolder(nil)
	if err != nil {
		msg := fmt.Sprintf("restore the forward failed (%v); the agent retries it", err)
		e.setError(msg)
		if terr := r.settle(state.InService, msg); terr != nil {
			return restored, terr
		}
		return restored, fail(CodeInternal, state.InService, "%s", msg)
	}
	e.setError("")
	return restored, r.settle(state.InService, "forward restored")
}

// confirmBack waits for the load balancers to put the server back after
// a restore at since, and says so in the result.
func (r *opRun) confirmBack(since time.Time) {
	e, res := r.e, r.res
	if e.d.Rotation == nil || res == nil {
		return
	}
	c := e.d.Rotation.Wait(e.ctx, lbview.Back, since)
	res.Back = &c
	if len(c.LoadBalancers) == 0 {
		r.warn(fmt.Sprintf("no load balancer health-checks %s: nothing confirms the server is back in rotation", lbview.PortsText(e.d.Rotation.Ports())))
		return
	}
	if !c.All() {
		r.warn(c.Text())
	}
	r.publish(Event{Op: r.op, Phase: state.InService, Message: c.Text()})
}

// hold leaves the server out of rotation with no operation in progress.
// A new holder (the one a failure names) replaces the old; nil keeps it.
func (r *opRun) hold(h *state.Holder, errMsg string) {
	e := r.e
	e.mu.Lock()
	if h != nil {
		e.st.Holder = h
	}
	e.st.LastError = errMsg
	e.mu.Unlock()
	if err := r.settle(state.Held, errMsg); err != nil && !errors.Is(err, errStopping) {
		e.log.Error("cannot record the hold", "err", err)
	}
}
