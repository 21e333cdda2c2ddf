package main

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/agent"
	"github.com/drainctl/drainctl/pkg/config"
	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/metrics"
	"github.com/drainctl/drainctl/pkg/ready"
	"github.com/drainctl/drainctl/pkg/runner"
)

// The agent's settings are made in one way, here: agent.Defaults, the
// config file laid over them, then only the flags that were given. Each
// flag shows its default from agent.Defaults, and parses its value; the
// values are judged once, by agent.Settings' Validate, whose errors name
// the file's line when the file gave the setting.

// A setting is a flag that overrides one of the agent's settings.
type setting struct {
	key  string // the setting, as the config file names it (agent.Key*)
	flag cli.Flag
	// apply lays the flag's value over s; called only when it was given.
	apply func(c *cli.Context, s *agent.Settings) error
	// global: the flag is also the app's own (--socket), given before the
	// command or after it.
	global bool
}

// given says whether the flag was set on the command line or by its
// environment variable.
func (st setting) given(c *cli.Context) bool {
	name := st.flag.Names()[0]
	if !st.global {
		return c.IsSet(name)
	}
	for _, cc := range c.Lineage() {
		if cc.IsSet(name) {
			return true
		}
	}
	return false
}

// applySettings lays the given flags of sts over s and returns the keys
// they set.
func applySettings(c *cli.Context, s *agent.Settings, sts []setting) (map[string]bool, error) {
	given := map[string]bool{}
	for _, st := range sts {
		if !st.given(c) {
			continue
		}
		if err := st.apply(c, s); err != nil {
			return nil, err
		}
		given[st.key] = true
	}
	return given, nil
}

// flagsOf are the settings' flags, for a command's Flags.
func flagsOf(sts []setting) []cli.Flag {
	fs := make([]cli.Flag, len(sts))
	for i, st := range sts {
		fs[i] = st.flag
	}
	return fs
}

// The typed settings: each takes the flag without its Value, which it
// reads from agent.Defaults through field, the same accessor that
// applies the flag.

// textSetting: a string setting; the flag's text is taken as it is.
func textSetting(key string, f *cli.StringFlag, field func(*agent.Settings) *string) setting {
	d := agent.Defaults()
	f.Value = *field(&d)
	return setting{key: key, flag: f, apply: func(c *cli.Context, s *agent.Settings) error {
		*field(s) = c.String(f.Name)
		return nil
	}}
}

func durationSetting(key string, f *cli.DurationFlag, field func(*agent.Settings) *time.Duration) setting {
	d := agent.Defaults()
	f.Value = *field(&d)
	return setting{key: key, flag: f, apply: func(c *cli.Context, s *agent.Settings) error {
		*field(s) = c.Duration(f.Name)
		return nil
	}}
}

// countSetting: HAProxy's fall or rise; Validate checks the range, as it
// does the file's.
func countSetting(key string, f *cli.IntFlag, field func(*agent.Settings) *int) setting {
	d := agent.Defaults()
	f.Value = *field(&d)
	return setting{key: key, flag: f, apply: func(c *cli.Context, s *agent.Settings) error {
		*field(s) = c.Int(f.Name)
		return nil
	}}
}

func boolSetting(key string, f *cli.BoolFlag, field func(*agent.Settings) *bool) setting {
	d := agent.Defaults()
	f.Value = *field(&d)
	return setting{key: key, flag: f, apply: func(c *cli.Context, s *agent.Settings) error {
		*field(s) = c.Bool(f.Name)
		return nil
	}}
}

