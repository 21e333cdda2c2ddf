package maintenance

// The engine's dependencies and the values its operations take and give:
// requests, progress events, results and the status (their JSON is the
// API's, docs/api.md).

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/history"
	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/runner"
	"github.com/drainctl/drainctl/pkg/state"
)

// Runner runs the web server's config test and graceful restart.
type Runner interface {
	ConfigTest(ctx context.Context) (runner.Output, error)
	Restart(ctx context.Context) (runner.Output, error)
}

// Readiness waits until the web server answers on its real port.
type Readiness interface {
	Wait(ctx context.Context) error
}

// Rotation is the load balancers' view of this host (lbview.Watch): who
// health-checks the forward ports, and when they confirm a withdraw or a
// restore.
type Rotation interface {
	Ports() []uint16 // where the checks are watched
	LoadBalancers() []lbview.LB
	Active(t time.Time) []lbview.LB
	Wait(ctx context.Context, w lbview.Want, since time.Time) lbview.Confirmation
}

// Boot is what the host says of its boots (bootinfo, in the agent).
type Boot interface {
	// ID is this boot's id: another after every reboot.
	ID() (string, error)
	// Started is when this boot began (its init started).
	Started() (time.Time, error)
	// RebootRequired says whether the host needs a reboot, and why (or
	// what was checked when it does not).
	RebootRequired(ctx context.Context) (required bool, why string, err error)
}

// Rebooter runs the host's reboot command.
type Rebooter interface {
	Reboot(ctx context.Context) (runner.Output, error)
}

// Store persists the state (state.Store does).
type Store interface {
	Load() (state.State, error)
	Save(state.State) error
}

// Deps are what the engine drives.
type Deps struct {
	Forwarder forward.Forwarder
	Forwards  []forward.Forward
	Table     drain.Lister
	Policy    drain.Policy
	Runner    Runner
	Ready     Readiness
	Store     Store
	// Rotation, when set, replaces the drain's fixed min-wait by the load
	// balancers' confirmation, and confirms the restore; nil waits
	// min-wait and confirms nothing.
	Rotation Rotation
	// Slots is the pool's semaphore: every operation that takes the
	// server out holds a slot first. nil: the host decides alone.
	Slots Slots
	// Pool is the same pool seen by `drainctl pool` (nil: no pool).
	Pool PoolAdmin
	// PoolWait is how long an operation waits for a slot unless its
	// request says (0: DefaultPoolWait).
	PoolWait time.Duration
	// Limits are the most a request may ask (limits.go); zero fields are
	// their defaults.
	Limits Limits
	// Boot and Rebooter make reboots possible (nil: a reboot is refused).
	// The boot id must change within RebootTimeout of the reboot command
	// (0: DefaultRebootTimeout), else the server is held. BootReady is the
	// readiness check after the boot, with its longer timeout (nil: Ready).
	Boot          Boot
	Rebooter      Rebooter
	RebootTimeout time.Duration
	BootReady     Readiness
	// WebWait bounds how long a web server unit's stop (WebStop) waits
	// for a pool slot, and then for the drain, before it goes ahead
	// (0: DefaultWebWait).
	WebWait time.Duration
	// UnitRestart restarts a web server's unit through systemd, for a
	// restart owed (policy.go); nil: systemctl restart UNIT.
	UnitRestart func(ctx context.Context, unit string) (runner.Output, error)
	// UnitUpgrade runs a unit's binary upgrade (nginx's), for a restart
	// owed whose binary was replaced (cheapest.go); nil: its init
	// script's upgrade.
	UnitUpgrade func(ctx context.Context, unit string) (runner.Output, error)
	// Replaced lists the files replaced under a unit's running main
	// process (its binary, libraries): none means a graceful reload
	// loads what a package installed. nil: read from /proc (pkg/stale).
	Replaced func(ctx context.Context, unit string) ([]string, error)
	// WebUnit is the systemd unit of the web server whose config test
	// and reload Runner runs (apache2.service): a restart owed of it can
	// be that reload. Empty: never (a custom web server).
	WebUnit string
	// PackagesBusy says whether the package manager runs (dpkg's locks
	// held): a restart owed waits for it to end. nil: dpkg's locks.
	PackagesBusy func() bool
	// History records every operation; nil records nothing.
	History History
	// Observer is told of every operation that ran (the metrics); nil for
	// none.
	Observer interface{ Observe(history.Entry) }
	Clock    drain.Clock // nil: the wall clock
	Log      *slog.Logger
}

