// Package api is the agent's control API: JSON over HTTP on a unix socket,
// under /v1. Operations (maintenance enter and exit, restart) answer with
// a stream of JSON lines: progress events, then one result line. An
// operation goes on in the agent if the client goes away. What crosses
// the socket is package apitype's; the server converts the engine's
// values at its boundary (convert.go).
package api

// DefaultSocket is where the agent listens and the CLI dials.
const DefaultSocket = "/run/drainctl/drainctl.sock"

// Routes.
const (
	PathStatus  = "/v1/status"
	PathEnter   = "/v1/maintenance/enter"
	PathExit    = "/v1/maintenance/exit"
	PathRestart = "/v1/restart"
	PathReboot  = "/v1/maintenance/reboot"
	// The guard unit's (drainctl hook): the web server's unit stops,
	// starts.
	PathWebStop  = "/v1/web/stop"
	PathWebStart = "/v1/web/start"
	// drainctl's policy-rc.d (drainctl hook policy): may the package
	// manager restart the unit now? POST apitype.Request (unit, job: the
	// action), answer apitype.PolicyAnswer.
	PathWebPolicy = "/v1/web/policy"
	PathEvents    = "/v1/events"
	PathHistory   = "/v1/history" // ?n=N: the last N operations
)
