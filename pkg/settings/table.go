package settings

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/ready"
	"github.com/drainctl/drainctl/pkg/runner"
)

// A Setting is the one declaration of a setting. Its Key is its one
// name: the config file's key (a dotted path, pool.ca_file); the flag is
// the key with dots and underscores as dashes (--pool-ca-file); the JSON
// of `agent --check` nests at the dots (pool.ca_file), a duration's last
// name ending in _ms (drain.deadline_ms: milliseconds, the wire's rule).
// The earlier spellings are still read, never written.
type Setting struct {
	// Key is the config file's key.
	Key string
	// Doc is what the setting does, as --help and the man pages say it;
	// a `WORD` in it names the flag's value.
	Doc string
	// DefaultText is shown instead of the default when the default is a
	// rule rather than a value (ready.url: the first forward's port).
	DefaultText string
	// Env is the environment variable that gives the flag, if any.
	Env string
	// OldKeys are earlier keys of the file, OldFlags earlier flags (and
	// short ones), OldJSON earlier paths of the JSON: still read.
	OldKeys, OldFlags, OldJSON []string

	v value
	// check is the setting's own rule, judged by Validate; its errors
	// name the setting and the value. A rule that spans settings is
	// Validate's.
	check func(Settings) error
}

// Flag is the setting's flag, without its dashes: the Key with dots and
// underscores as dashes.
func (st *Setting) Flag() string { return strings.NewReplacer(".", "-", "_", "-").Replace(st.Key) }

// JSON is the setting's path in the JSON of `agent --check`: the Key, a
// duration's with _ms.
func (st *Setting) JSON() string {
	if st.Kind() == Duration {
		return st.Key + "_ms"
	}
	return st.Key
}

// Kind is the shape of the setting's value.
func (st *Setting) Kind() Kind { return st.v.kind() }

// Set parses text (a flag's value, a scalar of the file) into s. Its
// error names the value; the caller says where it was given.
func (st *Setting) Set(s *Settings, text string) error { return st.v.set(s, text) }

// SetList parses several values into s: a List's entries (an error
// about one is an *ItemError), or the entries of a Text value that
// AcceptsList, joined with commas.
func (st *Setting) SetList(s *Settings, items []string) error { return st.v.setList(s, items) }

// AcceptsList says whether the file may give the setting a sequence.
func (st *Setting) AcceptsList() bool { return st.v.acceptsList() }

// Text is the setting's value in s as a flag takes it (a List's entries
// comma-separated).
func (st *Setting) Text(s Settings) string { return st.v.text(s) }

// Default is the setting's default as a flag takes it.
func (st *Setting) Default() string { return st.v.text(Defaults()) }

// Lookup is the setting of a key (or of one of its old keys); nil if
// there is none.
func Lookup(key string) *Setting {
	for _, st := range All() {
		if st.Key == key || slices.Contains(st.OldKeys, key) {
			return st
		}
	}
	return nil
}

