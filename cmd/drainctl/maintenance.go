package main

import (
	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/api/apitype"
)

// maintenanceCommand groups the holds: enter and exit, run (a command
// between the two, maintenance_run.go), and status. Each is one request
// to the agent, which does the work and records it; the CLI only shows
// the progress, so a lost terminal changes nothing (the agent goes on).
func maintenanceCommand() *cli.Command {
	return &cli.Command{
		Name:  "maintenance",
		Usage: "take the server out of rotation and hold it out, or put it back",
		Subcommands: []*cli.Command{
			{
				Name:  "enter",
				Usage: "withdraw the forward, wait for the drain, hold the server out",
				Description: "New users go to other servers at once; users with this server's cookie keep\n" +
					"reaching it through HAProxy's backup entry. Returns when the server is drained\n" +
					"(or the drain deadline passed) and keeps it out until `maintenance exit` or\n" +
					"--ttl. Entering again changes nothing and says who holds the server.",
				Flags: opFlags(true),
				// Entering a held server is no error: a retried cron job
				// must not fail on its own hold.
				Action: func(c *cli.Context) error { return runOp(c, apitype.OpEnter, client(c).Enter) },
			},
			{
				Name:  "exit",
				Usage: "check the web server answers, then restore the forward",
				Description: "If the readiness check fails the server stays out and the command fails\n" +
					"(exit 7). Exiting a server that is in service changes nothing. While a\n" +
					"command of maintenance run holds the server, exit is busy (exit 5) unless\n" +
					"--force.",
				// No --deadline: exit does not drain; no --ttl: it ends a
				// hold.
				Flags: []cli.Flag{socketFlag(), jsonFlag(jsonOpLines),
					&cli.BoolFlag{Name: "force", Usage: "end the hold even while a command of maintenance run owns it (the command goes on)"}},
				Action: func(c *cli.Context) error { return runOp(c, apitype.OpExit, client(c).Exit) },
			},
			maintenanceRunCommand(),
			maintenanceRebootCommand(), // maintenance_reboot.go
			{
				Name:   "status",
				Usage:  "same as drainctl status",
				Flags:  []cli.Flag{socketFlag(), jsonFlag(jsonForScripts)},
				Action: runStatus,
			},
		},
	}
}
