package apitype

import (
	"net/netip"
	"time"
)

// Status is GET /v1/status (and drainctl status --json): the agent's
// state, its forwards and the load balancers' view.
type Status struct {
	State     State           `json:"state"`
	Running   bool            `json:"running"` // an operation is in progress
	Forwards  []ForwardStatus `json:"forwards"`
	Backend   string          `json:"backend"`
	LastDrain *DrainEvent     `json:"last_drain,omitempty"`
	// HealthChecks is the load balancers' view (absent: not watched).
	HealthChecks *HealthChecks `json:"health_checks,omitempty"`
	// RunnerGone: the hold is a maintenance run's, and the drainctl
	// process running its command is gone: nobody will end the hold.
	RunnerGone bool `json:"runner_gone,omitempty"`
	// Pool is the pool this host is in (absent: none); the slot it holds
	// is the state's.
	Pool *StatusPool `json:"pool,omitempty"`
}

// State is the agent's maintenance state, as its state file has it.
type State struct {
	Version int     `json:"version"`
	Phase   Phase   `json:"phase"`
	Op      Op      `json:"op,omitempty"` // the operation in progress, if any
	Holder  *Holder `json:"holder,omitempty"`
	// Backend is the forward backend that holds drainctl's rules
	// (nftables, iptables-nft, iptables-legacy).
	Backend string `json:"backend,omitempty"`
	// Slot is the pool slot held, if any.
	Slot *Slot `json:"slot,omitempty"`
	// Reboot is set while a reboot drainctl started is in progress.
	Reboot *Reboot `json:"reboot,omitempty"`
	// Owed is a web server unit's restart that the package manager asked
	// for and drainctl's policy-rc.d took over: once the package manager
	// is done (in a pool: and a slot comes) the agent reloads, upgrades
	// or restarts the unit, drained.
	Owed *Owed `json:"owed,omitempty"`
	// LastError is the failure that left the server where it is, if any.
	LastError string       `json:"last_error,omitempty"`
	History   []Transition `json:"history,omitempty"`
}

// Holder records who took the server out, when and why.
type Holder struct {
	Who    string    `json:"who"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
	// Until ends a held maintenance by itself (TTL); absent: never.
	Until time.Time `json:"until,omitzero"`
	// Command is set while `maintenance run` runs it, with Log where its
	// output goes.
	Command string `json:"command,omitempty"`
	Log     string `json:"log,omitempty"`
	// RunnerPID is the drainctl process running that command.
	RunnerPID int `json:"runner_pid,omitempty"`
	// Unit is set when the hold is a web server unit's stop: the unit's
	// next start ends it.
	Unit string `json:"unit,omitempty"`
}

// Owed is a restart deferred by drainctl's policy-rc.d.
type Owed struct {
	Unit   string    `json:"unit"`             // apache2.service
	Action string    `json:"action"`           // what the package manager asked: restart, try-restart, force-reload
	Reason string    `json:"reason,omitempty"` // who asked ("dpkg: apache2 OLD → NEW")
	Since  time.Time `json:"since"`
}

// PolicyAnswer is the agent's answer to policy-rc.d (POST /v1/web/policy).
type PolicyAnswer struct {
	// Defer: policy-rc.d exits 101, the package manager skips the
	// action, and the agent owes the restart (Owed).
	Defer bool   `json:"defer"`
	Note  string `json:"note"`
	Owed  *Owed  `json:"owed,omitempty"`
}

// Slot is the pool slot this host holds.
type Slot struct {
	Pool  string    `json:"pool"`
	Op    Op        `json:"op"`
	Since time.Time `json:"since"`
	// Release: back in rotation, the slot is being given back (etcd has
	// not answered yet; the agent retries).
	Release bool `json:"release_pending,omitempty"`
}

// Reboot is a reboot drainctl started, from the reboot command to the end
// of the next boot's restore.
type Reboot struct {
	BootID  string    `json:"boot_id"` // the boot it leaves
	Since   time.Time `json:"since"`   // when the reboot command ran
	Command string    `json:"command"`
	Who     string    `json:"who"`
	Reason  string    `json:"reason,omitempty"`
	// Start and Marks are the operation's start and its phases so far.
	Start time.Time `json:"start"`
	Marks []Mark    `json:"marks,omitempty"`
	// OutOfRotation is how many load balancers confirmed the withdraw
	// ("1/1").
	OutOfRotation string `json:"out_of_rotation,omitempty"`
}

// Mark is when an operation entered a phase.
type Mark struct {
	Phase string    `json:"phase"`
	Start time.Time `json:"start"`
}

// Transition is one line of the state's history.
type Transition struct {
	Time  time.Time `json:"time"`
	Op    Op        `json:"op,omitempty"`
	Phase Phase     `json:"phase"`
	Note  string    `json:"note,omitempty"`
}

// Forward is a forward port and the service port it redirects to.
type Forward struct {
	From uint16 `json:"from"`
	To   uint16 `json:"to"`
}

// ForwardStatus is what the kernel says of one forward.
type ForwardStatus struct {
	Forward Forward `json:"forward"`
	// Applied: every REDIRECT rule is installed; Withdrawn: new
	// connections to the forward port are refused.
	Applied   bool `json:"applied"`
	Withdrawn bool `json:"withdrawn"`
	// Redirected and Refused are the kernel's packet counters of the
	// rules installed now.
	Redirected uint64 `json:"redirected_packets"`
	Refused    uint64 `json:"refused_packets"`
	// Held: new connections to the service port from outside are held
	// (dropped while nothing listens) through a web server's restart.
	Held bool `json:"held,omitempty"`
	// HeldAll: they are held whatever listens, through the restart of a
	// unit behind the web server (php-fpm).
	HeldAll bool `json:"held_all,omitempty"`
	// Rules is how many rules drainctl has installed, Want how many a
	// complete forward has.
	Rules int `json:"rules"`
	Want  int `json:"want_rules"`
	// Problems say why the rules may not work as installed.
	Problems []string `json:"problems,omitempty"`
}

// HealthChecks lists the load balancers that health-check the forward
// ports, as the host sees them.
type HealthChecks struct {
	Ports         []uint16 `json:"ports"`
	LoadBalancers []LB     `json:"load_balancers"`
}

// LB is one load balancer's health checks of one forward port. Its
// fields are lbview.LB's, in its order, so that a client may convert
// it to that type for its descriptions.
type LB struct {
	Addr netip.Addr `json:"address"`
	Port uint16     `json:"port"` // the forward port it checks
	// Local is this host's address its checks go to (the last seen).
	Local    netip.Addr    `json:"local_address,omitzero"`
	Checks   uint64        `json:"checks"`
	Accepted uint64        `json:"accepted"`
	Refused  uint64        `json:"refused"`
	Interval time.Duration `json:"interval_ms"` // 0: not known yet
	First    time.Time     `json:"first"`
	Last     time.Time     `json:"last"`
	// Active: it was checking when listed.
	Active bool `json:"active"`
}

// StatusPool names this host's pool.
type StatusPool struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	// MaxUnavailable is the pool's limit as the agent last read it ("":
	// not read yet); ConfiguredMaxUnavailable this host's file's, which
	// only seeds a pool that has none and is otherwise not obeyed.
	MaxUnavailable           string `json:"max_unavailable"`
	ConfiguredMaxUnavailable string `json:"configured_max_unavailable"`
}