// Keys name the settings, for the code that names one elsewhere (doctor's
// advice, the CLI's errors); a Setting's Key is the declaration.
const (
	KeyBackend            = "backend"
	KeyForwards           = "forwards"
	KeySocket             = "socket"
	KeySocketGroup        = "socket_group"
	KeySocketReadGroup    = "socket_read_group"
	KeySocketReadAll      = "socket_read_all"
	KeyStateDir           = "state_dir"
	KeyReconcile          = "reconcile_interval"
	KeyMetricsListen      = "metrics_listen"
	KeyAgentCheckListen   = "agent_check_listen"
	KeyWatch              = "health_checks.watch"
	KeyFall               = "health_checks.fall"
	KeyRise               = "health_checks.rise"
	KeyPoll               = "drain.poll"
	KeyMinWait            = "drain.min_wait"
	KeyQuiet              = "drain.quiet"
	KeyIdleAfter          = "drain.idle_after"
	KeyDeadline           = "drain.deadline"
	KeyGrace              = "drain.grace"
	KeyOnDeadline         = "drain.on_deadline"
	KeyIgnore             = "drain.ignore"
	KeyWebServer          = "web_server"
	KeyConfigTestCmd      = "configtest.cmd"
	KeyConfigTestTimeout  = "configtest.timeout"
	KeyRestartCmd         = "restart.cmd"
	KeyRestartTimeout     = "restart.timeout"
	KeyReadyURL           = "ready.url"
	KeyReadyStatus        = "ready.status"
	KeyReadyHost          = "ready.host"
	KeyReadyTimeout       = "ready.timeout"
	KeyRebootCmd          = "reboot.cmd"
	KeyRebootTimeout      = "reboot.timeout"
	KeyRebootReadyTimeout = "reboot.ready_timeout"
	KeyWebUnitWait        = "web_unit.wait"
	KeyPoolEtcd           = "pool.etcd"
	KeyPoolName           = "pool.name"
	KeyPoolID             = "pool.id"
	KeyPoolMaxUnavailable = "pool.max_unavailable"
	KeyPoolWait           = "pool.wait"
	KeyPoolCAFile         = "pool.ca_file"
	KeyPoolCertFile       = "pool.cert_file"
	KeyPoolKeyFile        = "pool.key_file"
	KeyPoolUsername       = "pool.username"
	KeyPoolPasswordFile   = "pool.password_file"
	KeyMaxTTL             = "limits.max_ttl"
	KeyMaxDeadline        = "limits.max_deadline"
	KeyMaxPoolWait        = "limits.max_pool_wait"
	KeyPoolInsecureCreds  = "pool.insecure_credentials"
	KeyLoadBalancers      = "health_checks.load_balancers"
)

// All is every setting, in the order of the config file
// (testdata/config/full.yaml), of --help and of the JSON. Adding a
// setting is adding its declaration here (and its field to Settings).
func All() []*Setting { return table }

var table = append(append(append(append(agentTable(), drainTable()...), commandTable()...), poolTable()...), limitsTable()...)

