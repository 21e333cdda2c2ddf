package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/agent"
	"github.com/drainctl/drainctl/pkg/config"
	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/jsonms"
	"github.com/drainctl/drainctl/pkg/metrics"
	"github.com/drainctl/drainctl/pkg/ready"
	"github.com/drainctl/drainctl/pkg/runner"
)

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "run the agent: own the forwards, serve the control socket",
		Description: "The daemon of each app server (systemd/drainctl.service runs it). It applies\n" +
			"the forwards at start, converges from its state file after a crash, puts the\n" +
			"rules back within --reconcile-interval when a firewall reload removes them,\n" +
			"and serves `drainctl status`, `maintenance` and `restart` on --socket.\n\n" +
			"Settings come from the config file (" + config.DefaultPath + " or --config),\n" +
			"and every flag overrides the file. Several agents can run side by side (one\n" +
			"per network namespace) with their own --socket and --state-dir.",
		Flags: append(append([]cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"DRAINCTL_CONFIG"}, Usage: "configuration `FILE` (default " + config.DefaultPath + " if it exists)"},
			socketFlag(),
			&cli.StringFlag{Name: "socket-group", Usage: "`GROUP` allowed to use the socket (default: drainctl if it exists, else root only)"},
			&cli.StringFlag{Name: "state-dir", Value: agent.Defaults().StateDir, Usage: "`DIR` for the state file"},
			&cli.StringFlag{Name: "backend", Value: "auto", EnvVars: []string{"DRAINCTL_BACKEND"}, Usage: "auto, nftables, iptables, iptables-nft or iptables-legacy"},
			&cli.StringSliceFlag{Name: "forward", Aliases: []string{"f"}, Usage: "forward `FROM:TO`; repeat for several (default: 81:80)"},
			&cli.DurationFlag{Name: "reconcile-interval", Value: time.Duration(agent.Defaults().Reconcile), Usage: "poll iptables-legacy's fingerprint every `DURATION` (nftables changes are reported by the kernel)"},
			&cli.StringFlag{Name: "agent-check-listen", Usage: "answer HAProxy's agent-check on TCP `HOST:PORT`, e.g. :8081: \"ready up\" in service, \"drain\" while out (haproxy-config --style agent-check)"},
			&cli.BoolFlag{Name: "watch-checks", Value: true, Usage: "watch the load balancers' health checks of the forward ports: a withdraw ends once each took the server out (fall refusals), a restore once each put it back (rise); --watch-checks=false waits --min-wait and confirms nothing"},
			&cli.IntFlag{Name: "fall", Value: 2, Usage: "HAProxy's fall of the primary entries: `N` refused checks take the server out"},
			&cli.IntFlag{Name: "rise", Value: 2, Usage: "HAProxy's rise: `N` accepted checks put it back"},
			&cli.DurationFlag{Name: "grace", Value: drain.DefaultPolicy().Grace, Usage: "restart: once every load balancer took the server out, wait at most `DURATION` for the requests then in flight (sticky users who keep coming are not waited for; the graceful restart finishes their requests)"},
			&cli.StringFlag{Name: "metrics-listen", Usage: "also serve /metrics (Prometheus) on TCP `HOST:PORT`, e.g. 127.0.0.1:9188 (the socket always serves it)"},
			&cli.StringFlag{Name: "configtest-cmd", Value: runner.DefaultConfigTest, Usage: "config test `COMMAND` (run with sh -c)"},
			&cli.DurationFlag{Name: "configtest-timeout", Value: 30 * time.Second, Usage: "`DURATION`"},
			&cli.StringFlag{Name: "restart-cmd", Value: runner.AutoRestart, Usage: "graceful restart `COMMAND` (run with sh -c); auto: \"" + runner.SystemdRestart + "\" where systemd runs Apache, else \"" + runner.ApachectlRestart + "\""},
			&cli.DurationFlag{Name: "restart-timeout", Value: 60 * time.Second, Usage: "`DURATION`"},
			&cli.StringFlag{Name: "ready-url", Usage: "readiness check `URL` (default: http://127.0.0.1:PORT/, PORT the first forward's service port)"},
			&cli.StringFlag{Name: "ready-status", Value: ready.DefaultStatuses, Usage: "HTTP `STATUSES` that mean ready: codes and ranges, e.g. 200 or 200,301 (redirects are not followed)"},
			&cli.StringFlag{Name: "ready-host", Usage: "`HOST` header of the readiness check (the site's name, when the URL is an address)"},
			&cli.DurationFlag{Name: "ready-timeout", Value: 15 * time.Second, Usage: "give the web server `DURATION` to answer"},
		}, policyFlags()...), &cli.BoolFlag{Name: "check", Usage: "validate the settings, print them, and exit"}),
		Action: runAgent,
	}
}

