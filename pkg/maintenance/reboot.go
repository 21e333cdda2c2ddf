package maintenance

// The reboot: one operation across two boots. In the first it takes the
// pool slot, withdraws, drains, writes "rebooting" with the boot it
// leaves, and runs the reboot command; the next boot's agent finishes it
// (Resume → finishReboot): readiness with the boot's timeout, restore,
// the load balancers' confirmation, the slot given back, and one history
// entry spanning both boots. Every failure leaves the server held, and
// nothing in drainctl reboots a held server: a host that came back broken
// is not rebooted again (no reboot loop), and in a pool its slot is kept,
// so a bad kernel does not roll on to the next server.

import (
	"errors"
	"fmt"
	"time"

	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/history"
	"github.com/drainctl/drainctl/pkg/state"
)

// DefaultRebootTimeout is how long after the reboot command the boot id
// may stay the same before the server is held: a server's shutdown (its
// units' stop timeouts) and firmware take minutes, not tens of minutes.
const DefaultRebootTimeout = 10 * time.Minute

// rebootGrace is how long a failed reboot command waits for the agent to
// be stopped before it counts as failed (a var: the tests shorten it).
var rebootGrace = 5 * time.Second

// Booting is the history's phase from the start of the new boot (its
// init) to the agent's resume; "rebooting" before it is the shutdown
// (and, on real hardware, the firmware). Never written to the state.
const Booting state.Phase = "booting"

// Reboot withdraws the forward, drains, and reboots the host; the next
// boot puts the server back (Resume). With IfRequired, a host that does
// not need a reboot is left as it is, and the answer says so.
func (e *Engine) Reboot(req Request, progress func(Event)) (Result, error) {
	res := Result{Op: state.OpReboot}
	if e.d.Boot == nil || e.d.Rebooter == nil {
		return res, fail(CodeBadRequest, "", "this agent does not reboot the host: it has no reboot command")
	}
	r, err := e.prepare(state.OpReboot, req, progress)
	if err != nil {
		return res, err
	}
	if req.IfRequired {
		// Before the operation: a nightly cron job on a host that needs
		// nothing leaves no trace in the history.
		need, why, err := e.d.Boot.RebootRequired(e.ctx)
		if err != nil {
			return res, fail(CodeInternal, e.Phase(), "cannot tell whether a reboot is required: %v; nothing was changed", err)
		}
		if !need {
			res.Phase, res.Note = e.Phase(), "no reboot required ("+why+"): nothing was changed"
			return res, nil
		}
		if r.req.Reason == "" {
			r.req.Reason = why
		}
	}
	return e.run(r, (*opRun).reboot)
}

func (r *opRun) reboot() error {
	e := r.e
	if err := heldBusy(r.st); err != nil {
		return err
	}
	boot, err := e.d.Boot.ID()
	if err != nil {
		return fail(CodeInternal, state.InService, "cannot read the boot id, so a reboot could not be told from none: %v; nothing was changed", err)
	}
	// Users get the drain (no grace): the reboot ends their sessions.
	if err := r.takeOut(opening{note: "reboot: " + r.req.Reason, window: true}); err != nil {
		return err
	}
	if err := r.stillInWindow(); err != nil {
		return err
	}
	return r.goDown(boot)
}

// stillInWindow puts the server back, rather than reboot it, when the
// request's window closed during the drain (a long drain deadline).
func (r *opRun) stillInWindow() error {
	w := r.win
	if w.IsZero() || w.Contains(r.e.clock.Now()) {
		return nil
	}
	return r.rollBack("the window "+w.String()+" closed during the drain: not rebooting",
		fail(CodeOutsideWindow, state.InService, "the window %s closed during the drain: not rebooted, back in service", w))
}

// goDown writes the reboot to the state (so the next boot knows it went
// down on purpose, and which boot it left), runs the reboot command and
// waits for the host to go down.
func (r *opRun) goDown(boot string) error {
	e := r.e
	cmd := e.d.Rebooter
	now := e.clock.Now()
	rb := &state.Reboot{BootID: boot, Since: now, Command: commandLine(cmd), Who: r.req.Who, Reason: r.req.Reason, Start: r.rec.start,
		OutOfRotation: r.res.Out.Ratio()}
	for _, p := range e.led.phases() {
		rb.Marks = append(rb.Marks, state.Mark{Phase: p.Phase, Start: p.Start})
	}
	rb.Marks = append(rb.Marks, state.Mark{Phase: string(state.Rebooting), Start: now})
	note := fmt.Sprintf("running %q (leaving boot %s); the server comes back into rotation by itself once the web server answers after the boot", rb.Command, boot)
	if err := r.step(state.Rebooting, note, func(st *state.State) { st.Reboot = rb }); err != nil {
		return err
	}
	out, err := cmd.Reboot(e.ctx)
	r.res.Reboot = &out
	if err != nil {
		// The shutdown may kill the command before it stops the agent
		// (systemctl reboot still waiting when systemd stops this unit's
		// cgroup: "signal: terminated"): a failure only if the agent is
		// still running a few seconds later.
		select {
		case <-e.ctx.Done():
		case <-time.After(rebootGrace):
		}
	}
	if e.ctx.Err() != nil {
		return errStopping // the shutdown stopped the agent: as planned
	}
	if err != nil && out.ExitCode != -1 {
		msg := fmt.Sprintf("reboot command %q failed, so the host was not rebooted and the server stays out of rotation: %v", rb.Command, err)
		return r.rebootFailed(msg)
	}
	// Done, or killed by a signal (the shutdown's, most likely): the
	// reboot timeout tells whether the host went down.
	return r.awaitReboot(rb)
}

