// Package settings owns drainctl's settings: the Settings the agent runs
// with, their defaults, their checks, and the table (All) that declares
// each setting once: its doc, its default, its check, and its one name,
// which the config file (pool.ca_file), the flags (--pool-ca-file) and
// the JSON of `agent --check` (pool.ca_file) all spell the same way. The
// config file (pkg/config), the CLI's flags and man pages, the agent and
// doctor read the table; this package imports none of them.
package settings

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/maintenance"
	"github.com/drainctl/drainctl/pkg/metrics"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/ready"
	"github.com/drainctl/drainctl/pkg/runner"
)

// Settings are everything the agent needs. They are made in one way:
// Defaults, the config file laid over them (pkg/config), then the flags
// of `drainctl agent` that were given, then Resolve and Validate. `agent
// --check` prints them as JSON (MarshalJSON, from the table), the shape
// scripts read; the json:"-" tags say that encoding/json never sees the
// fields themselves.
type Settings struct {
	// Socket is the control socket's path.
	Socket string `json:"-"`
	// SocketGroup may use the socket: a group name or number. Empty means
	// drainctl if that group exists (the package creates it), else root
	// only; a group named here must exist.
	SocketGroup string `json:"-"`
	// SocketReadGroup may read (status, history, events, metrics, the
	// pool's status) but not operate: a group name or number. Empty
	// means drainctl-ro if that group exists, else none.
	SocketReadGroup string `json:"-"`
	// SocketReadAll lets every local user read.
	SocketReadAll bool `json:"-"`
	// StateDir holds the state file and the history.
	StateDir string `json:"-"`
	// Backend is the netfilter backend of the forwards, or auto to follow
	// the host's firewall (forward.Choose).
	Backend string `json:"-"`
	// Forwards are the forward ports HAProxy checks and the service ports
	// they lead to.
	Forwards []forward.Forward `json:"-"`
	// Policy says when a withdrawn server is drained.
	Policy drain.Policy `json:"-"`
	// WebServer is the preset (runner.Presets: apache, nginx) whose config
	// test and graceful reload the commands default to; custom has none,
	// and both commands must be set.
	WebServer string `json:"-"`
	// ConfigTest and Restart are the web server's commands (run with sh
	// -c). Either may be auto until Resolve fills it in from WebServer.
	ConfigTest runner.Command `json:"-"`
	Restart    runner.Command `json:"-"`
	// RestartReason says why the restart command was chosen, when Resolve
	// chose it. No setting: the JSON prints it after them.
	RestartReason string `json:"-"`
	// MetricsListen, when set, is a TCP address (host:port) that serves
	// /metrics too; the control socket always does.
	MetricsListen string `json:"-"`
	// AgentCheckListen, when set, is a TCP address (host:port) answering
	// HAProxy's agent-check: "ready up" in service, "drain" while out.
	AgentCheckListen string `json:"-"`
	// Checks is the load balancers' view.
	Checks Checks `json:"-"`
	// LoadBalancers, when not empty, are the addresses or networks of the
	// load balancers: the view learns only sources within them (a SYN's
	// source address can be anyone's). Empty: any source may be learned,
	// steady ones ranking above newcomers (pkg/lbview).
	LoadBalancers []netip.Prefix `json:"-"`
	// Build describes this binary, for drainctl_build_info; the CLI sets
	// it, it is no setting of the file (the JSON prints it after them).
	Build metrics.Build `json:"-"`
	// Ready is the readiness check before a restore. An empty URL means
	// http://127.0.0.1:PORT/ with the first forward's service port, which
	// Resolve fills in once the forwards are known.
	Ready ready.Check `json:"-"`
	// Reboot is how the host reboots, for maintenance reboot.
	Reboot Reboot `json:"-"`
	// WebUnitWait bounds how long a stop of the web server's unit by
	// someone else (systemctl, dpkg, needrestart, a shutdown) waits for a
	// pool slot, and then for the drain, before it goes ahead.
	WebUnitWait time.Duration `json:"-"`
	// Pool coordinates this host's operations with the other servers of
	// its pool (none: it decides alone).
	Pool Pool `json:"-"`
	// Reconcile is how often iptables-legacy's fingerprint is polled (and
	// the TTL of a hold checked); nftables changes are reported by the
	// kernel.
	Reconcile time.Duration `json:"-"`
	// Limits are the most a request may ask: a hold's TTL, a drain
	// deadline, a pool wait (maintenance.Limits).
	Limits maintenance.Limits `json:"-"`
}

// Checks says whether and how the agent watches the load balancers'
// health checks of the forward ports.
type Checks struct {
	// Watch: confirm withdraws and restores by the checks seen; without
	// it, a withdraw waits the policy's MinWait and confirms nothing.
	Watch bool
	// Fall and Rise are HAProxy's fall and rise of the primary entries:
	// that many refused checks take the server out, accepted ones put it
	// back. They must match haproxy.cfg (haproxy-check compares them).
	Fall int
	Rise int
}

