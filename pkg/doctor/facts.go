package doctor

import (
	"time"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/bootinfo"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/haproxy"
	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/runner"
	"github.com/drainctl/drainctl/pkg/settings"
	"github.com/drainctl/drainctl/pkg/state"
	"github.com/drainctl/drainctl/pkg/window"
)

// Facts is what Gather read from the host; Judge decides from it alone.
type Facts struct {
	Now time.Time
	// AsRoot: doctor ran as root, so what it could not read, the agent
	// cannot either.
	AsRoot bool
	// Settings are the agent's, from the same file and flags.
	Settings settings.Settings
	Firewall Firewall
	Agent    Agent
	Checks   Checks
	Web      Web
	Pool     Pool
	Reboot   Reboot
	// Restarts are the restarts of the web server nobody asks drainctl
	// for, and whether its guard drains them.
	Restarts Restarts
	// HAProxy is set with --haproxy-config.
	HAProxy *HAProxy
}

// Firewall is the host's netfilter as drainctl meets it.
type Firewall struct {
	Rules    forward.HostRules
	ProbeErr error
	// Choice is what backend auto chooses here (with the state file's
	// record), for a host whose agent does not answer.
	Choice forward.Choice
	// Software is the firewall software found on the host.
	Software []Software
	// PortRules are other software's rules that name a forward port.
	PortRules []PortRule
}

// Software is one firewall tool that manages rules on this host.
type Software struct {
	Name string // ufw, firewalld, docker, nftables.service, netfilter-persistent
	// Detail is how it was found ("/etc/nftables.conf flushes the ruleset").
	Detail string
	// Removes: its reload or start removes drainctl's rules (the agent
	// puts them back).
	Removes bool
}

// PortRule is another program's rule that names a forward port.
type PortRule struct {
	Where string // "nftables table ip nat, chain pre", "iptables-legacy table nat"
	Rule  string // as nft or iptables-save lists it
	Port  uint16
	// Table and Chain are where the rule is ("nat", "PREROUTING").
	Table, Chain string
	// NATs: it rewrites the destination (DNAT, REDIRECT); Drops: it
	// drops or rejects.
	NATs, Drops bool
}

// Agent is what the agent says and how it runs.
type Agent struct {
	Socket string
	// Status is the agent's answer, as the wire has it (doctor is the
	// agent's client, like the CLI); nil with Err when it gave none.
	Status *apitype.Status
	Err    error
	// Systemd: systemd runs this host.
	Systemd bool
	// Unit is drainctl.service as systemd shows it; nil without systemd.
	Unit *Unit
	// StateFile is the state file's path; State its content (nil: no
	// file), StateErr why it cannot be read.
	StateFile string
	State     *state.State
	StateErr  error
}

// Unit is a systemd unit's properties (systemctl show).
type Unit struct {
	Name          string
	LoadState     string // loaded, not-found, masked
	ActiveState   string // active, inactive, failed
	UnitFileState string // enabled, disabled, static
	// Families is RestrictAddressFamilies: "" for no restriction, a list,
	// or "~" and the list denied.
	Families string
	// Caps is CapabilityBoundingSet: the capabilities the unit may have
	// (systemd prints all of them when unrestricted; "" is none at all);
	// CapsKnown says whether systemctl printed it.
	Caps      string
	CapsKnown bool
	// User is the unit's User= ("" or root: root); Ambient its
	// AmbientCapabilities, all a non-root agent has.
	User    string
	Ambient string
	DropIns []string
	// Wants is the unit's Wants= (drop-ins' included): a web server's
	// names its guard when the package's drop-in is in force.
	Wants []string
}

// Checks is the load balancers' view: the agent's (since it started)
// and doctor's own capture (forward and service ports, for Listened).
type Checks struct {
	Listened   time.Duration
	CaptureErr error
	// Skipped: no capture was asked for (--listen 0).
	Skipped bool
	// Seen are the sources doctor's capture saw, on the forward ports and
	// the service ports (LB.Port says which).
	Seen []lbview.LB
	// Newcomers counts the sources new to doctor's capture on the forward
	// ports (lbview's Newcomers): more than Seen lists when a flood
	// churns the view.
	Newcomers int
	// Agent are the agent's load balancers; AgentWatching says whether it
	// watches at all (an agent's status without health checks).
	Agent         []lbview.LB
	AgentWatching bool
}

