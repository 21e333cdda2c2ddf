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
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/runner"
	"github.com/drainctl/drainctl/pkg/state"
)

// withdraw refuses new connections to the forward ports, with h as the
// holder from now on, in the same step (forwards.with) as the transition
// that announces it: a reconcile never sees the one without the other. A
// withdraw that keeps failing is rolled back: the server stays in
// service, and the state says so.
func (r *opRun) withdraw(note string, h *state.Holder) error {
	e := r.e
	r.since = time.Now() // packets' time, not e.clock's
	return e.fw.with(func(x fwx) error {
		if err := r.step(state.Withdrawing, note, func(st *state.State) { st.Holder = h }); err != nil {
			return err
		}
		err := retry(e.ctx, func() error { return x.do(e.ctx, forward.Forwarder.Withdraw, x.all()...) })
		if err == nil {
			return nil
		}
		if e.ctx.Err() != nil {
			return errStopping
		}
		msg := fmt.Sprintf("withdraw the forward failed (%v): the server stays in service", err)
		if rerr := x.do(e.ctx, forward.Forwarder.Restore, x.all()...); rerr != nil {
			msg += fmt.Sprintf("; putting the forward back failed too (%v), and the agent retries it", rerr)
		}
		if terr := r.settle(state.InService, "rolled back: "+msg, holding(nil, msg)); terr != nil {
			return terr
		}
		return fail(CodeInternal, state.InService, "%s", msg)
	})
}

// drain waits for the server to be quiet, with the request's overrides.
// With the load balancers' view, their confirmation that the server is
// out replaces the fixed min-wait; a restart (grace) then goes on once
// the requests in flight at the confirmation are done, or after grace,
// even if users still come through the backup entry: the graceful
// restart finishes their requests. No grace: until quiet.
func (r *opRun) drain(grace time.Duration) (drain.Result, error) {
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
func (r *opRun) drainConfirmed(p drain.Policy, grace time.Duration, say func(Event), show func(drain.Event)) (drain.Result, error) {
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
			o.Grace = grace
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

// command runs one of the web server's commands (the config test, the
// graceful restart) in its phase, written first; its output is kept in
// *out and announced. failed is the command's own failure; err ends the
// operation (the state not written, the agent stopping).
func (r *opRun) command(phase state.Phase, run func(context.Context) (runner.Output, error), out **runner.Output, also ...func(*state.State)) (failed, err error) {
	e := r.e
	if err := r.step(phase, "", also...); err != nil {
		return nil, err
	}
	o, ferr := run(e.ctx)
	*out = &o
	r.publish(Event{Op: r.op, Phase: phase, Output: &o})
	if ferr != nil && e.ctx.Err() != nil {
		return nil, errStopping
	}
	return ferr, nil
}

// restartSteps are the config test and the graceful restart. A config
// test that fails restarts nothing: the old configuration still serves,
// and the forward comes back. A restart that fails leaves the server
// out: whether the web server serves is not known. also changes the
// state with the config test's step (a restart owed: cleared).
func (r *opRun) restartSteps(also ...func(*state.State)) error {
	e, res := r.e, r.res
	failed, err := r.command(state.ConfigTest, e.d.Runner.ConfigTest, &res.ConfigTest, also...)
	if err != nil {
		return err
	}
	if failed != nil {
		return r.rollBack("config test failed, nothing restarted",
			fail(CodeConfigTest, state.InService, "config test failed, nothing was restarted and the forward was restored: %v", failed))
	}
	if failed, err = r.command(state.Restarting, e.d.Runner.Restart, &res.Restart); err != nil {
		return err
	}
	if failed != nil {
		msg := fmt.Sprintf("restart command failed, so the server stays out of rotation: %v", failed)
		r.hold(&state.Holder{Who: "drainctl", Reason: msg, Since: e.clock.Now()}, msg)
		res.Phase, res.Holder = state.Held, e.led.get().Holder
		return fail(CodeRestart, state.Held, "%s", msg)
	}
	return nil
}

// restore puts the forward back, in the same step (forwards.with) as the
// transition that announces it. A restore that keeps failing still
// leaves the state in service: the web server is ready and the user
// asked for it back, so the agent's reconcile retries the forward until
// the kernel takes it (status shows the forward as it really is
// meanwhile). It returns when the forward was restored, by the packets'
// clock.
func (r *opRun) restore() (restored time.Time, err error) {
	e := r.e
	err = e.fw.with(func(x fwx) error {
		if err := r.step(state.Restoring, ""); err != nil {
			return err
		}
		restored = time.Now() // packets' time, not e.clock's
		err := retry(e.ctx, func() error { return x.do(e.ctx, forward.Forwarder.Restore, x.all()...) })
		if err != nil && e.ctx.Err() != nil {
			return errStopping
		}
		if err != nil {
			msg := fmt.Sprintf("restore the forward failed (%v); the agent retries it", err)
			if terr := r.settle(state.InService, msg, holding(nil, msg)); terr != nil {
				return terr
			}
			return fail(CodeInternal, state.InService, "%s", msg)
		}
		return r.settle(state.InService, "forward restored", holding(nil, ""))
	})
	return restored, err
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

// hold leaves the server out of rotation with no operation in progress,
// with errMsg as the last error. A new holder (the one a failure names)
// replaces the old; nil keeps it.
func (r *opRun) hold(h *state.Holder, errMsg string) {
	e := r.e
	err := r.settle(state.Held, errMsg, func(st *state.State) {
		if h != nil {
			st.Holder = h
		}
		st.LastError = errMsg
	})
	if err != nil && !errors.Is(err, errStopping) {
		e.log.Error("cannot record the hold", "err", err)
	}
}
