// Package state keeps the agent's maintenance state in a file that
// survives crashes: every change is written to a new file, fsync'd, and
// renamed over the old one (then the directory is fsync'd), so after a
// crash the file holds either the old state or the new one, never a mix.
// The agent writes each transition before it acts on it.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/atomicfile"
)

// Phase is where the server is in the maintenance cycle.
type Phase string

// The phases, as the state file, status and the history name them. A
// restart goes through Withdrawing, Draining, ConfigTest, Restarting,
// ReadyCheck and Restoring back to InService; maintenance enter goes
// through Withdrawing and Draining to Held, and maintenance exit from
// there through ReadyCheck and Restoring. A reboot goes through
// Withdrawing and Draining to Rebooting, and after the boot through
// ReadyCheck and Restoring.
const (
	InService   Phase = "in-service"  // forward restored, taking new users
	Withdrawing Phase = "withdrawing" // refusing new connections from now
	Draining    Phase = "draining"    // waiting for the server to be quiet
	Held        Phase = "held"        // out of rotation until maintenance exit
	ConfigTest  Phase = "configtest"  // web server config test running
	Restarting  Phase = "restarting"  // graceful restart issued
	ReadyCheck  Phase = "ready-check" // checking the real service port
	Restoring   Phase = "restoring"   // putting the forward back
	Rebooting   Phase = "rebooting"   // the reboot command ran; the next boot finishes
)

// Op is the operation in progress, if any.
type Op string

// The operations, as the state file and the API name them.
const (
	OpNone    Op = ""        // none running: the server is in service or held
	OpEnter   Op = "enter"   // maintenance enter: withdraw, drain, hold
	OpExit    Op = "exit"    // maintenance exit: ready check, restore
	OpRestart Op = "restart" // the full cycle
	OpReboot  Op = "reboot"  // withdraw, drain, reboot; the next boot restores
	// The web server's unit stopped or started by someone else (systemd,
	// for the package manager, needrestart, a person's systemctl, a
	// shutdown), told by the guard unit: out before it stops, back after
	// it starts.
	OpWebStop  Op = "web-stop"
	OpWebStart Op = "web-start"
)

