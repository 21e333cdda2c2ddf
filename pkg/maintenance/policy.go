package maintenance

// A package's restart of the web server, taken over. The guard unit is
// told of every stop, but cannot refuse one, nor change it into
// something cheaper: over the pool's budget it can only delay it
// (web_unit.wait) and then go ahead, and a stop is a stop even when a
// graceful reload would have loaded the new files. dpkg's restarts are
// the one kind that can be refused without harm, since
// deb-systemd-invoke and invoke-rc.d ask /usr/sbin/policy-rc.d first and
// take 101 as "not now" (the old binary keeps serving). drainctl's
// policy-rc.d asks the agent (WebPolicy), which answers 101, records the
// restart owed, and once the package manager is done (and, in a pool, a
// slot granted) does the cheapest action the new files need
// (cheapest.go), drained, as an operation of its own.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/runner"
	"github.com/drainctl/drainctl/pkg/state"
)

// deferrable are the package manager's actions that restart a running
// unit: the ones a pool's budget may put off. A stop is not among them:
// it is a removal's (prerm remove), and a package removed under a
// running server must not keep it running; the guard drains it.
// nginx's postinst asks for its binary upgrade ("upgrade", run by its
// init script outside systemd, which the guard never sees).
var deferrable = []string{"restart", "try-restart", "force-reload", "upgrade"}

// PolicyAnswer is the agent's answer to policy-rc.d.
type PolicyAnswer struct {
	// Defer: policy-rc.d answers 101, the package manager skips the
	// action, and the agent restarts the unit itself (Owed).
	Defer bool   `json:"defer"`
	Note  string `json:"note"`
	// Owed is the restart the agent owes, when deferred.
	Owed *state.Owed `json:"owed,omitempty"`
}

// WebPolicy answers policy-rc.d, asked by the package manager before it
// does req.Job (its action) to req.Unit. With the server already out or
// an operation running (the guard's stop finds them), or for an action
// that does not restart a running unit, the package manager goes on.
// Otherwise the restart is deferred, always: so that it costs only what
// the new files need (a reload, where the package replaced nothing the
// server runs), once for the whole upgrade (after its last package, not
// between two), and in a pool within the budget, not only when the pool
// is full: a slot seen free now may be taken by another server before
// the guard's stop asks for it, and the stop then goes ahead over the
// budget; the agent's own restart waits in line instead. The owed
// restart runs in the background (owedLoop).
func (e *Engine) WebPolicy(req Request) (PolicyAnswer, error) {
	if err := checkUnit(req.Unit); err != nil {
		return PolicyAnswer{}, err
	}
	if err := checkText(req); err != nil { // its reason becomes the owed restart's
		return PolicyAnswer{}, err
	}
	if !slices.Contains(deferrable, req.Job) {
		return PolicyAnswer{Note: req.Job + " of " + req.Unit + ": not deferred (only a restart of a running unit is)"}, nil
	}
	var ans PolicyAnswer
	recorded := false // a new restart owed, not one owed already
	err := e.led.apply(func(st *state.State) {
		// A second action on the same unit while one is owed (another
		// package of the same upgrade) is the same restart.
		if st.Owed != nil && st.Owed.Unit == req.Unit {
			o := *st.Owed
			ans = PolicyAnswer{Defer: true, Owed: &o, Note: "owed already (since " + o.Since.Format(time.RFC3339) + "): drainctl reloads or restarts it, drained, once the package manager is done"}
			return
		}
		if st.Owed != nil || st.Phase != state.InService || st.Op != state.OpNone {
			ans = PolicyAnswer{Note: fmt.Sprintf("the server is %s%s: the guard's stop finds it", st.Phase, opText(st.Op))}
			return
		}
		o := state.Owed{Unit: req.Unit, Action: req.Job, Reason: req.Reason, Since: e.clock.Now()}
		st.Owed, recorded = &o, true
		when := "once the package manager is done"
		if e.d.Slots != nil {
			when += " and pool " + e.d.Slots.Name() + " grants a slot"
		}
		ans = PolicyAnswer{Defer: true, Owed: &o, Note: "deferred: drainctl reloads or restarts it itself, as the new files need, drained, " + when}
	})
	if err != nil {
		// Not recorded, so not owed: the package manager goes on, and
		// the guard drains the restart as it can.
		return PolicyAnswer{Note: "cannot write the state file (" + err.Error() + "): not deferred"}, nil
	}
	if recorded {
		e.log.Info("package manager's restart taken over", "unit", req.Unit, "action", req.Job, "reason", req.Reason)
		e.kickOwed()
	}
	return ans, nil
}