// agentTable: where the agent works, and how it watches the checks.
func agentTable() []*Setting {
	return []*Setting{
		{Key: KeyBackend, Env: "DRAINCTL_BACKEND", Doc: "auto, nftables, iptables, iptables-nft or iptables-legacy",
			v:     text(func(s *Settings) *string { return &s.Backend }),
			check: func(s Settings) error { _, err := forward.Choose(s.Backend, forward.HostRules{}); return err }},
		{Key: KeyForwards, OldFlags: []string{"forward", "f"}, Doc: "forward `FROM:TO` (the port HAProxy checks : the web server's); repeat for several",
			v:     listOf(func(s *Settings) *[]forward.Forward { return &s.Forwards }, forward.Parse, forward.Forward.String),
			check: func(s Settings) error { return forward.CheckSet(s.Forwards) }},
		{Key: KeySocket, Env: "DRAINCTL_SOCKET", Doc: "the agent's control socket `PATH`",
			v: text(func(s *Settings) *string { return &s.Socket })},
		{Key: KeySocketGroup, DefaultText: "drainctl if it exists, else root only", Doc: "`GROUP` allowed to use the socket",
			v:     text(func(s *Settings) *string { return &s.SocketGroup }),
			check: func(s Settings) error { _, err := groupID(s.SocketGroup); return err }},
		{Key: KeySocketReadGroup, DefaultText: "drainctl-ro if it exists, else none",
			Doc: "`GROUP` allowed to read on the socket (status, history, events, metrics, pool status), not to operate",
			v:   text(func(s *Settings) *string { return &s.SocketReadGroup }),
			check: func(s Settings) error {
				_, _, err := lookupGroup(s.SocketReadGroup, DefaultSocketReadGroup, "socket read group")
				return err
			}},
		{Key: KeySocketReadAll, Doc: "let every local user read on the socket (status, history, events, metrics, pool status)",
			v: boolean(func(s *Settings) *bool { return &s.SocketReadAll })},
		{Key: KeyStateDir, Doc: "`DIR` for the state file and the history",
			v: text(func(s *Settings) *string { return &s.StateDir })},
		{Key: KeyReconcile, Doc: "poll iptables-legacy's fingerprint every `DURATION` (nftables changes are reported by the kernel)",
			v: duration(func(s *Settings) *time.Duration { return &s.Reconcile }),
			check: func(s Settings) error {
				if s.Reconcile < 100*time.Millisecond {
					return fmt.Errorf("reconcile interval %v: must be at least 100ms", s.Reconcile)
				}
				return nil
			}},
		{Key: KeyMetricsListen, Doc: "also serve /metrics (Prometheus) on TCP `HOST:PORT`, e.g. 127.0.0.1:9188 (the socket always serves it)",
			v:     text(func(s *Settings) *string { return &s.MetricsListen }),
			check: func(s Settings) error { return hostPort("metrics", s.MetricsListen, "127.0.0.1:9188 or :9188") }},
		{Key: KeyAgentCheckListen, Doc: "answer HAProxy's agent-check on TCP `HOST:PORT`, e.g. :8081: \"ready up\" in service, \"drain\" while out (haproxy-config --style agent-check)",
			v:     text(func(s *Settings) *string { return &s.AgentCheckListen }),
			check: func(s Settings) error { return hostPort("agent-check", s.AgentCheckListen, ":8081") }},
		{Key: KeyWatch, OldFlags: []string{"watch-checks"},
			Doc: "watch the load balancers' health checks of the forward ports: a withdraw ends once each took the server out (fall refusals), a restore once each put it back (rise); false waits drain.min_wait and confirms nothing",
			v:   boolean(func(s *Settings) *bool { return &s.Checks.Watch })},
		{Key: KeyFall, OldFlags: []string{"fall"}, Doc: "HAProxy's fall of the primary entries: `N` refused checks take the server out",
			v: count(func(s *Settings) *int { return &s.Checks.Fall }), check: func(s Settings) error { return checkCount("fall", s.Checks.Fall) }},
		{Key: KeyRise, OldFlags: []string{"rise"}, Doc: "HAProxy's rise: `N` accepted checks put it back",
			v: count(func(s *Settings) *int { return &s.Checks.Rise }), check: func(s Settings) error { return checkCount("rise", s.Checks.Rise) }},
		{Key: KeyLoadBalancers, Doc: "the load balancers' addresses or networks (`CIDR`, repeatable): only their checks are learned, so that SYNs from spoofed addresses cannot take their place; empty: any source, steady ones ranking above newcomers",
			v: listOf(func(s *Settings) *[]netip.Prefix { return &s.LoadBalancers }, ParsePrefix, netip.Prefix.String)},
	}
}

// drainTable: when a withdrawn server is drained (drain.Policy; its
// checks span the settings, Validate's).
func drainTable() []*Setting {
	d := func(get func(*drain.Policy) *time.Duration) value {
		return duration(func(s *Settings) *time.Duration { return get(&s.Policy) })
	}
	return []*Setting{
		{Key: KeyPoll, OldFlags: []string{"poll"}, Doc: "read the connection table every `DURATION`",
			v: d(func(p *drain.Policy) *time.Duration { return &p.Poll })},
		{Key: KeyMinWait, OldFlags: []string{"min-wait"}, Doc: "never call the server drained before `DURATION` (covers HAProxy's time to mark it DOWN, when no load balancer's checks are seen)",
			v: d(func(p *drain.Policy) *time.Duration { return &p.MinWait })},
		{Key: KeyQuiet, OldFlags: []string{"quiet"}, Doc: "drained once no active connection has been seen for `DURATION`",
			v: d(func(p *drain.Policy) *time.Duration { return &p.Quiet })},
		{Key: KeyIdleAfter, OldFlags: []string{"idle-after"}, Doc: "a connection with no data for `DURATION` is idle and does not count",
			v: d(func(p *drain.Policy) *time.Duration { return &p.IdleAfter })},
		{Key: KeyDeadline, OldFlags: []string{"deadline"}, Doc: "stop waiting after `DURATION`",
			v: d(func(p *drain.Policy) *time.Duration { return &p.Deadline })},
		{Key: KeyGrace, OldFlags: []string{"grace"},
			Doc: "restart: once every load balancer took the server out, wait at most `DURATION` for the requests then in flight (sticky users who keep coming are not waited for; the graceful restart finishes their requests)",
			v:   d(func(p *drain.Policy) *time.Duration { return &p.Grace })},
		{Key: KeyOnDeadline, OldFlags: []string{"on-deadline"}, Doc: "at the deadline: proceed (report and go on) or abort (exit 3)",
			v: textOf(func(s *Settings) *drain.OnDeadline { return &s.Policy.OnDeadline }, parseOnDeadline,
				func(o drain.OnDeadline) string { return string(o) })},
		{Key: KeyIgnore, OldFlags: []string{"ignore"}, Doc: "never count connections from `CIDR` (monitoring); repeatable",
			v: listOf(func(s *Settings) *[]netip.Prefix { return &s.Policy.Ignore }, ParsePrefix, netip.Prefix.String)},
	}
}