// agentSettingFlags are the flags of `drainctl agent` and `config check`,
// in the order --help lists them. A default that is a rule, not a value
// (socket-group, ready-url, forward's), is the flag's DefaultText.
func agentSettingFlags() []setting {
	d := agent.Defaults()
	sts := []setting{
		{key: agent.KeySocket, flag: socketFlag(), global: true, apply: func(c *cli.Context, s *agent.Settings) error {
			s.Socket = socketPath(c)
			return nil
		}},
		textSetting(agent.KeySocketGroup, &cli.StringFlag{Name: "socket-group", DefaultText: "drainctl if it exists, else root only",
			Usage: "`GROUP` allowed to use the socket"},
			func(s *agent.Settings) *string { return &s.SocketGroup }),
		textSetting(agent.KeyStateDir, &cli.StringFlag{Name: "state-dir", Usage: "`DIR` for the state file"},
			func(s *agent.Settings) *string { return &s.StateDir }),
		textSetting(agent.KeyBackend, &cli.StringFlag{Name: "backend", EnvVars: []string{"DRAINCTL_BACKEND"},
			Usage: "auto, nftables, iptables, iptables-nft or iptables-legacy"},
			func(s *agent.Settings) *string { return &s.Backend }),
		{key: agent.KeyForwards, flag: &cli.StringSliceFlag{Name: "forward", Aliases: []string{"f"}, DefaultText: fwSpecs(d.Forwards),
			Usage: "forward `FROM:TO`; repeat for several"}, apply: applyForwards},
		durationSetting(agent.KeyReconcile, &cli.DurationFlag{Name: "reconcile-interval",
			Usage: "poll iptables-legacy's fingerprint every `DURATION` (nftables changes are reported by the kernel)"},
			func(s *agent.Settings) *time.Duration { return &s.Reconcile }),
		textSetting(agent.KeyAgentCheckListen, &cli.StringFlag{Name: "agent-check-listen",
			Usage: "answer HAProxy's agent-check on TCP `HOST:PORT`, e.g. :8081: \"ready up\" in service, \"drain\" while out (haproxy-config --style agent-check)"},
			func(s *agent.Settings) *string { return &s.AgentCheckListen }),
		boolSetting(agent.KeyWatch, &cli.BoolFlag{Name: "watch-checks",
			Usage: "watch the load balancers' health checks of the forward ports: a withdraw ends once each took the server out (fall refusals), a restore once each put it back (rise); --watch-checks=false waits --min-wait and confirms nothing"},
			func(s *agent.Settings) *bool { return &s.Checks.Watch }),
		countSetting(agent.KeyFall, &cli.IntFlag{Name: "fall", Usage: "HAProxy's fall of the primary entries: `N` refused checks take the server out"},
			func(s *agent.Settings) *int { return &s.Checks.Fall }),
		countSetting(agent.KeyRise, &cli.IntFlag{Name: "rise", Usage: "HAProxy's rise: `N` accepted checks put it back"},
			func(s *agent.Settings) *int { return &s.Checks.Rise }),
		durationSetting(agent.KeyGrace, &cli.DurationFlag{Name: "grace",
			Usage: "restart: once every load balancer took the server out, wait at most `DURATION` for the requests then in flight (sticky users who keep coming are not waited for; the graceful restart finishes their requests)"},
			func(s *agent.Settings) *time.Duration { return &s.Policy.Grace }),
		textSetting(agent.KeyMetricsListen, &cli.StringFlag{Name: "metrics-listen",
			Usage: "also serve /metrics (Prometheus) on TCP `HOST:PORT`, e.g. 127.0.0.1:9188 (the socket always serves it)"},
			func(s *agent.Settings) *string { return &s.MetricsListen }),
		textSetting(agent.KeyWebServer, &cli.StringFlag{Name: "web-server",
			Usage: "`NAME` of the web server whose config test and reload the commands default to: apache (apache2ctl -t; systemctl reload apache2.service where systemd runs it, else apache2ctl -k graceful), nginx (nginx -t; systemctl reload nginx.service, else nginx -s reload), or custom (set both commands)"},
			func(s *agent.Settings) *string { return &s.WebServer }),
		textSetting(agent.KeyConfigTestCmd, &cli.StringFlag{Name: "configtest-cmd", Usage: "config test `COMMAND` (run with sh -c); auto: the web server's"},
			func(s *agent.Settings) *string { return &s.ConfigTest.Line }),
		durationSetting(agent.KeyConfigTestTime, &cli.DurationFlag{Name: "configtest-timeout", Usage: "`DURATION`"},
			func(s *agent.Settings) *time.Duration { return &s.ConfigTest.Timeout }),
		textSetting(agent.KeyRestartCmd, &cli.StringFlag{Name: "restart-cmd",
			Usage: "graceful restart `COMMAND` (run with sh -c); " + runner.AutoRestart + ": the web server's reload, through systemd where systemd runs it"},
			func(s *agent.Settings) *string { return &s.Restart.Line }),
		durationSetting(agent.KeyRestartTime, &cli.DurationFlag{Name: "restart-timeout", Usage: "`DURATION`"},
			func(s *agent.Settings) *time.Duration { return &s.Restart.Timeout }),
		textSetting(agent.KeyReadyURL, &cli.StringFlag{Name: "ready-url", DefaultText: "http://127.0.0.1:PORT/, PORT the first forward's service port",
			Usage: "readiness check `URL`"},
			func(s *agent.Settings) *string { return &s.Ready.URL }),
		{key: agent.KeyReadyStatus, flag: &cli.StringFlag{Name: "ready-status", Value: d.Ready.Accept.String(),
			Usage: "HTTP `STATUSES` that mean ready: codes and ranges, e.g. 200 or 200,301 (redirects are not followed)"},
			apply: applyReadyStatus},
		textSetting(agent.KeyReadyHost, &cli.StringFlag{Name: "ready-host",
			Usage: "`HOST` header of the readiness check (the site's name, when the URL is an address)"},
			func(s *agent.Settings) *string { return &s.Ready.Host }),
		durationSetting(agent.KeyReadyTimeout, &cli.DurationFlag{Name: "ready-timeout", Usage: "give the web server `DURATION` to answer"},
			func(s *agent.Settings) *time.Duration { return &s.Ready.Timeout }),
		textSetting(agent.KeyRebootCmd, &cli.StringFlag{Name: "reboot-cmd", Usage: "maintenance reboot's `COMMAND` (run with sh -c)"},
			func(s *agent.Settings) *string { return &s.Reboot.Command.Line }),
		durationSetting(agent.KeyRebootTimeout, &cli.DurationFlag{Name: "reboot-timeout",
			Usage: "a host still on the same boot `DURATION` after the reboot command did not reboot: held, no second try"},
			func(s *agent.Settings) *time.Duration { return &s.Reboot.Timeout }),
		durationSetting(agent.KeyBootReady, &cli.DurationFlag{Name: "boot-ready-timeout",
			Usage: "after a reboot, give the web server `DURATION` to answer (else held, and in a pool the slot is kept)"},
			func(s *agent.Settings) *time.Duration { return &s.Reboot.ReadyTimeout }),
	}
	return append(append(sts, policySettingFlags()...), poolSettingFlags()...)
}