// History keeps the record of operations (history.Store does).
type History interface {
	Append(history.Entry) error
	// List returns the last n entries (all with n <= 0), oldest first.
	List(n int) ([]history.Entry, error)
}

// Request is one operation's request. Its JSON gives the durations last
// (where the API always had them), in milliseconds, and refuses unknown
// fields (json.go).
type Request struct {
	Who    string `json:"who"`
	Reason string `json:"reason,omitempty"`
	// OnDeadline and Deadline override the drain policy's, when set.
	OnDeadline drain.OnDeadline `json:"on_deadline,omitempty"`
	// Command (enter) makes the hold a `maintenance run`'s: until the run
	// says the command ended, enter and exit by others are busy. Log names
	// where the command's output is kept.
	Command string `json:"command,omitempty"`
	Log     string `json:"log,omitempty"`
	// CommandDone (exit) is how a run ends its hold: with the command's
	// outcome, then restoring the forward, or (Hold) keeping the server out.
	CommandDone *CommandDone `json:"command_done,omitempty"`
	// Force (exit) ends a hold that a running command owns.
	Force bool `json:"force,omitempty"`
	// Done, if set, is closed when the caller gives up (the API server
	// sets it to the request's context): an operation still waiting for
	// a pool slot then leaves the line. Once the slot is taken the
	// operation goes on without its caller, as always.
	Done <-chan struct{} `json:"-"`
	// IfRequired (reboot): only if the host says it needs a reboot;
	// otherwise nothing is touched.
	IfRequired bool `json:"if_required,omitempty"`
	// Window (the operations that take the server out) is when it may go
	// out (window.Parse's form, e.g. "Mon-Fri 02:00-05:00 Europe/Berlin");
	// empty: any time. OutsideWindow says what to do outside it: skip
	// (the default: nothing is changed, outside-window) or wait for it to
	// open.
	Window        string `json:"window,omitempty"`
	OutsideWindow string `json:"outside_window,omitempty"`
	// PID is the caller's process, from the kernel (the API server sets
	// it from the socket's peer credentials; a client cannot).
	PID int `json:"-"`
	// Root says the caller is root, from the kernel (the API server sets
	// it from the socket's peer credentials; a client cannot): only root
	// may ask for a drain policy looser than the agent's (limits.go).
	Root bool `json:"-"`
	// TTL (enter) ends the hold by itself.
	TTL time.Duration `json:"ttl_ms,omitempty"`
	// Deadline overrides the drain policy's deadline, as OnDeadline its
	// choice at the deadline.
	Deadline time.Duration `json:"deadline_ms,omitempty"`
	// PoolWait overrides how long to wait for a pool slot.
	PoolWait time.Duration `json:"pool_wait_ms,omitempty"`
	// Unit and Job (web-stop, web-start) are the web server's unit that
	// systemd stops or starts, and systemd's job on it: JobRestart (the
	// unit starts again at once: new connections are held through the
	// listener's gap), JobStop (held at most HoldStopMax), or JobShutdown
	// (the host goes down).
	Unit string `json:"unit,omitempty"`
	Job  string `json:"job,omitempty"`
}