func opText(op state.Op) string {
	if op == state.OpNone {
		return ""
	}
	return " (" + string(op) + " in progress)"
}

func (e *Engine) kickOwed() {
	select {
	case e.owedKick <- struct{}{}:
	default:
	}
}

// owedRetry is how long the owed restart waits before it tries again
// after it could not run (another operation, a hold, no slot within the
// pool wait).
const owedRetry = 10 * time.Second

// owedLoop runs the owed restart whenever there is one: at the agent's
// start (owed before it stopped) and when WebPolicy records one.
func (e *Engine) owedLoop() {
	for {
		wait := time.Hour
		if st := e.led.get(); st.Owed != nil {
			if err := e.runOwed(*st.Owed); err != nil {
				// Busy (a hold, another operation) is the common case and
				// lasts: not a warning every round.
				level := slog.LevelWarn
				if me := (*Error)(nil); errors.As(err, &me) && me.Code == CodeBusy {
					level = slog.LevelDebug
				}
				e.log.Log(e.ctx, level, "the restart owed could not run yet; trying again", "unit", st.Owed.Unit, "err", err, "in", owedRetry)
				wait = owedRetry
			} else if e.led.get().Owed != nil {
				wait = 0 // a new one, recorded meanwhile
			}
		}
		select {
		case <-e.ctx.Done():
			return
		case <-e.owedKick:
		case <-time.After(wait):
		}
	}
}

// runOwed waits for the package manager to finish, then restarts o's
// unit as the operation restart: slot, withdraw, drain, the restart
// through systemd, readiness, restore.
func (e *Engine) runOwed(o state.Owed) error {
	if err := e.waitPackages(); err != nil {
		return err
	}
	// No caller waits for it: it waits in line as long as a run of the
	// whole pool may take, not the agent's pool_wait for people.
	reason := o.Reason
	if reason == "" {
		reason = "package manager's " + o.Action + " of " + o.Unit
	}
	if e.d.Slots != nil {
		reason += " (deferred for a pool slot)"
	}
	req := Request{Who: "drainctl", Reason: reason, Unit: o.Unit, Job: JobRestart, PoolWait: DefaultPoolWait}
	if err := e.waitOwedSlot(req); err != nil {
		return err
	}
	r := &opRun{e: e, op: state.OpRestart, req: req, res: &Result{Op: state.OpRestart}, start: e.clock.Now()}
	res, err := e.run(r, (*opRun).owedRestart)
	var me *Error
	if err != nil && e.d.Slots != nil && errors.As(err, &me) && me.Code == CodeBusy {
		// Refused before it began (another operation, a hold): the slot
		// waited for is not recorded anywhere. The releaser finds it in
		// the pool and gives it back once the server is in service (an
		// operation that took it meanwhile, as this host's, keeps it).
		e.unrecorded.Store(true)
		e.kickReleaser()
	}
	if err == nil {
		e.log.Info("the restart owed is done", "unit", o.Unit, "note", res.Note)
	}
	return err
}

// waitOwedSlot waits in the pool's line for the slot without claiming
// the engine: a wait of minutes must not make every other operation busy
// meanwhile (a person's systemctl restart, whose guard would then not
// drain it). The operation then takes the slot it holds at once
// (Acquire gives a host its own claim back).
func (e *Engine) waitOwedSlot(req Request) error {
	if e.d.Slots == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(e.ctx, req.PoolWait)
	defer cancel()
	claim := pool.Claim{Op: string(state.OpRestart), Reason: req.Reason, By: req.Who, Since: e.clock.Now()}
	said := false
	_, err := e.d.Slots.Acquire(ctx, claim, func(w pool.Wait) {
		if !said {
			said = true
			e.log.Info("the restart owed waits for a pool slot", "unit", req.Unit, "wait", w.Text(time.Now()))
		}
	})
	if err != nil {
		return fmt.Errorf("the pool slot for the restart owed: %w", err)
	}
	return nil
}

// packagesMax bounds the wait for the package manager: an apt that
// holds its lock longer is not waiting on this restart.
const packagesMax = time.Hour

