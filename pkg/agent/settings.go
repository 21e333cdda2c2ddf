package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/jsonms"
	"github.com/drainctl/drainctl/pkg/maintenance"
	"github.com/drainctl/drainctl/pkg/metrics"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/ready"
	"github.com/drainctl/drainctl/pkg/runner"
)

// Settings are everything the agent needs. They are made in one way:
// Defaults, the config file laid over them (pkg/config), then the flags
// of `drainctl agent` that were given, then Resolve and Validate. `agent
// --check` prints them as JSON, the shape scripts read.
type Settings struct {
	// Socket is the control socket's path.
	Socket string `json:"socket"`
	// SocketGroup may use the socket: a group name or number. Empty means
	// drainctl if that group exists (the package creates it), else root
	// only; a group named here must exist.
	SocketGroup string `json:"socket_group"`
	// StateDir holds the state file and the history.
	StateDir string `json:"state_dir"`
	// Backend is the netfilter backend of the forwards, or auto to follow
	// the host's firewall (forward.Choose).
	Backend string `json:"backend"`
	// Forwards are the forward ports HAProxy checks and the service ports
	// they lead to.
	Forwards []forward.Forward `json:"forwards"`
	// Policy says when a withdrawn server is drained.
	Policy drain.Policy `json:"drain"`
	// WebServer is the preset (runner.Presets: apache, nginx) whose config
	// test and graceful reload the commands default to; custom has none,
	// and both commands must be set.
	WebServer string `json:"web_server"`
	// ConfigTest and Restart are the web server's commands (run with sh
	// -c). Either may be auto until Resolve fills it in from WebServer.
	ConfigTest runner.Command `json:"configtest"`
	Restart    runner.Command `json:"restart"`
	// RestartReason says why the restart command was chosen, when Resolve
	// chose it.
	RestartReason string `json:"restart_reason,omitempty"`
	// MetricsListen, when set, is a TCP address (host:port) that serves
	// /metrics too; the control socket always does.
	MetricsListen string `json:"metrics_listen,omitempty"`
	// AgentCheckListen, when set, is a TCP address (host:port) answering
	// HAProxy's agent-check: "ready up" in service, "drain" while out.
	AgentCheckListen string `json:"agent_check_listen,omitempty"`
	// Checks is the load balancers' view.
	Checks Checks `json:"health_checks"`
	// Build describes this binary, for drainctl_build_info; the CLI sets
	// it, it is no setting of the file.
	Build metrics.Build `json:"build"`
	// Ready is the readiness check before a restore. An empty URL means
	// http://127.0.0.1:PORT/ with the first forward's service port, which
	// Resolve fills in once the forwards are known.
	Ready ready.Check `json:"ready"`
	// Reboot is how the host reboots, for maintenance reboot.
	Reboot RebootSettings `json:"reboot"`
	// Pool coordinates this host's operations with the other servers of
	// its pool (none: it decides alone).
	Pool PoolSettings `json:"pool"`
	// Reconcile is how often iptables-legacy's fingerprint is polled (and
	// the TTL of a hold checked); nftables changes are reported by the
	// kernel. Last, and in milliseconds, as `agent --check` has always
	// printed it.
	Reconcile time.Duration `json:"reconcile_interval_ms"`
}

// Checks says whether and how the agent watches the load balancers'
// health checks of the forward ports.
type Checks struct {
	// Watch: confirm withdraws and restores by the checks seen; without
	// it, a withdraw waits the policy's MinWait and confirms nothing.
	Watch bool `json:"watch"`
	// Fall and Rise are HAProxy's fall and rise of the primary entries:
	// that many refused checks take the server out, accepted ones put it
	// back. They must match haproxy.cfg (haproxy-check compares them).
	Fall int `json:"fall"`
	Rise int `json:"rise"`
}

