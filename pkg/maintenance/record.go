package maintenance

import (
	"cmp"
	"errors"
	"strings"
	"time"

	"github.com/drainctl/drainctl/pkg/history"
)

// recording is what the history keeps of an operation while it runs:
// when it began and its phases (the ledger adds them).
type recording struct {
	start  time.Time
	phases []history.Phase
}

// record writes the entry of an operation that ran to the history, to
// the log as structured fields and to the observer (the metrics). One cut
// short by the agent stopping is not recorded: like the state file, the
// history is left as a kill -9 would leave it.
func (e *Engine) record(r *opRun, err error) {
	if errors.Is(err, errStopping) {
		return
	}
	entry := e.entry(r, err)
	if e.d.Observer != nil {
		e.d.Observer.Observe(entry)
	}
	e.keep(entry)
}

// keep logs entry as one structured line and appends it to the history.
func (e *Engine) keep(entry history.Entry) {
	e.log.Info("operation", logAttrs(entry)...)
	if e.d.History != nil {
		if herr := e.d.History.Append(entry); herr != nil {
			e.log.Error("cannot write the history", "err", herr)
		}
	}
}

// entry is the history's entry of the operation r, ended with err.
func (e *Engine) entry(r *opRun, err error) history.Entry {
	req, res, rec := r.req, r.res, r.rec
	end := e.clock.Now()
	entry := history.Entry{
		Op: string(r.op), Who: req.Who, Reason: req.Reason,
		Start: rec.start, End: end, DurationMS: end.Sub(rec.start).Milliseconds(),
		Outcome: "ok", Phase: string(res.Phase), Phases: rec.phases,
	}
	if entry.Phase == "" {
		entry.Phase = string(e.Phase())
	}
	for i := range entry.Phases {
		next := end
		if i+1 < len(entry.Phases) {
			next = entry.Phases[i+1].Start
		}
		entry.Phases[i].DurationMS = next.Sub(entry.Phases[i].Start).Milliseconds()
	}
	if err != nil {
		entry.Outcome, entry.Error = string(CodeOf(err)), err.Error()
	}
	if res.ConfigTest != nil {
		entry.ConfigTestExit = &res.ConfigTest.ExitCode
	}
	if res.Restart != nil {
		entry.RestartExit = &res.Restart.ExitCode
	}
	entry.Command = req.Command
	if d := req.CommandDone; d != nil {
		code := d.ExitCode
		entry.Command, entry.CommandExit, entry.CommandOutput = d.Command, &code, tail(d.Output, 4<<10)
	}
	entry.OutOfRotation, entry.BackInRotation, entry.Warnings = cmp.Or(res.Out.Ratio(), r.outRatio), res.Back.Ratio(), res.Warnings
	entry.OverBudget, entry.Action = r.pastBudget, r.action
	return entry
}

// logAttrs is one structured line per operation for the journal: plain
// values only (a pointer or a struct would print as an address or Go
// syntax).
func logAttrs(entry history.Entry) []any {
	attrs := []any{"op", entry.Op, "who", entry.Who, "reason", entry.Reason, "outcome", entry.Outcome,
		"error", entry.Error, "phase", entry.Phase, "duration_ms", entry.DurationMS}
	for _, p := range entry.Phases {
		attrs = append(attrs, strings.ReplaceAll(p.Phase, "-", "_")+"_ms", p.DurationMS)
	}
	if entry.ConfigTestExit != nil {
		attrs = append(attrs, "configtest_exit", *entry.ConfigTestExit)
	}
	if entry.RestartExit != nil {
		attrs = append(attrs, "restart_exit", *entry.RestartExit)
	}
	if entry.OutOfRotation != "" {
		attrs = append(attrs, "out_of_rotation", entry.OutOfRotation)
	}
	if entry.BackInRotation != "" {
		attrs = append(attrs, "back_in_rotation", entry.BackInRotation)
	}
	if len(entry.Warnings) > 0 {
		attrs = append(attrs, "warnings", strings.Join(entry.Warnings, "; "))
	}
	if entry.Command != "" {
		attrs = append(attrs, "command", entry.Command)
	}
	if entry.CommandExit != nil {
		attrs = append(attrs, "command_exit", *entry.CommandExit)
	}
	return attrs
}

// History returns the last n operations (all with n <= 0), oldest first.
func (e *Engine) History(n int) ([]history.Entry, error) {
	if e.d.History == nil {
		return nil, nil
	}
	return e.d.History.List(n)
}

// tail is the last n bytes of s, from a line start where there is one.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
		s = s[i+1:]
	}
	return s
}
