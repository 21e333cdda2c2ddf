package maintenance

// The operations: what each does, step by step, and the answer it gives.
// They share their prologue (Engine.operate) and their steps (steps.go).

import (
	"fmt"
	"strings"
	"time"

	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/state"
)

// Enter withdraws the forward, waits for the drain, and holds the server
// out until Exit (or the TTL). Entering a held server changes nothing.
func (e *Engine) Enter(req Request, progress func(Event)) (Result, error) {
	return e.operate(state.OpEnter, req, progress, (*opRun).enter)
}

func (r *opRun) enter() error {
	st, res := r.st, r.res
	if st.Phase == state.Held {
		// A run must not run its command on a server another holds, and
		// nobody joins a hold that a running command owns.
		if st.Holder != nil && st.Holder.Command != "" {
			return runBusy(st)
		}
		if r.req.Command != "" {
			return &Error{Code: CodeBusy, Holder: st.Holder, Phase: st.Phase,
				Msg: "busy: the server is already in maintenance" + holderText(st.Holder) + "; maintenance run needs a server in service"}
		}
		res.Phase, res.Holder, res.Note = state.Held, st.Holder, "already in maintenance"+holderText(st.Holder)
		return nil
	}
	if err := r.takeOut(opening{note: "maintenance enter: " + r.req.Reason, window: true}); err != nil {
		return err
	}
	r.hold(nil, "")
	dr := res.Drain
	res.Phase, res.Holder, res.Elapsed = state.Held, r.e.led.get().Holder, r.elapsed()
	res.Note = fmt.Sprintf("%sdrained (%s after %s); held out of rotation until maintenance exit",
		confirmed(res.Out), dr.Outcome, dr.Elapsed.Round(time.Millisecond))
	return nil
}

// Exit checks the web server and restores the forward. Exiting a server
// that is in service changes nothing.
func (e *Engine) Exit(req Request, progress func(Event)) (Result, error) {
	return e.operate(state.OpExit, req, progress, (*opRun).exit)
}

func (r *opRun) exit() error {
	st, req, res := r.st, r.req, r.res
	run := st.Holder != nil && st.Holder.Command != ""
	done := req.CommandDone
	switch {
	case done != nil && (!run || st.Holder.Command != done.Command):
		// The hold is no longer this run's (forced out, and maybe taken
		// again): its outcome must not end another's hold.
		return &Error{Code: CodeBusy, Holder: st.Holder, Phase: st.Phase,
			Msg: fmt.Sprintf("the hold is no longer this run's (the command %q %s; the server is %s%s)",
				done.Command, done.Outcome(), st.Phase, holderText(st.Holder))}
	case st.Phase == state.InService:
		res.Phase, res.Note = state.InService, "not in maintenance"
		return nil
	case run && done == nil && !req.Force:
		return runBusy(st)
	case done != nil && done.Hold:
		return r.commandFailed(done)
	}
	note := "maintenance exit by " + req.Who
	if done != nil {
		note = fmt.Sprintf("maintenance run: %q %s", done.Command, done.Outcome())
	} else if run {
		note += fmt.Sprintf(" (--force, while %q ran)", st.Holder.Command)
	}
	if err := r.putBack(closing{note: note}); err != nil {
		res.Phase, res.Holder = state.Held, r.e.led.get().Holder
		return err
	}
	res.Phase, res.Elapsed, res.Note = state.InService, r.elapsed(), backNote(res.Back)
	return nil
}

// commandFailed ends a run's hold whose command failed: the server stays
// out, held for people now, with the command and its last line as the
// reason.
func (r *opRun) commandFailed(done *CommandDone) error {
	h := *r.st.Holder
	h.Command, h.Reason = "", fmt.Sprintf("maintenance run: %q %s", done.Command, done.Outcome())
	msg := h.Reason
	if tail := lastLine(done.Output); tail != "" {
		msg += ": " + tail
	}
	r.hold(&h, msg)
	holder := r.e.led.get().Holder
	r.res.Phase, r.res.Holder, r.res.Note = state.Held, holder, "held out of rotation: "+msg
	return &Error{Code: CodeCommand, Holder: holder, Phase: state.Held,
		Msg: msg + "; the server stays out of rotation until maintenance exit"}
}

// Restart runs the whole cycle: withdraw, drain, config test, graceful
// restart, readiness check, restore. A held server is busy: exit first.
func (e *Engine) Restart(req Request, progress func(Event)) (Result, error) {
	return e.operate(state.OpRestart, req, progress, (*opRun).restart)
}

func (r *opRun) restart() error {
	res := r.res
	if err := heldBusy(r.st); err != nil {
		return err
	}
	if err := r.takeOut(opening{note: "restart: " + r.req.Reason, window: true, grace: true}); err != nil {
		return err
	}
	if err := r.restartSteps(); err != nil {
		return err
	}
	if err := r.putBack(closing{note: "restarted"}); err != nil {
		res.Phase, res.Holder = state.Held, r.e.led.get().Holder
		return err
	}
	res.Phase, res.Elapsed = state.InService, r.elapsed()
	res.Note = "restarted; " + backNote(res.Back)
	return nil
}

// heldBusy refuses to take a held server out again (restart, reboot):
// busy, naming the holder, or the maintenance run that owns the hold.
// Held after a failure too (a reboot that did not come back ready): a
// person looks first, then runs maintenance exit.
func heldBusy(st state.State) error {
	if st.Phase != state.Held {
		return nil
	}
	if st.Holder != nil && st.Holder.Command != "" {
		return runBusy(st)
	}
	return &Error{Code: CodeBusy, Holder: st.Holder, Phase: st.Phase,
		Msg: "busy: the server is in maintenance" + holderText(st.Holder) + "; run maintenance exit first"}
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

// lastLine is the last non-empty line of s, at most 200 bytes: a failed
// command's reason, short enough for the status line.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if len(l) > 200 {
		l = l[:200] + "…"
	}
	return l
}