// RebootSettings say how maintenance reboot reboots the host, and what
// the next boot gives it.
type RebootSettings struct {
	// Command reboots the host (run with sh -c; its own timeout bounds
	// it, not the shutdown).
	Command runner.Command `json:"command"`
	// Timeout: the boot id must have changed this long after the command,
	// else the server is held (the host did not reboot).
	Timeout time.Duration `json:"timeout_ms"`
	// ReadyTimeout replaces the readiness check's timeout after the boot:
	// a web server starting with the host may take longer than one
	// restarted gracefully.
	ReadyTimeout time.Duration `json:"ready_timeout_ms"`
}

// DefaultSocketGroup is the group an empty SocketGroup means, if it
// exists.
const DefaultSocketGroup = "drainctl"

// Defaults are the settings with nothing configured: every default of the
// agent is here, and the flags show these as theirs.
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
		Reboot: RebootSettings{Command: runner.Command{Line: "systemctl reboot", Timeout: 30 * time.Second},
			Timeout: maintenance.DefaultRebootTimeout, ReadyTimeout: 5 * time.Minute},
		// No etcd: no pool. With one, a pool of one name unless told,
		// one server out at a time (HAProxy sends new users to the
		// backups only once every primary is out), a wait long enough
		// for a pool started by cron at one minute to go through.
		Pool: PoolSettings{Etcd: []string{}, Name: "default", MaxUnavailable: pool.MustLimit("1"), Wait: maintenance.DefaultPoolWait},
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

// Keys name the settings as the config file does; a SettingError carries
// one, so that the CLI can say where the setting was given: the file's
// line, or a flag.
const (
	KeySocket           = "socket"
	KeySocketGroup      = "socket_group"
	KeyStateDir         = "state_dir"
	KeyBackend          = "backend"
	KeyForwards         = "forwards"
	KeyReconcile        = "reconcile_interval"
	KeyMetricsListen    = "metrics_listen"
	KeyAgentCheckListen = "agent_check_listen"
	KeyWatch            = "health_checks.watch"
	KeyFall             = "health_checks.fall"
	KeyRise             = "health_checks.rise"
	KeyPoll             = "drain.poll"
	KeyMinWait          = "drain.min_wait"
	KeyQuiet            = "drain.quiet"
	KeyIdleAfter        = "drain.idle_after"
	KeyDeadline         = "drain.deadline"
	KeyGrace            = "drain.grace"
	KeyOnDeadline       = "drain.on_deadline"
	KeyIgnore           = "drain.ignore"
	KeyWebServer        = "web_server"
	KeyConfigTestCmd    = "restart.configtest_cmd"
	KeyConfigTestTime   = "restart.configtest_timeout"
	KeyRestartCmd       = "restart.restart_cmd"
	KeyRestartTime      = "restart.restart_timeout"
	KeyReadyURL         = "ready.url"
	KeyReadyStatus      = "ready.status"
	KeyReadyHost        = "ready.host"
	KeyReadyTimeout     = "ready.timeout"
	KeyRebootCmd        = "reboot.cmd"
	KeyRebootTimeout    = "reboot.timeout"
	KeyBootReady        = "reboot.ready_timeout"
)

