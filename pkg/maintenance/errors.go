package maintenance

import (
	"errors"
	"fmt"

	"github.com/drainctl/drainctl/pkg/state"
)

// Code classifies an operation's failure; the API sends it and the CLI
// maps it to an exit code.
type Code string

// The codes, as the API sends them; docs/api.md lists what each leaves.
const (
	CodeBusy       Code = "busy"              // another operation, or a held maintenance
	CodeDeadline   Code = "drain-deadline"    // the drain deadline passed and the policy said abort
	CodeConfigTest Code = "configtest-failed" // nothing was restarted
	CodeRestart    Code = "restart-failed"    // the restart command failed; the server stays out
	CodeNotReady   Code = "not-ready"         // the readiness check failed; the server stays out
	CodeCommand    Code = "command-failed"    // maintenance run's command failed; the server stays out
	CodeBadRequest Code = "bad-request"       // the request cannot be right: nothing was done
	// CodePoolBusy: no pool slot within the pool wait; nothing was done.
	CodePoolBusy Code = "pool-busy"
	// CodePoolUnavailable: etcd did not answer (down, unreachable, no
	// quorum), so the server was not taken out.
	CodePoolUnavailable Code = "pool-unavailable"
	// CodeOutsideWindow: the request's maintenance window is closed (and
	// it said skip), or closed while it waited for a slot; nothing was
	// changed.
	CodeOutsideWindow Code = "outside-window"
	// CodeRebootFailed: the reboot command failed, or the host did not
	// reboot within the reboot timeout; the server stays out, and
	// drainctl does not try again.
	CodeRebootFailed Code = "reboot-failed"
	// CodeStopping: the agent stopped in the middle of the operation (a
	// stop, a package upgrade, the host going down); it resumes at the
	// agent's next start.
	CodeStopping Code = "agent-stopping"
	CodeInternal Code = "internal" // netfilter or the state file failed; the message says where
)

// Error is an operation's failure.
type Error struct {
	Code Code   `json:"code"`
	Msg  string `json:"message"`
	// Holder names who holds the server, for CodeBusy.
	Holder *state.Holder `json:"holder,omitempty"`
	// Phase is where the server was left.
	Phase state.Phase `json:"phase,omitempty"`
	// Field is the request's field a CodeBadRequest is about (its JSON
	// key: "ttl_ms", "window"), for the CLI to name its flag; empty when
	// none is. Not sent: the message names it for people.
	Field string `json:"-"`
}

// Error is the message, for people.
func (e *Error) Error() string { return e.Msg }

// CodeOf returns the Code of an *Error in err's chain, or CodeInternal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

func fail(code Code, phase state.Phase, format string, a ...any) *Error {
	return &Error{Code: code, Phase: phase, Msg: fmt.Sprintf(format, a...)}
}