// waitPackages waits while dpkg or apt holds its lock: the unit is
// restarted once the upgrade is done, not between two of its packages.
func (e *Engine) waitPackages() error {
	busy := e.d.PackagesBusy
	if busy == nil {
		busy = dpkgBusy
	}
	end := time.Now().Add(packagesMax)
	for busy() && time.Now().Before(end) {
		select {
		case <-e.ctx.Done():
			return e.ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return nil
}

// dpkgLocks are the package manager's locks: apt's frontend lock (held
// for a whole apt or unattended-upgrade run) and dpkg's own.
var dpkgLocks = []string{"/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock"}

// dpkgBusy says whether a process holds one of dpkgLocks (fcntl, as dpkg
// takes them); an unreadable lock is not busy.
func dpkgBusy() bool {
	for _, p := range dpkgLocks {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
		err = syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk)
		f.Close()
		if err == nil && lk.Type != syscall.F_UNLCK {
			return true
		}
	}
	return false
}

// owedRestart is the owed restart's body: restart's opening, with the
// requests in flight waited for as web-stop does (a restart closes the
// listener), then the cheapest action (cheapest.go). The guard's
// web-stop, if systemd restarts the unit, finds the engine busy and lets
// it go on; its web-start ends the hold.
func (r *opRun) owedRestart() error {
	e := r.e
	if err := heldBusy(r.st); err != nil {
		return err
	}
	wait := e.webWait()
	r.req.Deadline = max(wait, e.d.Policy.MinWait)
	r.req.OnDeadline = drain.Proceed
	// Chosen before the server goes out: a unit that does not run
	// cannot be read, and is restarted as the package manager asked.
	action, why := e.cheapest(e.ctx, r.req.Unit)
	r.action = action + ": " + why
	// The slot was waited for before (waitOwedSlot): taken at once, or
	// gone to another server meanwhile (busy: the loop waits again).
	if err := r.takeOut(opening{note: "restart owed: " + r.req.Unit + " (" + r.req.Reason + "): " + action + ", as " + why, inFlight: wait, slotNow: true}); err != nil {
		return err
	}
	switch action {
	case actReload:
		return r.owedReload(why)
	case actUpgrade:
		return r.owedUpgrade(why)
	}
	return r.owedRestartUnit(why)
}

// owedRestartUnit restarts the unit through systemd (a new binary needs
// a new process: a graceful reload keeps the old one), with new
// connections held through the gap.
func (r *opRun) owedRestartUnit(why string) error {
	e, res := r.e, r.res
	held := r.holdNew()
	unit := r.req.Unit
	if held && behindWeb(unit) {
		// php-fpm: the web server listens all along (held whatever
		// listens); its keep-alive connections are closed first, as the
		// guard's stop does.
		r.closeKeepAlive()
	}
	if err := r.step(state.Restarting, "systemctl restart "+unit, clearOwed(unit)); err != nil {
		return err
	}
	out, ferr := e.restartUnit(e.ctx, unit)
	res.Restart = &out
	r.publish(Event{Op: r.op, Phase: state.Restarting, Output: &out})
	if held {
		e.releaseHold()
	}
	if ferr != nil && e.ctx.Err() != nil {
		return errStopping
	}
	if ferr != nil {
		msg := fmt.Sprintf("systemctl restart %s failed, so the server stays out of rotation: %v", unit, ferr)
		r.hold(&state.Holder{Who: "drainctl", Reason: msg, Since: e.clock.Now()}, msg)
		res.Phase, res.Holder = state.Held, e.led.get().Holder
		return fail(CodeRestart, state.Held, "%s", msg)
	}
	if err := r.putBack(closing{note: unit + " restarted"}); err != nil {
		res.Phase, res.Holder = state.Held, e.led.get().Holder
		return err
	}
	res.Phase, res.Elapsed = state.InService, r.elapsed()
	res.Note = unit + " restarted (" + why + "); " + backNote(res.Back)
	return nil
}

// restartUnit restarts unit through systemd (Deps.UnitRestart, else
// systemctl), bounded.
func (e *Engine) restartUnit(ctx context.Context, unit string) (runner.Output, error) {
	if e.d.UnitRestart != nil {
		return e.d.UnitRestart(ctx, unit)
	}
	return runner.Command{Line: "systemctl restart " + unit, Timeout: 5 * time.Minute}.Run(ctx)
}

// owedDone clears a restart owed of unit once the unit restarted
// another way (a person's systemctl restart, needrestart: the guard's
// web-stop): the new binary runs.
func (e *Engine) owedDone(unit string) {
	err := e.led.apply(func(st *state.State) {
		if st.Owed != nil && st.Owed.Unit == unit {
			st.Owed = nil
		}
	})
	if err != nil && !errors.Is(err, errStopping) {
		e.log.Error("clear the restart owed", "unit", unit, "err", err)
	}
}
