package apitype

import "time"

// HistoryEntry is one operation of GET /v1/history (drainctl history
// --json).
type HistoryEntry struct {
	Op     string    `json:"op"` // an Op, or pool-release, pool-pause, pool-resume, pool-set, pool-seed, expire
	Who    string    `json:"who"`
	Reason string    `json:"reason,omitempty"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	// DurationMS is End - Start in milliseconds (an integer field of its
	// own since the history's first version).
	DurationMS int64 `json:"duration_ms"`
	// Outcome is "ok", or the failure's Code.
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
	// Phase is where the operation left the server.
	Phase  string         `json:"phase"`
	Phases []HistoryPhase `json:"phases,omitempty"`
	// The web server commands' exit statuses, when they ran.
	ConfigTestExit *int `json:"configtest_exit,omitempty"`
	RestartExit    *int `json:"restart_exit,omitempty"`
	// Command is a `maintenance run`'s command, with its exit status on
	// its exit (-1: killed by a signal) and the end of its output.
	Command       string `json:"command,omitempty"`
	CommandExit   *int   `json:"command_exit,omitempty"`
	CommandOutput string `json:"command_output,omitempty"`
	// OutOfRotation and BackInRotation say how many load balancers
	// confirmed the withdraw and the restore ("2/2"; empty when not
	// watched or not done).
	OutOfRotation  string `json:"out_of_rotation,omitempty"`
	BackInRotation string `json:"back_in_rotation,omitempty"`
	// Warnings are the operation's.
	Warnings []string `json:"warnings,omitempty"`
	// OverBudget: the server went out without a pool slot.
	OverBudget bool `json:"over_budget,omitempty"`
	// Action is what a restart owed to the package manager did to the
	// web server, and why ("reload: …", "upgrade: …", "restart: …").
	Action string `json:"action,omitempty"`
}

// HistoryPhase is one phase of an operation and how long it lasted.
type HistoryPhase struct {
	Phase      string    `json:"phase"`
	Start      time.Time `json:"start"`
	DurationMS int64     `json:"duration_ms"`
}