// parseOnDeadline is the file's and the flag's: it names the setting as
// the file always has.
func parseOnDeadline(t string) (drain.OnDeadline, error) {
	o, err := ParseOnDeadline(t)
	if err != nil {
		return o, fmt.Errorf("on_deadline %w", err)
	}
	return o, nil
}

// commandTable: the web server's commands, its readiness, the reboot.
func commandTable() []*Setting {
	return []*Setting{
		{Key: KeyWebServer, Doc: "`NAME` of the web server whose config test and reload the commands default to: apache (apache2ctl -t; systemctl reload apache2.service where systemd runs it, else apache2ctl -k graceful), nginx (nginx -t; systemctl reload nginx.service, else nginx -s reload), or custom (set both commands)",
			v:     text(func(s *Settings) *string { return &s.WebServer }),
			check: func(s Settings) error { _, err := runner.ParseWebServer(s.WebServer); return err }},
		{Key: KeyConfigTestCmd, OldKeys: []string{"restart.configtest_cmd"}, OldJSON: []string{"configtest.command"},
			Doc: "config test `COMMAND` (run with sh -c); " + runner.AutoConfigTest + ": the web server's",
			v:   text(func(s *Settings) *string { return &s.ConfigTest.Line }),
			check: func(s Settings) error {
				return set("configtest", s.ConfigTest.Line, runner.AutoConfigTest+": the web server's")
			}},
		{Key: KeyConfigTestTimeout, OldKeys: []string{"restart.configtest_timeout"}, Doc: "give the config test `DURATION`",
			v:     duration(func(s *Settings) *time.Duration { return &s.ConfigTest.Timeout }),
			check: func(s Settings) error { return positive("configtest", s.ConfigTest.Timeout) }},
		{Key: KeyRestartCmd, OldKeys: []string{"restart.restart_cmd"}, OldJSON: []string{"restart.command"},
			Doc: "graceful restart `COMMAND` (run with sh -c); " + runner.AutoRestart + ": the web server's reload, through systemd where systemd runs it",
			v:   text(func(s *Settings) *string { return &s.Restart.Line }),
			check: func(s Settings) error {
				return set("restart", s.Restart.Line, runner.AutoRestart+": the web server's reload")
			}},
		{Key: KeyRestartTimeout, OldKeys: []string{"restart.restart_timeout"}, Doc: "give the restart `DURATION`",
			v:     duration(func(s *Settings) *time.Duration { return &s.Restart.Timeout }),
			check: func(s Settings) error { return positive("restart", s.Restart.Timeout) }},
		{Key: KeyReadyURL, DefaultText: "http://127.0.0.1:PORT/, PORT the first forward's service port", Doc: "readiness check `URL`, checked before the forward is restored",
			v:     text(func(s *Settings) *string { return &s.Ready.URL }),
			check: func(s Settings) error { return checkURL(s.Ready.URL) }},
		{Key: KeyReadyStatus, OldJSON: []string{"ready.accept"}, Doc: "HTTP `STATUSES` that mean ready: codes and ranges, e.g. 200 or 200,301 (redirects are not followed)",
			v: scalar[ready.Statuses]{k: Text, get: func(s *Settings) *ready.Statuses { return &s.Ready.Accept },
				parse: ready.ParseStatuses, format: ready.Statuses.String, joins: true},
			check: func(s Settings) error {
				if len(s.Ready.Accept) == 0 {
					return fmt.Errorf("ready: no accepted status")
				}
				return nil
			}},
		{Key: KeyReadyHost, Doc: "`HOST` header of the readiness check (the site's name, when the URL is an address)",
			v: text(func(s *Settings) *string { return &s.Ready.Host })},
		{Key: KeyReadyTimeout, Doc: "give the web server `DURATION` to answer",
			v:     duration(func(s *Settings) *time.Duration { return &s.Ready.Timeout }),
			check: func(s Settings) error { return positive("ready", s.Ready.Timeout) }},
		{Key: KeyRebootCmd, OldJSON: []string{"reboot.command.command"}, Doc: "maintenance reboot's `COMMAND` (run with sh -c)",
			v: text(func(s *Settings) *string { return &s.Reboot.Command.Line }),
			check: func(s Settings) error {
				return set("reboot", s.Reboot.Command.Line, "systemctl reboot, unless the host reboots otherwise")
			}},
		{Key: KeyRebootTimeout, Doc: "a host still on the same boot `DURATION` after the reboot command did not reboot: held, no second try",
			v:     duration(func(s *Settings) *time.Duration { return &s.Reboot.Timeout }),
			check: func(s Settings) error { return positive("reboot", s.Reboot.Timeout) }},
		{Key: KeyRebootReadyTimeout, OldFlags: []string{"boot-ready-timeout"}, Doc: "after a reboot, give the web server `DURATION` to answer (else held, and in a pool the slot is kept)",
			v:     duration(func(s *Settings) *time.Duration { return &s.Reboot.ReadyTimeout }),
			check: func(s Settings) error { return positive("boot ready", s.Reboot.ReadyTimeout) }},
		{Key: KeyWebUnitWait, Doc: "a stop of the web server's unit by someone else (systemctl, dpkg, needrestart, a shutdown) waits at most `DURATION` for a pool slot, then as long for the drain, and goes ahead (over the budget if no slot came); keep twice it below the guard unit's TimeoutStopSec (5m)",
			v: duration(func(s *Settings) *time.Duration { return &s.WebUnitWait }),
			check: func(s Settings) error {
				if s.WebUnitWait <= 0 || s.WebUnitWait > 2*time.Minute {
					return fmt.Errorf("web unit wait %v: must be above 0 and at most 2m (the guard unit's TimeoutStopSec is 5m)", s.WebUnitWait)
				}
				return nil
			}},
	}
}