// SettingError is a setting that cannot work. Its message names the
// setting and value, as every message of Validate does; Key says which
// it is, for the caller to add where it was set.
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
// check of each setting: the config file and the flags only parse. An
// error about one setting is a *SettingError.
func (s Settings) Validate() error {
	if err := s.ValidateForwards(); err != nil {
		return err
	}
	// drain's own check; its rules span several keys (deadline against
	// min-wait), so its errors name the settings but carry no key.
	if err := s.Policy.Validate(); err != nil {
		return err
	}
	if r := time.Duration(s.Reconcile); r < 100*time.Millisecond {
		return invalid(KeyReconcile, "reconcile interval %v: must be at least 100ms", r)
	}
	for _, t := range []struct {
		key, what string
		d         time.Duration
	}{
		{KeyConfigTestTime, "configtest", s.ConfigTest.Timeout},
		{KeyRestartTime, "restart", s.Restart.Timeout},
		{KeyReadyTimeout, "ready", s.Ready.Timeout},
		{KeyRebootTimeout, "reboot", s.Reboot.Timeout},
		{KeyBootReady, "boot ready", s.Reboot.ReadyTimeout},
	} {
		if t.d <= 0 {
			return invalid(t.key, "%s timeout %v: must be positive", t.what, t.d)
		}
	}
	if err := s.validateCommands(); err != nil {
		return err
	}
	if err := checkURL(s.Ready.URL); err != nil {
		return &SettingError{KeyReadyURL, err}
	}
	if len(s.Ready.Accept) == 0 {
		return invalid(KeyReadyStatus, "ready: no accepted status")
	}
	if err := checkCount(KeyFall, "fall", s.Checks.Fall); err != nil {
		return err
	}
	if err := checkCount(KeyRise, "rise", s.Checks.Rise); err != nil {
		return err
	}
	if _, err := groupID(s.SocketGroup); err != nil {
		return &SettingError{KeySocketGroup, err}
	}
	if s.AgentCheckListen != "" {
		if _, _, err := net.SplitHostPort(s.AgentCheckListen); err != nil {
			return invalid(KeyAgentCheckListen, "agent-check listen %q: want HOST:PORT, e.g. :8081", s.AgentCheckListen)
		}
	}
	if err := s.Pool.validate(); err != nil {
		return err
	}
	if s.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(s.MetricsListen); err != nil {
			return invalid(KeyMetricsListen, "metrics listen %q: want HOST:PORT, e.g. 127.0.0.1:9188 or :9188", s.MetricsListen)
		}
	}
	return nil
}

// validateCommands checks the web server's commands and the reboot's.
func (s Settings) validateCommands() error {
	if _, err := runner.ParseWebServer(s.WebServer); err != nil {
		return &SettingError{KeyWebServer, err}
	}
	if l := s.ConfigTest.Line; l == "" || l == runner.AutoConfigTest && s.WebServer == runner.Custom {
		return invalid(KeyConfigTestCmd, "configtest command: must be set (web_server %s has no preset)", s.WebServer)
	}
	if l := s.Restart.Line; l == "" || l == runner.AutoRestart && s.WebServer == runner.Custom {
		return invalid(KeyRestartCmd, "restart command: must be set (web_server %s has no preset)", s.WebServer)
	}
	if s.Reboot.Command.Line == "" {
		return invalid(KeyRebootCmd, "reboot command: must be set (systemctl reboot, unless the host reboots otherwise)")
	}
	return nil
}

// ValidateForwards is the part of Validate the forward commands need:
// the forwards and the backend's name. Which backend auto picks is the
// start's business.
func (s Settings) ValidateForwards() error {
	if err := forward.CheckSet(s.Forwards); err != nil {
		return &SettingError{KeyForwards, err}
	}
	if _, err := forward.Choose(s.Backend, forward.HostRules{}); err != nil {
		return &SettingError{KeyBackend, err}
	}
	return nil
}

// checkCount accepts HAProxy's fall or rise: past 100 a check count is a
// typo (HAProxy would take minutes to notice anything).
func checkCount(key, what string, n int) error {
	if n < 1 || n > 100 {
		return invalid(key, "%s %d: want a count from 1 to 100 (HAProxy's %s of the primary entries)", what, n, what)
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

// groupID resolves the socket's group. The default group may be missing
// (then only root can use the socket); a group asked for must exist.
func groupID(name string) (int, error) {
	if name == "" {
		if g, err := user.LookupGroup(DefaultSocketGroup); err == nil {
			return strconv.Atoi(g.Gid)
		}
		return 0, nil
	}
	if g, err := user.LookupGroup(name); err == nil {
		return strconv.Atoi(g.Gid)
	}
	if g, err := user.LookupGroupId(name); err == nil {
		return strconv.Atoi(g.Gid)
	}
	return 0, errors.New("socket group " + strconv.Quote(name) + " does not exist (create it with groupadd, or choose another)")
}

// MarshalJSON writes the settings with durations in milliseconds (the
// wire's one rule, jsonms).
func (s Settings) MarshalJSON() ([]byte, error) { return jsonms.Marshal(s) }

// UnmarshalJSON reads what MarshalJSON wrote.
func (s *Settings) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, s) }
