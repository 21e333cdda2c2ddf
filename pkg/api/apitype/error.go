package apitype

// Code classifies a failure; the CLI maps each to an exit code
// (docs/api.md lists what each leaves).
type Code string

// The codes.
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
	// CodePoolUnavailable: etcd did not answer; the server was not taken
	// out.
	CodePoolUnavailable Code = "pool-unavailable"
	// CodeOutsideWindow: the maintenance window is closed; nothing was
	// changed.
	CodeOutsideWindow Code = "outside-window"
	// CodeRebootFailed: the reboot command failed, or the host did not
	// reboot in time; the server stays out.
	CodeRebootFailed Code = "reboot-failed"
	// CodeStopping: the agent stopped in the middle of the operation; it
	// resumes at the agent's next start.
	CodeStopping Code = "agent-stopping"
	CodeInternal Code = "internal" // netfilter or the state file failed; the message says where
	// CodeForbidden: the caller's role may not use the route (the
	// message names the group to join); nothing was done. The socket's
	// own refusal (connect's EACCES) is the client's ErrPermission.
	CodeForbidden Code = "forbidden"
	// CodeOverloaded: the agent has too many connections or event
	// subscribers; nothing was done, try again later.
	CodeOverloaded Code = "overloaded"
)

// Error is a failure, in an operation's result line or as the body of
// an answer refused before anything started (ErrorBody). The client
// returns it as an error.
type Error struct {
	Code Code   `json:"code"`
	Msg  string `json:"message"`
	// Holder names who holds the server, for CodeBusy.
	Holder *Holder `json:"holder,omitempty"`
	// Phase is where the server was left.
	Phase Phase `json:"phase,omitempty"`
}

// Error is the message, for people.
func (e *Error) Error() string { return e.Msg }

// ErrorBody is the body of a non-streaming error answer (status 4xx or
// 5xx).
type ErrorBody struct {
	Error *Error `json:"error"`
}