// poolTable: the pool on etcd. Its checks span its settings (a
// certificate and its key), and apply only with a pool: Validate's, in
// Pool.validate.
func poolTable() []*Setting {
	t := func(get func(*Pool) *string) value { return text(func(s *Settings) *string { return get(&s.Pool) }) }
	return []*Setting{
		{Key: KeyPoolEtcd, DefaultText: "none: no pool, this host decides alone",
			Doc: "etcd's client `URL`s, comma-separated or repeated: take a slot of the pool before taking the server out",
			v:   endpointsOf(func(s *Settings) *[]string { return &s.Pool.Etcd })},
		{Key: KeyPoolName, Doc: "the pool's `NAME` (pools sharing one etcd never block each other)", v: t(func(p *Pool) *string { return &p.Name })},
		{Key: KeyPoolID, DefaultText: "the host name", Doc: "this host's `ID` in the pool", v: t(func(p *Pool) *string { return &p.ID })},
		{Key: KeyPoolMaxUnavailable, Doc: "at most `N` servers of the pool out at once, or P% of its members (at least 1)",
			v: textOf(func(s *Settings) *pool.Limit { return &s.Pool.MaxUnavailable }, pool.ParseLimit, pool.Limit.String)},
		{Key: KeyPoolWait, Doc: "an operation waits at most `DURATION` for a slot unless it says (then: busy, exit 11)",
			v: duration(func(s *Settings) *time.Duration { return &s.Pool.Wait })},
		{Key: KeyPoolCAFile, OldFlags: []string{"pool-ca"}, Doc: "`FILE`: the CA of etcd's certificate (https endpoints)",
			v: t(func(p *Pool) *string { return &p.CAFile })},
		{Key: KeyPoolCertFile, OldFlags: []string{"pool-cert"}, Doc: "`FILE`: this host's client certificate for etcd",
			v: t(func(p *Pool) *string { return &p.CertFile })},
		{Key: KeyPoolKeyFile, OldFlags: []string{"pool-key"}, Doc: "`FILE`: its key (mode 0600 or stricter)",
			v: t(func(p *Pool) *string { return &p.KeyFile })},
		{Key: KeyPoolUsername, OldFlags: []string{"pool-user"}, Doc: "etcd `USER`, when etcd's auth is on",
			v: t(func(p *Pool) *string { return &p.Username })},
		{Key: KeyPoolPasswordFile, Doc: "`FILE` holding that user's password (mode 0600 or stricter)",
			v: t(func(p *Pool) *string { return &p.PasswordFile })},
		{Key: KeyPoolInsecureCreds, Doc: "allow a username and password or a client key with an http:// etcd endpoint, which sends them in clear (labs only; a warning at every start)",
			v: boolean(func(s *Settings) *bool { return &s.Pool.InsecureCredentials })},
	}
}