// agentSettings merges defaults, the config file and flags (flags win).
func agentSettings(c *cli.Context) (agent.Settings, error) {
	var file *config.File
	var err error
	if p := c.String("config"); p != "" {
		file, err = config.Load(p)
	} else {
		file, err = config.LoadDefault()
	}
	if err != nil {
		return agent.Settings{}, usageError{err}
	}
	str := func(flag, fromFile, def string) string {
		if c.IsSet(flag) {
			return c.String(flag)
		}
		if fromFile != "" {
			return fromFile
		}
		return def
	}
	dur := func(flag string, fromFile config.Duration, def time.Duration) time.Duration {
		if c.IsSet(flag) {
			return c.Duration(flag)
		}
		if fromFile != 0 {
			return time.Duration(fromFile)
		}
		return def
	}
	s := agent.Settings{
		Socket:      socketPathOr(c, file.Socket),
		SocketGroup: str("socket-group", file.SocketGroup, ""),
		StateDir:    str("state-dir", file.StateDir, agent.Defaults().StateDir),
		Backend:     str("backend", file.Backend, "auto"),
		Reconcile:   jsonms.Duration(dur("reconcile-interval", file.Reconcile, time.Duration(agent.Defaults().Reconcile))),
	}
	s.MetricsListen = str("metrics-listen", file.MetricsListen, "")
	s.AgentCheckListen = str("agent-check-listen", file.AgentCheckListen, "")
	count := func(flag string, fromFile config.Count) int {
		if c.IsSet(flag) || fromFile == 0 {
			return c.Int(flag)
		}
		return int(fromFile)
	}
	s.Checks = agent.Checks{Watch: c.Bool("watch-checks"), Fall: count("fall", file.HealthChecks.Fall), Rise: count("rise", file.HealthChecks.Rise)}
	if !c.IsSet("watch-checks") && file.HealthChecks.Watch != nil {
		s.Checks.Watch = *file.HealthChecks.Watch
	}
	v, commit, _ := versionInfo()
	s.Build = metrics.Build{Version: v, Commit: commit, GoVersion: runtime.Version()}
	if c.IsSet("forward") {
		for _, f := range c.StringSlice("forward") {
			fw, err := forwardParse(f)
			if err != nil {
				return s, err
			}
			s.Forwards = append(s.Forwards, fw)
		}
	} else if len(file.Forwards) > 0 {
		s.Forwards = file.Forwards
	} else {
		s.Forwards = append(s.Forwards, defaultForward)
	}
	d := drain.DefaultPolicy()
	s.Policy = drain.Policy{
		Poll:       dur("poll", file.Drain.Poll, d.Poll),
		MinWait:    dur("min-wait", file.Drain.MinWait, d.MinWait),
		Quiet:      dur("quiet", file.Drain.Quiet, d.Quiet),
		IdleAfter:  dur("idle-after", file.Drain.IdleAfter, d.IdleAfter),
		Deadline:   dur("deadline", file.Drain.Deadline, d.Deadline),
		Grace:      dur("grace", file.Drain.Grace, d.Grace),
		OnDeadline: drain.OnDeadline(str("on-deadline", string(file.Drain.OnDeadline), string(d.OnDeadline))),
	}
	if c.IsSet("ignore") {
		for _, v := range c.StringSlice("ignore") {
			p, err := config.ParsePrefix(v)
			if err != nil {
				return s, usagef("--ignore %w", err)
			}
			s.Policy.Ignore = append(s.Policy.Ignore, p)
		}
	} else {
		for _, p := range file.Drain.Ignore {
			s.Policy.Ignore = append(s.Policy.Ignore, netipPrefix(p))
		}
	}
	s.ConfigTest = runner.Command{Line: str("configtest-cmd", file.Restart.ConfigTestCmd, runner.DefaultConfigTest),
		Timeout: dur("configtest-timeout", file.Restart.ConfigTestTimeout, 30*time.Second)}
	s.Restart = runner.Command{Line: str("restart-cmd", file.Restart.RestartCmd, runner.AutoRestart),
		Timeout: dur("restart-timeout", file.Restart.RestartTimeout, 60*time.Second)}
	if s.Restart.Line == runner.AutoRestart {
		s.Restart.Line, s.RestartReason = runner.DetectRestart(c.Context)
	}
	s.Ready = ready.Check{
		URL:     str("ready-url", string(file.Ready.URL), fmt.Sprintf("http://127.0.0.1:%d/", s.Forwards[0].To)),
		Host:    str("ready-host", file.Ready.Host, ""),
		Timeout: dur("ready-timeout", file.Ready.Timeout, 15*time.Second),
	}
	accept, err := ready.ParseStatuses(str("ready-status", string(file.Ready.Status), ready.DefaultStatuses))
	if err != nil {
		return s, usageError{err}
	}
	s.Ready.Accept = accept
	if c.IsSet("ready-url") {
		if err := config.CheckURL(s.Ready.URL); err != nil {
			return s, usageError{err}
		}
	}
	if err := s.Validate(); err != nil {
		return s, usageError{err}
	}
	return s, nil
}

func runAgent(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("unexpected argument %q", c.Args().First())
	}
	s, err := agentSettings(c)
	if err != nil {
		return err
	}
	if c.Bool("check") {
		return printJSON(s)
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel(c)}))
	return agent.Run(ctx, s, log, nil)
}