// Reboot says how maintenance reboot reboots the host, and what the next
// boot gives it.
type Reboot struct {
	// Command reboots the host (run with sh -c; its own timeout bounds
	// it, not the shutdown).
	Command runner.Command
	// Timeout: the boot id must have changed this long after the command,
	// else the server is held (the host did not reboot).
	Timeout time.Duration
	// ReadyTimeout replaces the readiness check's timeout after the boot:
	// a web server starting with the host may take longer than one
	// restarted gracefully.
	ReadyTimeout time.Duration
}

// DefaultSocketGroup is the group an empty SocketGroup means, if it
// exists; DefaultSocketReadGroup the one an empty SocketReadGroup means.
const (
	DefaultSocketGroup     = "drainctl"
	DefaultSocketReadGroup = "drainctl-ro"
)

// Defaults are the settings with nothing configured: every default of the
// agent is here, and the flags and the man pages show these as theirs.
func Defaults() Settings {
	return Settings{
		Socket:   api.DefaultSocket,
		StateDir: "/var/lib/drainctl",
		Backend:  forward.BackendAuto,
		// The recommended pattern (docs/design.md): HAProxy checks 81,
		// Apache listens on 80.
		Forwards: []forward.Forward{{From: 81, To: 80}},
		// pkg/drain's own: they fit the recommended HAProxy pattern.
		Policy: drain.DefaultPolicy(),
		// apache2ctl -t parses every site of a large host: 30 s is ample
		// and still ends a hung one.
		WebServer:  runner.Apache,
		ConfigTest: runner.Command{Line: runner.AutoConfigTest, Timeout: 30 * time.Second},
		// A graceful restart waits for Apache's children to take over.
		Restart: runner.Command{Line: runner.AutoRestart, Timeout: 60 * time.Second},
		// haproxy-config writes fall 2 rise 2 on the primary entries.
		Checks: Checks{Watch: true, Fall: 2, Rise: 2},
		// Any source may be learned, steady ones ranking first.
		LoadBalancers: []netip.Prefix{},
		// A restarted Apache answers within a second or two; 15 s covers
		// a slow application's first request.
		Ready: ready.Check{Accept: ready.MustStatuses(ready.DefaultStatuses), Timeout: 15 * time.Second},
		// Two getsockopt calls per table: cheap enough to poll often, so
		// that a legacy flush is repaired within 2 s.
		Reconcile: 2 * time.Second,
		// systemctl reboot only queues the reboot job: 30 s is ample. A
		// server's shutdown and firmware take minutes; 10 minutes with the
		// same boot id means it did not reboot. After the boot, the web
		// server may still be warming up: 5 minutes.
		Reboot: Reboot{Command: runner.Command{Line: "systemctl reboot", Timeout: 30 * time.Second},
			Timeout: maintenance.DefaultRebootTimeout, ReadyTimeout: 5 * time.Minute},
		WebUnitWait: maintenance.DefaultWebWait,
		// No etcd: no pool. With one, a pool of one name unless told,
		// one server out at a time (HAProxy sends new users to the
		// backups only once every primary is out), a wait long enough
		// for a pool started by cron at one minute to go through.
		Pool: Pool{Etcd: []string{}, Name: "default", MaxUnavailable: pool.MustLimit("1"), Wait: maintenance.DefaultPoolWait},
		// Far past what an operation needs, far short of the years a typo
		// or a hostile client asks for (maintenance.Limits).
		Limits: maintenance.Limits{MaxTTL: maintenance.DefaultMaxTTL, MaxDeadline: maintenance.DefaultMaxDeadline, MaxPoolWait: maintenance.DefaultMaxPoolWait},
	}
}

// Resolve fills in the settings that follow from others, once the file
// and the flags are laid over Defaults: the readiness URL from the first
// forward, and the restart command when it is auto (runner.DetectRestart
// asks systemd).
func (s *Settings) Resolve(ctx context.Context) {
	if s.Ready.URL == "" && len(s.Forwards) > 0 {
		s.Ready.URL = fmt.Sprintf("http://127.0.0.1:%d/", s.Forwards[0].To)
	}
	// An unknown web server has no preset: the commands stay auto and
	// Validate names the setting.
	if ws, ok := runner.Presets[s.WebServer]; ok {
		if s.ConfigTest.Line == runner.AutoConfigTest {
			s.ConfigTest.Line = ws.ConfigTest
		}
		if s.Restart.Line == runner.AutoRestart {
			s.Restart.Line, s.RestartReason = ws.Reload(ctx)
		}
	}
	if s.Pool.ID == "" && s.Pool.Enabled() {
		s.Pool.ID, _ = os.Hostname()
	}
}

// SettingError is a setting that cannot work. Its message names the
// setting and value, as every message of Validate does; Key says which
// it is (a Setting's Key), for the caller to add where it was set.
type SettingError struct {
	Key string
	Err error
}

func (e *SettingError) Error() string { return e.Err.Error() }
func (e *SettingError) Unwrap() error { return e.Err }