// jsonOf is the setting's value as the JSON prints it.
func (st *Setting) jsonOf(s Settings) any { return st.v.json(s) }

// setJSON reads the setting's JSON value into s.
func (st *Setting) setJSON(s *Settings, raw json.RawMessage) error { return st.v.setJSON(s, raw) }

// limitsTable: the most a request may ask (maintenance.Limits). A
// request over one is refused, root's too; the agent's own settings must
// fit under them.
func limitsTable() []*Setting {
	d := func(get func(*Settings) *time.Duration) value { return duration(get) }
	return []*Setting{
		{Key: KeyMaxTTL, Doc: "a hold's TTL (maintenance enter --ttl) may be at most `DURATION` (a hold without one lasts until maintenance exit)",
			v:     d(func(s *Settings) *time.Duration { return &s.Limits.MaxTTL }),
			check: func(s Settings) error { return atLeast("max ttl", s.Limits.MaxTTL, "", 0) }},
		{Key: KeyMaxDeadline, Doc: "a request's drain deadline may be at most `DURATION`; only root may ask for more than drain.deadline (others may only shorten it, or make on_deadline abort)",
			v: d(func(s *Settings) *time.Duration { return &s.Limits.MaxDeadline }),
			check: func(s Settings) error {
				return atLeast("max deadline", s.Limits.MaxDeadline, KeyDeadline, s.Policy.Deadline)
			}},
		{Key: KeyMaxPoolWait, Doc: "a request may wait at most `DURATION` for a pool slot",
			v: d(func(s *Settings) *time.Duration { return &s.Limits.MaxPoolWait }),
			check: func(s Settings) error {
				return atLeast("max pool wait", s.Limits.MaxPoolWait, KeyPoolWait, s.Pool.Wait)
			}},
	}
}

// atLeast refuses a limit that is not positive, or below the agent's
// own setting of what it bounds (key's value v; none: "").
func atLeast(what string, limit time.Duration, key string, v time.Duration) error {
	if limit <= 0 {
		return fmt.Errorf("%s %v: must be positive", what, limit)
	}
	if key != "" && limit < v {
		return fmt.Errorf("%s %v: below %s %v, which it bounds", what, limit, key, v)
	}
	return nil
}
