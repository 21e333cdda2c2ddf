package maintenance

// The request's rules, per operation, in one place: the engine checks
// them at its boundary (prepare), and the CLI may check them before it
// sends anything, naming the flag of the field that failed.

import (
	"errors"
	"slices"
	"strings"

	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/state"
	"github.com/drainctl/drainctl/pkg/window"
)

// The operations that take the server out: they drain, may wait for a
// pool slot and honour a window.
var takingOut = []state.Op{state.OpEnter, state.OpRestart, state.OpReboot}

// requestField is one field of Request as the rules see it.
type requestField struct {
	name string // its key in the API's JSON: what FieldOf returns
	word string // how the messages name it
	set  func(Request) bool
	ops  []state.Op // the operations it applies to; nil: all
}

// requestFields are Request's fields and the operations each applies to
// (docs/api.md's request table).
var requestFields = []requestField{
	{"who", "who", func(r Request) bool { return r.Who != "" }, nil},
	{"reason", "reason", func(r Request) bool { return r.Reason != "" }, nil},
	{"on_deadline", "on_deadline", func(r Request) bool { return r.OnDeadline != "" }, takingOut},
	{"deadline_ms", "deadline", func(r Request) bool { return r.Deadline != 0 }, takingOut},
	{"pool_wait_ms", "pool wait", func(r Request) bool { return r.PoolWait != 0 }, takingOut},
	{"window", "window", func(r Request) bool { return r.Window != "" }, takingOut},
	{"outside_window", "outside_window", func(r Request) bool { return r.OutsideWindow != "" }, takingOut},
	{"ttl_ms", "ttl", func(r Request) bool { return r.TTL != 0 }, []state.Op{state.OpEnter}},
	{"command", "command", func(r Request) bool { return r.Command != "" }, []state.Op{state.OpEnter}},
	{"log", "log", func(r Request) bool { return r.Log != "" }, []state.Op{state.OpEnter}},
	{"command_done", "command_done", func(r Request) bool { return r.CommandDone != nil }, []state.Op{state.OpExit}},
	{"force", "force", func(r Request) bool { return r.Force }, []state.Op{state.OpExit}},
	{"if_required", "if_required", func(r Request) bool { return r.IfRequired }, []state.Op{state.OpReboot}},
	{"unit", "unit", func(r Request) bool { return r.Unit != "" }, webOps},
	{"job", "job", func(r Request) bool { return r.Job != "" }, []state.Op{state.OpWebStop}},
}

// webOps are what the guard unit of a web server asks (drainctl hook).
var webOps = []state.Op{state.OpWebStop, state.OpWebStart}

// strictOps refuse a field that does not apply to them. The others
// ignore one, as they always have (an API client's request that worked
// must not start failing), except a bad window or outside_window, which
// every operation refuses as before.
var strictOps = []state.Op{state.OpReboot, state.OpWebStop, state.OpWebStart}

// CheckRequest checks req for operation op, whoever sent it (the API is a
// trust boundary: what the CLI checked is checked again). A refusal is an
// *Error with CodeBadRequest whose Field names the request's field (its
// JSON key, see FieldOf). It does not know the agent's drain policy: a
// deadline shorter than its min-wait is refused by the engine alone.
func CheckRequest(op state.Op, req Request) error {
	_, err := checkRequest(op, req)
	return err
}

// checkRequest is CheckRequest, with the request's window parsed (zero
// for none) for the engine to keep.
func checkRequest(op state.Op, req Request) (window.Window, error) {
	if err := checkApplies(op, req); err != nil {
		return window.Window{}, err
	}
	if req.Who == "" {
		return window.Window{}, badField("who", "who is required")
	}
	if err := checkText(req); err != nil {
		return window.Window{}, err
	}
	for _, d := range []struct {
		field, word string
		neg         bool
	}{{"ttl_ms", "ttl", req.TTL < 0}, {"deadline_ms", "deadline", req.Deadline < 0}, {"pool_wait_ms", "pool wait", req.PoolWait < 0}} {
		if d.neg {
			return window.Window{}, badField(d.field, "%s must not be negative", d.word)
		}
	}
	if req.OnDeadline != "" { // empty: the policy's
		if _, err := drain.ParseOnDeadline(string(req.OnDeadline)); err != nil {
			return window.Window{}, badField("on_deadline", "%v", err)
		}
	}
	if req.Command != "" && req.TTL > 0 {
		return window.Window{}, badField("ttl_ms", "ttl does not apply to a maintenance run's hold: the run bounds its command and ends the hold itself")
	}
	if slices.Contains(webOps, op) {
		if err := checkUnit(req.Unit); err != nil {
			return window.Window{}, err
		}
	}
	if op == state.OpWebStop && !slices.Contains(jobs, req.Job) {
		return window.Window{}, badField("job", "job %q: want %s", req.Job, strings.Join(jobs, ", "))
	}
	if req.CommandDone != nil && req.CommandDone.Command == "" {
		return window.Window{}, badField("command_done", "command_done: command is required")
	}
	return requestWindow(req)
}

// checkApplies refuses, for a strict operation, the fields that do not
// apply to it, naming them all in the message and the first one set in
// the error's Field.
func checkApplies(op state.Op, req Request) error {
	if !slices.Contains(strictOps, op) {
		return nil
	}
	var words []string
	first := ""
	for _, f := range requestFields {
		if f.ops == nil || slices.Contains(f.ops, op) {
			continue
		}
		words = append(words, f.word)
		if first == "" && f.set(req) {
			first = f.name
		}
	}
	if first == "" {
		return nil
	}
	list := strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
	return badField(first, "%s do not apply to a %s", list, op)
}

// requestWindow checks the request's window and returns it parsed (zero
// for none).
func requestWindow(req Request) (window.Window, error) {
	switch req.OutsideWindow {
	case "", OutsideSkip, OutsideWait:
	default:
		return window.Window{}, badField("outside_window", "outside_window %q: want skip or wait", req.OutsideWindow)
	}
	if req.Window == "" {
		if req.OutsideWindow != "" {
			return window.Window{}, badField("outside_window", "outside_window without a window")
		}
		return window.Window{}, nil
	}
	w, err := window.Parse(req.Window)
	if err != nil {
		return w, badField("window", "%v", err)
	}
	return w, nil
}

// FieldOf is the request field (its JSON key, e.g. "ttl_ms") that a
// CodeBadRequest error in err's chain is about; empty when none is named.
func FieldOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}

// badField is a bad request about field.
func badField(field, format string, a ...any) *Error {
	e := fail(CodeBadRequest, "", format, a...)
	e.Field = field
	return e
}
