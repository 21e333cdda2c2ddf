package apitype

import "time"

// PoolRequest is the body of the pool's POST routes (release, forget, pause,
// resume, set). Unknown fields are refused.
type PoolRequest struct {
	ID     string `json:"id,omitempty"` // release: whose slot; forget: which host
	Force  bool   `json:"force,omitempty"`
	Reason string `json:"reason,omitempty"` // pause: why
	Who    string `json:"who,omitempty"`    // a label; the server adds the caller
	// MaxUnavailable is set's new limit for the pool: "N" or "P%".
	MaxUnavailable string `json:"max_unavailable,omitempty"`
}

// PoolAnswer is the answer of the pool's POST routes.
type PoolAnswer struct {
	Note string `json:"note"`
}

// PoolStatus is GET /v1/pool (drainctl pool status): the pool as etcd
// has it, with this host's view of it.
type PoolStatus struct {
	Name    string       `json:"name"`
	Members []PoolMember `json:"members"`
	Holders []Claim      `json:"holders"`
	Waiters []Waiter     `json:"waiters"`
	Paused  *Pause       `json:"paused,omitempty"`
	// Malformed are the keys under the pool's prefix drainctl cannot
	// read, and what it made of each (a held slot or a pause still
	// counts; anything else is left aside).
	Malformed []MalformedKey `json:"malformed,omitempty"`
	// Settings are the pool's own (absent until the first agent seeds
	// them, or when unreadable); SettingsError says why they cannot be
	// used, and then no slot is granted.
	Settings      *PoolSettings `json:"settings,omitempty"`
	SettingsError string        `json:"settings_error,omitempty"`
	// Unavailable is every member counted against the budget: the
	// holders, then the members gone or out of service, each once.
	Unavailable []Unavailable `json:"unavailable"`
	// ID is this host in the pool. MaxUnavailable is the pool's limit,
	// which decides ("" while it has no readable settings), and Allowed
	// the slots it allows for the pool's size now.
	// ConfiguredMaxUnavailable is this host's file's: it only seeds a
	// pool that has no settings, and is otherwise not obeyed.
	ID                       string `json:"id"`
	MaxUnavailable           string `json:"max_unavailable"`
	ConfiguredMaxUnavailable string `json:"configured_max_unavailable"`
	Allowed                  int    `json:"allowed"`
	// Slot is the slot this host's state says it holds, with a pending
	// release.
	Slot *Slot `json:"slot,omitempty"`
}

// PoolSettings are the pool's own settings. Its fields are
// pool.Settings'.
type PoolSettings struct {
	// Version is the settings' layout: a drainctl that does not know it
	// grants nothing.
	Version        int    `json:"version"`
	MaxUnavailable string `json:"max_unavailable"`
	// By is who set them ("seeded by ID": the agent that made them from
	// its configuration).
	By    string    `json:"by,omitempty"`
	Since time.Time `json:"since"`
}

// MalformedKey is a key of the pool drainctl cannot read. Its fields
// are pool.Malformed's.
type MalformedKey struct {
	Key string `json:"key"`
	Why string `json:"why"`
}

// PoolMember is one host of the pool. Its fields are pool.Member's.
type PoolMember struct {
	ID string `json:"id"`
	// Live: its agent's lease is current.
	Live bool `json:"live"`
	// LastSeen is when it joined, or, once gone, when it left.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Health is what its agent last said of its server: absent while it
	// is in service (an agent keeps no record then, and an older
	// drainctl says nothing).
	Health *Health `json:"health,omitempty"`
}

// Health is a member's account of its server. Its fields are
// pool.Health's.
type Health struct {
	// InService: its web server answers, and the load balancers that
	// check it have their checks accepted.
	InService bool      `json:"in_service"`
	Why       string    `json:"why,omitempty"`
	Since     time.Time `json:"since"`
	// Gone: a record of its departure (its agent's lease ended at
	// Since), written by the member before it in the pool.
	Gone bool `json:"gone,omitempty"`
}

// Unavailable is one member counted against the pool's budget. Its
// fields are pool.Out's.
type Unavailable struct {
	ID    string    `json:"id"`
	Why   string    `json:"why"`
	Since time.Time `json:"since,omitzero"`
	// Slot: it holds a slot.
	Slot bool `json:"slot,omitempty"`
}

// Claim is a held slot: the host, the operation, who asked, and when.
// Its fields are pool.Claim's.
type Claim struct {
	ID     string    `json:"id"`
	Op     string    `json:"op"`
	Reason string    `json:"reason,omitempty"`
	By     string    `json:"by,omitempty"`
	Since  time.Time `json:"since"`
}

// Waiter is a host waiting for a slot, in the order they are served.
type Waiter struct {
	ID    string    `json:"id"`
	Op    string    `json:"op,omitempty"`
	Since time.Time `json:"since"`
}

// Pause is the record of a paused pool.
type Pause struct {
	By     string    `json:"by,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
}