// awaitReboot waits for the shutdown to stop the agent. A host still up
// with the same boot id after the reboot timeout did not reboot: held.
func (r *opRun) awaitReboot(rb *state.Reboot) error {
	e := r.e
	limit := e.d.RebootTimeout
	if limit <= 0 {
		limit = DefaultRebootTimeout
	}
	wait := rb.Since.Add(limit).Sub(e.clock.Now())
	select {
	case <-e.ctx.Done():
		return errStopping
	case <-time.After(wait):
	}
	return r.rebootFailed(fmt.Sprintf("the host did not reboot within %v of %q (still boot %s), so the server stays out of rotation", limit, rb.Command, rb.BootID))
}

// rebootFailed holds the server after a reboot that did not happen. The
// hold ends only by a person's maintenance exit: drainctl never tries
// the reboot again.
func (r *opRun) rebootFailed(msg string) error {
	msg += "; drainctl does not try again: fix the reboot command, reboot by hand, then maintenance exit"
	r.hold(&state.Holder{Who: "drainctl", Reason: msg, Since: r.e.clock.Now()}, msg)
	r.res.Phase, r.res.Holder = state.Held, r.e.led.get().Holder
	return fail(CodeRebootFailed, state.Held, "%s", msg)
}

// commandLine names the reboot command for people, if it can.
func commandLine(x Rebooter) string {
	if s, ok := x.(fmt.Stringer); ok {
		return s.String()
	}
	return "the reboot command"
}

// resumeReboot is Resume for a reboot in progress. It returns the work
// left, which runs with the engine claimed, after Resume returns: the
// readiness check after a boot may take minutes, and status must answer
// meanwhile.
func (e *Engine) resumeReboot(st state.State) (note string, rest func(), err error) {
	if err := e.withdrawAll(); err != nil {
		return "", nil, fmt.Errorf("withdraw the forward: %w", err)
	}
	boot, berr := e.d.Boot.ID()
	rb := st.Reboot
	switch {
	case rb == nil:
		// The reboot command never ran (no record: withdrawing, draining,
		// or the rollback's ready-check): roll back, as for a restart.
		return "reboot interrupted before the reboot command: rolling back", func() {
			if err := e.resuming(state.OpReboot).putBack(closing{note: "agent restarted before the reboot: rolling back"}); err != nil && !errors.Is(err, errStopping) {
				e.log.Error("rollback of the interrupted reboot failed", "err", err)
			}
		}, nil
	case st.Phase == state.Rebooting && (berr != nil || boot == rb.BootID):
		// The agent restarted, the host did not (yet); a boot id that
		// cannot be read is not taken for a reboot: the server could go
		// down undrained with its slot given back.
		if berr != nil {
			e.log.Warn("cannot read the boot id: taking the host for not rebooted yet", "err", berr)
		}
		r := e.resumedReboot(rb)
		return fmt.Sprintf("agent restarted while waiting for the reboot (%q at %s, still boot %s)", rb.Command, rb.Since.Format(time.RFC3339), rb.BootID),
			func() { e.record(r, r.awaitReboot(rb)) }, nil
	}
	r := e.resumedReboot(rb)
	return "back from the reboot: checking the web server, then restoring", func() { e.finishReboot(r, st.Phase) }, nil
}

// resumedReboot is the reboot's run as the next agent continues it: its
// request, start and phases so far come from the state.
func (e *Engine) resumedReboot(rb *state.Reboot) *opRun {
	r := &opRun{e: e, op: state.OpReboot, res: &Result{Op: state.OpReboot}}
	r.req = Request{Who: rb.Who, Reason: rb.Reason}
	r.outRatio = rb.OutOfRotation
	r.start, r.rec.start = rb.Start, rb.Start
	for _, m := range rb.Marks {
		r.rec.phases = append(r.rec.phases, history.Phase{Phase: m.Phase, Start: m.Start})
	}
	e.led.follow(&r.rec)
	return r
}

// finishReboot puts the server back after the boot: readiness (the
// boot's timeout), restore, the load balancers' confirmation, the slot.
func (e *Engine) finishReboot(r *opRun, from state.Phase) {
	if from == state.Rebooting {
		if t, err := e.d.Boot.Started(); err == nil && len(r.rec.phases) > 0 && t.After(r.rec.phases[len(r.rec.phases)-1].Start) {
			r.rec.phases = append(r.rec.phases, history.Phase{Phase: string(Booting), Start: t})
		}
	}
	err := r.putBack(closing{note: fmt.Sprintf("back from the reboot (%s)", r.req.Reason), ready: e.d.BootReady, after: " after the reboot"})
	r.res.Phase = e.Phase()
	switch {
	case errors.Is(err, errStopping):
		// Stopped again: the next start finishes (nothing is recorded).
	case r.res.Phase == state.InService:
		if err == nil {
			r.res.Elapsed = r.elapsed()
			r.res.Note = "rebooted; " + backNote(r.res.Back)
		}
		r.done() // the releaser, when the restore failed and the agent retries it
	case e.led.get().Slot != nil:
		e.log.Error("not back after the reboot: held, and the pool slot is kept, so no other server of the pool goes until this one is fixed", "err", err)
	default:
		e.log.Error("not back after the reboot: held", "err", err)
	}
	e.record(r, err)
}

// withdrawAll withdraws every forward (Resume, before it decides).
func (e *Engine) withdrawAll() error {
	return e.fw.with(func(x fwx) error { return x.do(e.ctx, forward.Forwarder.Withdraw, x.all()...) })
}