// policySettingFlags set the drain policy: the agent's, and wait-drained's
// own. --grace is the agent's only: it acts once the load balancers
// confirmed the withdraw, which only the agent sees.
func policySettingFlags() []setting {
	return []setting{
		durationSetting(agent.KeyMinWait, &cli.DurationFlag{Name: "min-wait",
			Usage: "never call the server drained before `DURATION` (covers HAProxy's time to mark it DOWN)"},
			func(s *agent.Settings) *time.Duration { return &s.Policy.MinWait }),
		durationSetting(agent.KeyQuiet, &cli.DurationFlag{Name: "quiet", Usage: "drained once no active connection has been seen for `DURATION`"},
			func(s *agent.Settings) *time.Duration { return &s.Policy.Quiet }),
		durationSetting(agent.KeyIdleAfter, &cli.DurationFlag{Name: "idle-after", Usage: "a connection with no data for `DURATION` is idle and does not count"},
			func(s *agent.Settings) *time.Duration { return &s.Policy.IdleAfter }),
		durationSetting(agent.KeyDeadline, &cli.DurationFlag{Name: "deadline", Usage: "stop waiting after `DURATION`"},
			func(s *agent.Settings) *time.Duration { return &s.Policy.Deadline }),
		{key: agent.KeyOnDeadline, flag: &cli.StringFlag{Name: "on-deadline", Value: string(agent.Defaults().Policy.OnDeadline),
			Usage: "at the deadline: proceed (report and go on) or abort (exit 3)"}, apply: applyOnDeadline},
		{key: agent.KeyIgnore, flag: &cli.StringSliceFlag{Name: "ignore", Usage: "never count connections from `CIDR` (monitoring); repeatable"},
			apply: applyIgnore},
		durationSetting(agent.KeyPoll, &cli.DurationFlag{Name: "poll", Usage: "read the connection table every `DURATION`"},
			func(s *agent.Settings) *time.Duration { return &s.Policy.Poll }),
	}
}

