// Package api is the agent's control API: JSON over HTTP on a unix socket,
// under /v1. Operations (maintenance enter and exit, restart) answer with
// a stream of JSON lines: progress events, then one result line. An
// operation goes on in the agent if the client goes away.
package api

import (
	"github.com/drainctl/drainctl/pkg/maintenance"
)

// DefaultSocket is where the agent listens and the CLI dials.
const DefaultSocket = "/run/drainctl/drainctl.sock"

// Routes.
const (
	PathStatus  = "/v1/status"
	PathEnter   = "/v1/maintenance/enter"
	PathExit    = "/v1/maintenance/exit"
	PathRestart = "/v1/restart"
	PathReboot  = "/v1/maintenance/reboot"
	PathEvents  = "/v1/events"
	PathHistory = "/v1/history" // ?n=N: the last N operations
)

// Line is one line of an operation's answer: an event, or the final
// result with its error, if any.
type Line struct {
	Event  *maintenance.Event  `json:"event,omitempty"`
	Result *maintenance.Result `json:"result,omitempty"`
	Error  *maintenance.Error  `json:"error,omitempty"`
}

// ErrorBody is the body of a non-streaming error answer.
type ErrorBody struct {
	Error *maintenance.Error `json:"error"`
}