func invalid(key, format string, a ...any) error {
	return &SettingError{key, fmt.Errorf(format, a...)}
}

// Validate checks the settings before anything is touched. It is the one
// check of each setting: the config file and the flags only parse. Each
// setting's own check is its declaration's (All, in the table's order);
// the checks that span settings follow: the drain policy's, the
// commands' against the web server, the pool's. An error about one
// setting is a *SettingError.
func (s Settings) Validate() error {
	for _, st := range All() {
		if st.check == nil {
			continue
		}
		if err := st.check(s); err != nil {
			return &SettingError{st.Key, err}
		}
	}
	// drain's own check; its rules span several keys (deadline against
	// min-wait), so its errors name the settings but carry no key.
	if err := s.Policy.Validate(); err != nil {
		return err
	}
	if err := s.validateCommands(); err != nil {
		return err
	}
	return s.Pool.validate()
}

// validateCommands checks the web server's commands against its preset:
// auto needs one.
func (s Settings) validateCommands() error {
	if l := s.ConfigTest.Line; l == runner.AutoConfigTest && s.WebServer == runner.Custom {
		return invalid(KeyConfigTestCmd, "configtest command: must be set (web_server %s has no preset)", s.WebServer)
	}
	if l := s.Restart.Line; l == runner.AutoRestart && s.WebServer == runner.Custom {
		return invalid(KeyRestartCmd, "restart command: must be set (web_server %s has no preset)", s.WebServer)
	}
	return nil
}

// ValidateForwards is the part of Validate the forward commands need:
// the forwards and the backend's name. Which backend auto picks is the
// start's business.
func (s Settings) ValidateForwards() error {
	for _, key := range []string{KeyForwards, KeyBackend} {
		if err := Lookup(key).check(s); err != nil {
			return &SettingError{key, err}
		}
	}
	return nil
}

// The checks the table's declarations share.

// positive refuses a timeout of zero or less.
func positive(what string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s timeout %v: must be positive", what, d)
	}
	return nil
}

// set refuses an empty command.
func set(what, line, why string) error {
	if line == "" {
		return fmt.Errorf("%s command: must be set (%s)", what, why)
	}
	return nil
}

// hostPort accepts HOST:PORT, or nothing.
func hostPort(what, v, eg string) error {
	if v == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("%s listen %q: want HOST:PORT, e.g. %s", what, v, eg)
	}
	return nil
}

// checkCount accepts HAProxy's fall or rise: past 100 a check count is a
// typo (HAProxy would take minutes to notice anything).
func checkCount(what string, n int) error {
	if n < 1 || n > 100 {
		return fmt.Errorf("%s %d: want a count from 1 to 100 (HAProxy's %s of the primary entries)", what, n, what)
	}
	return nil
}

// checkURL accepts http:// and https:// URLs with a host.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("ready url %q: want http://HOST[:PORT]/PATH", s)
	}
	return nil
}

// SocketGID is the socket's group: SocketGroup's, or DefaultSocketGroup's
// when none is given and it exists, else root's (0).
func (s Settings) SocketGID() (int, error) { return groupID(s.SocketGroup) }

// groupID resolves the socket's group. The default group may be missing
// (then only root can use the socket); a group asked for must exist.
func groupID(name string) (int, error) {
	g, ok, err := lookupGroup(name, DefaultSocketGroup, "socket group")
	if !ok {
		return 0, err
	}
	return g.GID, nil
}

// lookupGroup resolves a group of the socket's roles: a name or a
// number; empty means def, which may be missing (ok false, no error). A
// group asked for must exist.
func lookupGroup(name, def, what string) (api.Group, bool, error) {
	if name == "" {
		if g, err := user.LookupGroup(def); err == nil {
			gid, err := strconv.Atoi(g.Gid)
			return api.Group{Name: g.Name, GID: gid}, err == nil, err
		}
		return api.Group{}, false, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		g, err = user.LookupGroupId(name)
	}
	if err != nil {
		return api.Group{}, false, errors.New(what + " " + strconv.Quote(name) + " does not exist (create it with groupadd, or choose another)")
	}
	gid, err := strconv.Atoi(g.Gid)
	return api.Group{Name: g.Name, GID: gid}, err == nil, err
}

// SocketAccess is who may do what on the socket (api.Access), its
// groups resolved now, once: the socket group operates, the read group
// reads (or everyone, with SocketReadAll). Without a socket group (the
// default one missing) only root operates, as the socket's group is
// then root's.
func (s Settings) SocketAccess() (api.Access, error) {
	a := api.Access{ReadAll: s.SocketReadAll}
	op, ok, err := lookupGroup(s.SocketGroup, DefaultSocketGroup, "socket group")
	if err != nil {
		return a, err
	}
	if ok {
		a.Operators = &op
	}
	rd, ok, err := lookupGroup(s.SocketReadGroup, DefaultSocketReadGroup, "socket read group")
	if err != nil {
		return a, err
	}
	if ok {
		a.Readers = &rd
	}
	return a, nil
}