// The settings that parse their flag's text: their errors name the value
// (and the flag where the parser's message does not), as the file's
// decoders do with the line.

func applyForwards(c *cli.Context, s *agent.Settings) error {
	fs, err := parseForwards(c.StringSlice("forward"))
	s.Forwards = fs
	return err
}

func applyReadyStatus(c *cli.Context, s *agent.Settings) error {
	accept, err := ready.ParseStatuses(c.String("ready-status"))
	s.Ready.Accept = accept
	return err
}

func applyOnDeadline(c *cli.Context, s *agent.Settings) error {
	o, err := parseOnDeadlineFlag(c)
	s.Policy.OnDeadline = o
	return err
}

func applyIgnore(c *cli.Context, s *agent.Settings) error {
	// The flags replace the file's list rather than add to it, as every
	// flag replaces its setting.
	s.Policy.Ignore = nil
	for _, v := range c.StringSlice("ignore") {
		p, err := config.ParsePrefix(v)
		if err != nil {
			return fmt.Errorf("--ignore %w", err)
		}
		s.Policy.Ignore = append(s.Policy.Ignore, p)
	}
	return nil
}

// parseOnDeadlineFlag reads --on-deadline, wherever it is given: the
// agent's, an operation's, wait-drained's. The check itself is
// config.ParseOnDeadline's, the file's too.
func parseOnDeadlineFlag(c *cli.Context) (o drain.OnDeadline, err error) {
	o, err = config.ParseOnDeadline(c.String("on-deadline"))
	if err != nil {
		return o, fmt.Errorf("--on-deadline %w", err)
	}
	return o, nil
}

// parseForwards reads --forward's FROM:TO values; whether they go
// together (a port forwarded twice) is Validate's business.
func parseForwards(specs []string) ([]forward.Forward, error) {
	var fs []forward.Forward
	for _, spec := range specs {
		f, err := forward.Parse(spec)
		if err != nil {
			return nil, err
		}
		fs = append(fs, f)
	}
	return fs, nil
}

// loadConfig lays the configuration file over s: --config's (or
// DRAINCTL_CONFIG's), else the default one if it exists. Every command
// that reads the file reads it here.
func loadConfig(c *cli.Context, s *agent.Settings) (*config.Source, error) {
	if p := c.String("config"); p != "" {
		return config.Load(p, s)
	}
	return config.LoadDefault(s)
}

// agentSettings are the settings `drainctl agent` runs with and `config
// check` prints.
func agentSettings(c *cli.Context) (agent.Settings, error) {
	s := agent.Defaults()
	src, err := loadConfig(c, &s)
	if err != nil {
		return s, usageError{err}
	}
	given, err := applySettings(c, &s, agentSettingFlags())
	if err != nil {
		return s, usageError{err}
	}
	// For drainctl_build_info: which binary a host runs, fleet-wide.
	v, commit, _ := versionInfo()
	s.Build = metrics.Build{Version: v, Commit: commit, GoVersion: runtime.Version()}
	// After the flags: the readiness URL follows the forwards they gave.
	s.Resolve(c.Context)
	if err := s.Validate(); err != nil {
		return s, usageError{locate(err, src, given)}
	}
	return s, nil
}

// locate names the file's line of a setting Validate refused, unless a
// flag gave it after the file: the error then names the flag's value.
func locate(err error, src *config.Source, given map[string]bool) error {
	var se *agent.SettingError
	if errors.As(err, &se) && given[se.Key] {
		return err
	}
	return src.Locate(err)
}
