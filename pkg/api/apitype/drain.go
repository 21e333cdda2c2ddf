package apitype

import (
	"net/netip"
	"time"
)

// DrainEvent is the drain's progress: the connections still open to the
// service port. Path values are "forward", "direct" and "unknown".
type DrainEvent struct {
	Time time.Time `json:"time"`
	// Active counts the connections not idle, ByPath by how they came
	// and ByPeer by peer (null when none).
	Active int            `json:"active"`
	ByPath map[string]int `json:"by_path"`
	ByPeer []PeerCount    `json:"by_peer"`
	// Oldest is the longest-open active connection.
	Oldest  *ConnSummary `json:"oldest,omitempty"`
	Idle    int          `json:"idle"`
	New     int          `json:"new"`
	Ignored int          `json:"ignored"`
	// Outcome is set on the last event: drained, deadline-proceed,
	// deadline-abort, in-flight-done or grace-proceed.
	Outcome    string        `json:"outcome,omitempty"`
	Elapsed    time.Duration `json:"elapsed_ms"`
	QuietFor   time.Duration `json:"quiet_for_ms"`
	DeadlineIn time.Duration `json:"deadline_in_ms"`
}

// PeerCount is how many active connections one peer has.
type PeerCount struct {
	Peer  netip.Addr `json:"peer"`
	Count int        `json:"count"`
}

// ConnSummary is one connection, as the drain shows its oldest.
type ConnSummary struct {
	Peer netip.AddrPort `json:"peer"`
	Path string         `json:"path"` // forward, direct or unknown
	Age  time.Duration  `json:"age_ms"`
	Idle time.Duration  `json:"idle_ms"`
}

// DrainResult is how a drain ended.
type DrainResult struct {
	Outcome   string        `json:"outcome"` // as DrainEvent.Outcome
	Remaining int           `json:"remaining"`
	Last      DrainEvent    `json:"last"`
	Elapsed   time.Duration `json:"elapsed_ms"`
}

// Confirmation says which load balancers confirmed a change: Want is
// "out" (the withdraw) or "back" (the restore).
type Confirmation struct {
	Want          string        `json:"want"`
	LoadBalancers []Confirmed   `json:"load_balancers"`
	Elapsed       time.Duration `json:"elapsed_ms"`
}

// Confirmed is one load balancer's confirmation.
type Confirmed struct {
	Addr      netip.Addr `json:"address"`
	Port      uint16     `json:"port"`
	Confirmed bool       `json:"confirmed"`
	// Need is how many checks in a row confirm; Answers how many came.
	Need    int `json:"need"`
	Answers int `json:"answers"`
	// Silent: it stopped checking.
	Silent bool `json:"silent,omitempty"`
	// After is when it confirmed, from the change.
	After time.Duration `json:"after_ms,omitempty"`
}
