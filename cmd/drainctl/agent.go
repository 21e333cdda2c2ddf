package main

import (
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/agent"
	"github.com/drainctl/drainctl/pkg/config"
)

// agentCommand runs the agent. Its flags are the settings (settings.go),
// the ones config check takes, plus --check.
func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "run the agent: own the forwards, serve the control socket",
		Description: "The daemon of each app server (systemd/drainctl.service runs it). It applies\n" +
			"the forwards at start, converges from its state file after a crash, and serves\n" +
			"`drainctl status`, `maintenance` and `restart` on --socket.\n\n" +
			"It puts its rules back as soon as something changes them (a firewall reload,\n" +
			"nft flush ruleset): the kernel reports every change of the nftables ruleset,\n" +
			"iptables-nft's included, as nft monitor shows them, and the agent checks its\n" +
			"rules at once. iptables-legacy reports nothing: its tables' fingerprint is\n" +
			"polled every --reconcile-interval, and the rules read only when it changed.\n\n" +
			"Settings come from the config file (" + config.DefaultPath + " or --config),\n" +
			"and every flag overrides the file. Several agents can run side by side (one\n" +
			"per network namespace) with their own --socket and --state-dir.",
		// --check is the agent's own: config check does the same with
		// the same flags, but has nothing to skip.
		Flags:  append(append([]cli.Flag{configFlag()}, flagsOf(agentSettingFlags())...), &cli.BoolFlag{Name: "check", Usage: "validate the settings, print them, and exit"}),
		Action: runAgent,
	}
}

// runAgent runs the agent until SIGTERM (systemctl stop) or SIGINT. Bad
// settings exit 2 before anything is touched: no socket, no rule, no
// state file. --check stops there and prints the settings, with the
// restart command auto chose.
func runAgent(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	s, err := agentSettings(c)
	if err != nil {
		return err
	}
	if c.Bool("check") {
		return printJSON(s)
	}
	// The signals end the context; the agent then finishes the change of
	// the rules in hand and exits, and the next start resumes from the
	// state file.
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log := newLogger(agentLogLevel(c))
	return agent.Run(ctx, s, log, nil)
}