// CommandDone is a `maintenance run` command's outcome.
type CommandDone struct {
	Command  string `json:"command"`
	ExitCode int    `json:"exit_code"` // -1: killed by a signal
	Signal   string `json:"signal,omitempty"`
	// Output is the end of what it printed (the whole is in the log).
	Output string `json:"output,omitempty"`
	// Hold keeps the server out of rotation instead of restoring it.
	Hold bool `json:"hold,omitempty"`
}

// Outcome says how the command ended, for people: "succeeded", "failed
// with exit status N", "was killed by SIGNAL".
func (d *CommandDone) Outcome() string {
	switch {
	case d.Signal != "":
		return "was killed by " + d.Signal
	case d.ExitCode != 0:
		return fmt.Sprintf("failed with exit status %d", d.ExitCode)
	}
	return "succeeded"
}

// Event is progress of the engine, for live displays and /v1/events. Op
// is the operation it belongs to, its last event included (while the
// state file's op is none by then).
type Event struct {
	Time    time.Time      `json:"time"`
	Op      state.Op       `json:"op,omitempty"`
	Phase   state.Phase    `json:"phase"`
	Message string         `json:"message,omitempty"`
	Drain   *drain.Event   `json:"drain,omitempty"`
	Output  *runner.Output `json:"output,omitempty"`
}

// Result is what an operation did.
type Result struct {
	Op         state.Op       `json:"op"`
	Phase      state.Phase    `json:"phase"` // where the server is now
	Holder     *state.Holder  `json:"holder,omitempty"`
	Note       string         `json:"note,omitempty"`
	Drain      *drain.Result  `json:"drain,omitempty"`
	ConfigTest *runner.Output `json:"configtest,omitempty"`
	Restart    *runner.Output `json:"restart,omitempty"`
	// Reboot is the reboot command's output, when it ran and returned.
	Reboot *runner.Output `json:"reboot,omitempty"`
	// Out and Back say which load balancers confirmed the withdraw and
	// the restore (nil: not watched, or not done).
	Out  *lbview.Confirmation `json:"out_of_rotation,omitempty"`
	Back *lbview.Confirmation `json:"back_in_rotation,omitempty"`
	// Warnings are what the operator must know although the operation
	// succeeded: no load balancer confirmed the change, or some did not.
	Warnings []string `json:"warnings,omitempty"`
	// Elapsed is the operation's duration: 0 when it failed, was refused
	// or had nothing to do.
	Elapsed time.Duration `json:"elapsed_ms"`
}

// Status is the engine's state for `drainctl status`.
type Status struct {
	State     state.State      `json:"state"`
	Running   bool             `json:"running"` // an operation is in progress
	Forwards  []forward.Status `json:"forwards"`
	Backend   string           `json:"backend"`
	LastDrain *drain.Event     `json:"last_drain,omitempty"`
	// HealthChecks is the load balancers' view (absent: not watched).
	HealthChecks *HealthChecks `json:"health_checks,omitempty"`
	// RunnerGone: the hold is a maintenance run's, and the drainctl
	// process running its command is gone (killed, the host rebooted):
	// nobody will end the hold; the command's outcome is unknown.
	RunnerGone bool `json:"runner_gone,omitempty"`
	// Pool is the pool this host is in (absent: none, it decides alone);
	// the slot it holds is the state's.
	Pool *StatusPool `json:"pool,omitempty"`
}

// StatusPool names this host's pool.
type StatusPool struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	// MaxUnavailable is the pool's limit as the agent last read it ("":
	// not read yet); ConfiguredMaxUnavailable this host's file's, which
	// only seeds a pool that has none.
	MaxUnavailable           string `json:"max_unavailable"`
	ConfiguredMaxUnavailable string `json:"configured_max_unavailable"`
}

// HealthChecks lists the load balancers that health-check the forward
// ports, as the host sees them.
type HealthChecks struct {
	Ports         []uint16    `json:"ports"`
	LoadBalancers []lbview.LB `json:"load_balancers"`
}