// Holder records who took the server out, when and why.
type Holder struct {
	Who    string    `json:"who"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
	// Until ends a held maintenance by itself (TTL); zero means never.
	Until time.Time `json:"until,omitzero"`
	// Command is set while `maintenance run` runs it: the hold is the
	// command's, and others get busy until it ends. Log is where its
	// output goes.
	Command string `json:"command,omitempty"`
	Log     string `json:"log,omitempty"`
	// RunnerPID is the drainctl process running that command: if it is
	// gone while the hold is still the command's, nobody will end it.
	RunnerPID int `json:"runner_pid,omitempty"`
	// Unit is set when the hold is a web server unit's stop (OpWebStop):
	// the unit's next start (OpWebStart) ends it.
	Unit string `json:"unit,omitempty"`
}

// Slot is the pool slot this host holds: taken before the server is
// withdrawn, given back once it is back in rotation. The slot lives in
// etcd; this copy says the agent must give it back, across restarts and
// reboots.
type Slot struct {
	Pool  string    `json:"pool"`
	Op    Op        `json:"op"`
	Since time.Time `json:"since"`
	// Release: the server is back in rotation and the slot is being given
	// back (etcd has not answered yet; the agent retries).
	Release bool `json:"release_pending,omitempty"`
}

// Reboot is a reboot drainctl started, kept from the reboot command to
// the end of the next boot's restore: the next boot's agent knows from it
// that the host went down on purpose, and which boot it left.
type Reboot struct {
	// BootID is the boot the reboot leaves (bootinfo.Boot: the kernel's boot
	// id, and PID 1's start, which tells a container's boots apart):
	// the host has rebooted once the boot id is another.
	BootID string `json:"boot_id"`
	// Since is when the reboot command ran.
	Since time.Time `json:"since"`
	// Command is the reboot command.
	Command string `json:"command"`
	// Who asked and why, for the history entry the next boot writes.
	Who    string `json:"who"`
	Reason string `json:"reason,omitempty"`
	// Start and Marks are the operation's start and its phases so far
	// (the slot's wait, the withdraw, the drain, the reboot): the history
	// entry spans both boots.
	Start time.Time `json:"start"`
	Marks []Mark    `json:"marks,omitempty"`
	// OutOfRotation is how many of the load balancers confirmed the
	// withdraw ("1/1"), for that history entry.
	OutOfRotation string `json:"out_of_rotation,omitempty"`
}

// Owed is a restart deferred by drainctl's policy-rc.d.
type Owed struct {
	// Unit is the web server's unit (apache2.service).
	Unit string `json:"unit"`
	// Action is what the package manager asked (restart, try-restart,
	// force-reload).
	Action string `json:"action"`
	// Reason is who asked ("dpkg: apache2 2.4.68-1~deb12u1 →
	// 2.4.71-1~deb12u1"), for the history entry of the restart.
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
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

// State is the content of the state file.
type State struct {
	Version int     `json:"version"`
	Phase   Phase   `json:"phase"`
	Op      Op      `json:"op,omitempty"`
	Holder  *Holder `json:"holder,omitempty"`
	// Backend is the forward backend that holds drainctl's rules
	// (nftables, iptables-nft, iptables-legacy); an agent started with
	// backend auto keeps it.
	Backend string `json:"backend,omitempty"`
	// Slot is the pool slot held, if any.
	Slot *Slot `json:"slot,omitempty"`
	// Reboot is set while a reboot drainctl started is in progress.
	Reboot *Reboot `json:"reboot,omitempty"`
	// Owed is a web server unit's restart that the package manager
	// asked for while the pool had no slot free: drainctl's policy-rc.d
	// told dpkg not to (101), and the agent restarts the unit itself,
	// drained, once a slot comes. Cleared when that restart is issued.
	Owed *Owed `json:"owed,omitempty"`
	// LastError is the failure that left the server where it is, if any.
	LastError string       `json:"last_error,omitempty"`
	History   []Transition `json:"history,omitempty"`
}

// historyLen bounds the history kept in the file.
const historyLen = 50

// Fresh is the state of a server drainctl has never taken out.
func Fresh() State { return State{Version: Version, Phase: InService} }

// Store is a state file in a directory the agent owns, locked so that a
// second agent cannot use the same directory.
type Store struct {
	dir  string
	lock *os.File
}

const fileName = "state.json"

// Open locks dir (creating it, mode 0700) for this process. It fails if
// another process holds the lock: two agents must not share a state.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state dir %s is in use by another drainctl agent", dir)
		}
		return nil, fmt.Errorf("state dir lock: %w", err)
	}
	return &Store{dir: dir, lock: f}, nil
}

// Close releases the lock.
func (s *Store) Close() error { return s.lock.Close() }

// Path is the state file's path.
func (s *Store) Path() string { return FilePath(s.dir) }

// FilePath is the state file's path in state dir dir, for readers that
// do not lock it (drainctl doctor).
func FilePath(dir string) string { return filepath.Join(dir, fileName) }

// Load reads the state; a missing file is a fresh state.
func (s *Store) Load() (State, error) {
	b, err := os.ReadFile(s.Path())
	if errors.Is(err, os.ErrNotExist) {
		return Fresh(), nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read state: %w", err)
	}
	st, err := Parse(b)
	if err != nil {
		// Starting fresh could put a held server back in rotation: stop,
		// and let a person decide.
		return State{}, fmt.Errorf("state file %s: %w; fix it, or move it away to start in service", s.Path(), err)
	}
	return st, nil
}

// Version is the state file format this drainctl reads and writes.
const Version = 1

var (
	phases = []Phase{InService, Withdrawing, Draining, Held, ConfigTest, Restarting, ReadyCheck, Restoring, Rebooting}
	ops    = []Op{OpNone, OpEnter, OpExit, OpRestart, OpReboot, OpWebStop, OpWebStart}
)

// Parse reads a state file's content and checks that it is a state this
// drainctl can act on: an object of a known version, a known phase and
// operation, and a phase that fits the operation. Anything else is an
// error that says what is wrong, never a fresh state.
func Parse(b []byte) (State, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return State{}, fmt.Errorf("not valid JSON: %w", err)
	}
	if raw == nil {
		return State{}, errors.New("holds null, not a state")
	}
	if _, ok := raw["version"]; !ok {
		return State{}, errors.New("no version: not a drainctl state")
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, fmt.Errorf("not a drainctl state: %w", err)
	}
	if st.Version != Version {
		return State{}, fmt.Errorf("version %d: this drainctl reads version %d", st.Version, Version)
	}
	if !slices.Contains(phases, st.Phase) {
		return State{}, fmt.Errorf("unknown phase %q", st.Phase)
	}
	if !slices.Contains(ops, st.Op) {
		return State{}, fmt.Errorf("unknown operation %q", st.Op)
	}
	idle := st.Phase == InService || st.Phase == Held
	if idle != (st.Op == OpNone) {
		return State{}, fmt.Errorf("phase %q with operation %q: no step of drainctl writes that", st.Phase, st.Op)
	}
	switch {
	case st.Phase == Rebooting && st.Op != OpReboot,
		st.Op == OpReboot && (st.Phase == ConfigTest || st.Phase == Restarting):
		return State{}, fmt.Errorf("phase %q with operation %q: no step of drainctl writes that", st.Phase, st.Op)
	case st.Phase == Rebooting && (st.Reboot == nil || st.Reboot.BootID == ""):
		return State{}, errors.New("phase \"rebooting\" without the boot it leaves: no step of drainctl writes that")
	case st.Owed != nil && st.Owed.Unit == "":
		return State{}, errors.New("a restart owed without its unit: no step of drainctl writes that")
	}
	return st, nil
}

// Save writes st atomically and durably: temporary file, fsync, rename,
// fsync of the directory.
func (s *Store) Save(st State) error {
	if len(st.History) > historyLen {
		st.History = st.History[len(st.History)-historyLen:]
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.Path(), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}
