package main

import (
	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/api/apitype"
)

// restartCommand is the whole cycle, in the agent: drainctl's reason to
// be. The agent decides what a failure leaves behind (README.md's table),
// so that cron and an operator get the same outcome.
func restartCommand() *cli.Command {
	return &cli.Command{
		Name:  "restart",
		Usage: "the full cycle: withdraw, drain, config test, graceful restart, readiness, restore",
		Description: "A failed config test restarts nothing and puts the server back (exit 6). A\n" +
			"failed restart command or readiness check leaves the server out (exit 9, 7):\n" +
			"fix it, then `drainctl maintenance exit`.",
		Flags:  opFlags(false),
		Action: func(c *cli.Context) error { return runOp(c, apitype.OpRestart, client(c).Restart) },
	}
}
