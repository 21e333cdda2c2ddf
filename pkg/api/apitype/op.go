package apitype

import "time"

// Op names an operation, as the API, the state file and the history do.
type Op string

// The operations.
const (
	OpNone    Op = ""        // none running: the server is in service or held
	OpEnter   Op = "enter"   // maintenance enter: withdraw, drain, hold
	OpExit    Op = "exit"    // maintenance exit: ready check, restore
	OpRestart Op = "restart" // the full cycle
	OpReboot  Op = "reboot"  // withdraw, drain, reboot; the next boot restores
	// The web server's unit stopped or started by someone else, told by
	// the guard unit (drainctl hook): out before it stops, back after it
	// starts.
	OpWebStop  Op = "web-stop"
	OpWebStart Op = "web-start"
)

// Phase is where the server is in the maintenance cycle.
type Phase string

// The phases. A restart goes through withdrawing, draining, configtest,
// restarting, ready-check and restoring back to in-service; maintenance
// enter through withdrawing and draining to held; exit from there
// through ready-check and restoring; a reboot through withdrawing and
// draining to rebooting, and after the boot ready-check and restoring.
const (
	PhaseInService   Phase = "in-service"  // forward restored, taking new users
	PhaseWithdrawing Phase = "withdrawing" // refusing new connections from now
	PhaseDraining    Phase = "draining"    // waiting for the server to be quiet
	PhaseHeld        Phase = "held"        // out of rotation until maintenance exit
	PhaseConfigTest  Phase = "configtest"  // web server config test running
	PhaseRestarting  Phase = "restarting"  // graceful restart issued
	PhaseReadyCheck  Phase = "ready-check" // checking the real service port
	PhaseRestoring   Phase = "restoring"   // putting the forward back
	PhaseRebooting   Phase = "rebooting"   // the reboot command ran; the next boot finishes
)

// Outside-window choices of Request.OutsideWindow.
const (
	OutsideSkip = "skip" // change nothing: outside-window
	OutsideWait = "wait" // wait for the window to open
)

// Request is the body of an operation's POST (enter, exit, restart,
// reboot). Unknown fields are refused, whichever decoder reads it: a
// misspelt "ttl" must not become a hold without an end. Durations are
// whole milliseconds, last, where the API has always had them.
type Request struct {
	// Who is a label of the caller (e.g. "via cron"); the agent adds the
	// caller's user and pid from the socket.
	Who    string `json:"who"`
	Reason string `json:"reason,omitempty"`
	// OnDeadline (proceed or abort) and Deadline override the agent's
	// drain policy, when set.
	OnDeadline string `json:"on_deadline,omitempty"`
	// Command (enter) makes the hold a `maintenance run`'s; Log names
	// where the command's output is kept.
	Command string `json:"command,omitempty"`
	Log     string `json:"log,omitempty"`
	// CommandDone (exit) ends a run's hold with its command's outcome.
	CommandDone *CommandDone `json:"command_done,omitempty"`
	// Force (exit) ends a hold that a running command owns.
	Force bool `json:"force,omitempty"`
	// IfRequired (reboot): only if the host says it needs a reboot.
	IfRequired bool `json:"if_required,omitempty"`
	// Window is when the server may go out (e.g. "Mon-Fri 02:00-05:00
	// Europe/Berlin"; empty: any time); OutsideWindow is OutsideSkip or
	// OutsideWait.
	Window        string `json:"window,omitempty"`
	OutsideWindow string `json:"outside_window,omitempty"`
	// TTL (enter) ends the hold by itself.
	TTL time.Duration `json:"ttl_ms,omitempty"`
	// Deadline overrides the drain policy's deadline.
	Deadline time.Duration `json:"deadline_ms,omitempty"`
	// PoolWait overrides how long to wait for a pool slot.
	PoolWait time.Duration `json:"pool_wait_ms,omitempty"`
	// Unit and Job (web-stop, web-start) are the web server's unit and
	// systemd's job on it ("restart", "stop"; "shutdown" when the host
	// goes down).
	Unit string `json:"unit,omitempty"`
	Job  string `json:"job,omitempty"`
}

// CommandDone is a `maintenance run` command's outcome, sent with exit.
type CommandDone struct {
	Command  string `json:"command"`
	ExitCode int    `json:"exit_code"` // -1: killed by a signal
	Signal   string `json:"signal,omitempty"`
	// Output is the end of what it printed (the whole is in the log).
	Output string `json:"output,omitempty"`
	// Hold keeps the server out of rotation instead of restoring it.
	Hold bool `json:"hold,omitempty"`
}

// Line is one line of an operation's answer, and of GET /v1/events: an
// event, or the final result with its error, if any.
type Line struct {
	Event  *Event  `json:"event,omitempty"`
	Result *Result `json:"result,omitempty"`
	Error  *Error  `json:"error,omitempty"`
}

// Event is progress of the agent's engine. Op is the operation it
// belongs to, its last event included.
type Event struct {
	Time    time.Time   `json:"time"`
	Op      Op          `json:"op,omitempty"`
	Phase   Phase       `json:"phase"`
	Message string      `json:"message,omitempty"`
	Drain   *DrainEvent `json:"drain,omitempty"`
	Output  *Output     `json:"output,omitempty"`
}

// Result is what an operation did.
type Result struct {
	Op         Op           `json:"op"`
	Phase      Phase        `json:"phase"` // where the server is now
	Holder     *Holder      `json:"holder,omitempty"`
	Note       string       `json:"note,omitempty"`
	Drain      *DrainResult `json:"drain,omitempty"`
	ConfigTest *Output      `json:"configtest,omitempty"`
	Restart    *Output      `json:"restart,omitempty"`
	// Reboot is the reboot command's output, when it ran and returned.
	Reboot *Output `json:"reboot,omitempty"`
	// Out and Back say which load balancers confirmed the withdraw and
	// the restore (absent: not watched, or not done).
	Out  *Confirmation `json:"out_of_rotation,omitempty"`
	Back *Confirmation `json:"back_in_rotation,omitempty"`
	// Warnings are what the operator must know although the operation
	// succeeded.
	Warnings []string `json:"warnings,omitempty"`
	// Elapsed is the operation's duration: 0 when it failed, was refused
	// or had nothing to do.
	Elapsed time.Duration `json:"elapsed_ms"`
}

// Output is a command's end: the config test's, the restart's, the
// reboot's.
type Output struct {
	Command  string        `json:"command"`
	Output   string        `json:"output"` // stdout and stderr, the last 16 KiB
	ExitCode int           `json:"exit_code"`
	Duration time.Duration `json:"duration_ms"` // how long it ran
}
