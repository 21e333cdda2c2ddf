// Package apitype is the agent's API on the wire: every value that crosses
// the unix socket (docs/api.md), as JSON, in both directions. The server
// (pkg/api) converts the engine's values to these at its boundary, and the
// client returns these; the engine's own structs are free to change
// without changing the API, and a change to the API is a change to this
// package.
//
// It imports the standard library and pkg/jsonms (the API's rule for
// durations: whole milliseconds in _ms fields) and nothing of drainctl's
// runtime, so that any client may import it alone. The types carry no
// behaviour beyond their JSON and the Error method of Error: the rules
// that sum their facts up stay in their packages (pkg/api's ForwardState,
// PoolSize and CommandOutcome apply them).
//
// The encoding is the API's, byte for byte: field order, omitempty and
// omitzero, null for empty lists where the API has always sent null, and
// requests that refuse unknown fields however they are decoded.
// pkg/api's tests pin each type's bytes against docs/api.md and against
// the engine's values they are converted from.
package apitype