// Web is the web server's commands and what they answered.
type Web struct {
	Preset runner.WebServer // empty Name for custom
	// ConfigTest is the config test as run, with its output and error.
	ConfigTest    runner.Command
	ConfigTestErr error
	// Restart is the restart command the agent runs, and why.
	Restart       string
	RestartReason string
	// Missing are commands (config test, restart, reboot) whose program
	// is not installed, by setting.
	Missing map[string]string
	// Ready is the readiness check's URL and its failure (nil: ready).
	ReadyURL     string
	ReadyErr     error
	ReadyTimeout time.Duration // doctor's, at most the agent's
	// Unit is the preset's unit (apache2.service) under systemd; nil
	// without systemd or for custom.
	Unit *Unit
}

// Pool is the pool as the agent (or etcd) answers, in the wire's terms
// either way.
type Pool struct {
	Configured bool
	Status     *apitype.PoolStatus
	Err        error
	// Storage is etcd's, read with the pool's settings (nil: not read,
	// StorageErr says why).
	Storage    *pool.Storage
	StorageErr error
}

// Reboot is whether a reboot is owed, and the maintenance window.
type Reboot struct {
	Need bootinfo.Need
	Err  error
	// Window is --window (DRAINCTL_PATCH_WINDOW), zero if none.
	Window window.Window
}

// HAProxy is a haproxy.cfg read with --haproxy-config.
type HAProxy struct {
	File string
	// Findings are haproxy-check's in the backends that list this host
	// (all of them when none does: NotMine); Others counts the rest.
	Findings []haproxy.Finding
	Others   int
	NotMine  bool
	// Mine are the primary entries whose address is one of this host's.
	Mine []haproxy.Entry
}

// Restarts is who restarts the web server behind drainctl's back (dpkg,
// needrestart, unattended-upgrades, a person's systemctl, a shutdown),
// and whether the guard unit drains those restarts.
type Restarts struct {
	// Guarded are the units whose stops take the server out once their
	// guard runs: the preset's web server (Web.Unit, when systemd knows
	// it) first, then the active php-fpm units; empty without systemd.
	Guarded []Guarded
	// ListErr says why the php-fpm units could not be listed.
	ListErr     error
	Needrestart Needrestart
	Unattended  Unattended
	// PolicyRCD is /usr/sbin/policy-rc.d; nil when there is none.
	PolicyRCD *PolicyRCD
}

// Guarded is a unit and its guard.
type Guarded struct {
	Unit *Unit
	// Guard is drainctl-guard@NAME.service as systemd shows it; nil if
	// systemctl could not say.
	Guard *Unit
	// Web: the preset's web server (not a php-fpm).
	Web bool
}

// Needrestart is needrestart's installation and restart mode.
type Needrestart struct {
	Installed bool
	// Mode is the last $nrconf{restart} set: "a" (restart), "l" (list),
	// "i" (ask); "" when no file sets it (needrestart's default, "i").
	Mode string
	// ModeFile is the file that set Mode.
	ModeFile string
	// Err says why a configuration file could not be read.
	Err error
}

// Unattended is unattended-upgrades' installation and apt settings.
type Unattended struct {
	Installed bool
	// Upgrade is APT::Periodic::Unattended-Upgrade ("1": daily, "0" or
	// "": off), and the file that set it.
	Upgrade, UpgradeFile string
	// Reboot is Unattended-Upgrade::Automatic-Reboot, RebootTime its
	// -Time ("" is "now"), and the file that set Reboot.
	Reboot, RebootTime, RebootFile string
	Err                            error
	// Timer is apt-daily-upgrade.timer, which starts the runs; nil
	// without systemd or when systemctl could not say.
	Timer *Timer
}

// Timer is a systemd timer's schedule.
type Timer struct {
	Name string
	// Calendar are its OnCalendar= expressions.
	Calendar []string
	// Next is when its calendar elapses next (zero: not scheduled);
	// RandomDelay its RandomizedDelaySec, and Drawn when it will run
	// this time, the random delay added (systemd 252 draws it ahead).
	Next, Drawn time.Time
	RandomDelay time.Duration
	DropIns     []string
}

// PolicyRCD is the policy-rc.d script dpkg's maintainer scripts ask
// before they start, stop or restart a service.
type PolicyRCD struct {
	Path string
	// Target is where the path links to (update-alternatives), "" for
	// none.
	Target string
	// Drainctl: the script is drainctl's.
	Drainctl bool
	// Forbids: the script only answers 101 (forbidden), to everything.
	Forbids bool
}
