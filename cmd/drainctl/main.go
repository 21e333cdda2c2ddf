// Command drainctl takes an app server out of an HAProxy pool, restarts its
// web server, and puts it back, without failing a request or losing a
// sticky session. See README.md.
//
// This file is the map: the commands, one a line, and the exit codes.
// Each command has a file of its own (status.go holds statusCommand and
// runStatus); the flags several commands share are in flags.go, the
// agent's settings in settings.go, and output formatting in format.go.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(run(os.Args))
}

// newApp builds the CLI. Commands and flags are made afresh on each call,
// never kept in package variables: urfave/cli writes into them as it
// parses (an environment variable becomes a flag's Value, a help flag is
// appended), and the tests build the app more than once in one process.
func newApp() *cli.App {
	cli.VersionPrinter = func(*cli.Context) { fmt.Println(versionText()) }
	v, _, _ := versionInfo()
	return &cli.App{
		Name:    "drainctl",
		Version: v,
		Usage:   "take an app server out of an HAProxy pool and back, without losing a request",
		Description: "drainctl owns a NAT forward (81→80 by default) that HAProxy health-checks.\n" +
			"Withdrawing it takes the server out for new users while users with a\n" +
			"persistence cookie still reach it through HAProxy's backup entry.",
		Flags:  []cli.Flag{logLevelFlag(), socketFlag()},
		Before: setupLogging,
		Commands: []*cli.Command{
			statusCommand(),        // status.go
			maintenanceCommand(),   // maintenance.go: enter, exit, status; maintenance_run.go: run
			restartCommand(),       // restart.go
			poolCommand(),          // pool.go: status, release, forget, pause, resume, set
			eventsCommand(),        // events.go
			historyCommand(),       // history.go
			agentCommand(),         // agent.go, its settings in settings.go
			configCommand(),        // config.go: check
			forwardCommand(),       // forward.go: apply, withdraw, restore, remove, status
			connectionsCommand(),   // connections.go
			waitDrainedCommand(),   // wait_drained.go
			haproxyConfigCommand(), // haproxy_config.go
			haproxyCheckCommand(),  // haproxy_check.go
			doctorCommand(),        // doctor.go
			hookCommand(),          // hook.go: stopping, started (the guard unit's)
			completionCommand(),    // completion.go
			manCommand(),           // man.go (hidden)
		},
		// Completion asks the binary (completion.bash): it lists commands
		// and flags and runs no action.
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		// Errors are printed once, by run: urfave/cli's handler would
		// print them and exit itself, skipping the mapping to our codes.
		ExitErrHandler: func(*cli.Context, error) {},
		// A flag urfave/cli cannot parse is a usage error: exit 2.
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
	}
}

// run runs the CLI and returns the exit code; the error, if any, is
// printed once, escaped: it may carry a reason or output from others.
func run(args []string) int {
	err := newApp().Run(args)
	if err == nil {
		return exitOK
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		fmt.Fprintln(os.Stderr, safeText(ec.Error()))
	} else {
		fmt.Fprintf(os.Stderr, "drainctl: %s\n", safeText(err.Error()))
	}
	return exitCode(err)
}

// Exit codes. Scripts branch on them: README.md documents each with where
// it leaves the server, TestREADMEListsEveryExitCode holds README's table
// to exitCodes, and the integration tests pin the numbers.
const (
	exitOK    = 0
	exitError = 1 // the operation failed (netfilter, ...)
	exitUsage = 2 // bad flags, bad config: nothing was changed
	// exitDeadline: the drain deadline passed with active connections and
	// the policy said abort.
	exitDeadline    = 3
	exitUnreachable = 4 // no agent answers on the socket
	exitBusy        = 5 // another operation, or a held maintenance
	exitConfigTest  = 6 // config test failed: nothing restarted, server back
	exitNotReady    = 7 // readiness check failed: the server stays out
	exitPermission  = 8 // the socket refused this user
	exitRestart     = 9 // the restart command failed: the server stays out
	// exitCommand: the command of `maintenance run` failed (or was
	// interrupted); the server stays out unless --on-failure exit.
	exitCommand = 10
	// exitPoolBusy: no slot of the pool within --pool-wait; nothing was
	// changed. exitPoolUnavailable: etcd did not answer (down, no
	// quorum), so the server was not taken out.
	exitPoolBusy        = 11
	exitPoolUnavailable = 12
	// exitOutsideWindow: the --window is closed (or closed while waiting
	// for a slot): nothing was changed. exitRebootFailed: the reboot
	// command failed or the host did not reboot: the server stays out.
	exitOutsideWindow = 13
	exitRebootFailed  = 14
	// doctor's: the worst finding was a warning, or a failure (requests
	// will be lost, or drainctl's commands will fail).
	exitDoctorWarning = 15
	exitDoctorFail    = 16
	// exitForbidden: the agent refused the command to this user's role
	// (the message names the group to join); not 8, where the socket
	// itself refused the connection.
	exitForbidden = 17
)

// exitCodes describes each code for drainctl(8); README.md's table says
// the same with where each leaves the server.
var exitCodes = []struct {
	code    int
	meaning string
}{
	{exitOK, "done"},
	{exitError, "the operation failed (netfilter, the state file); the message says where"},
	{exitUsage, "bad usage or bad config: nothing was changed"},
	{exitDeadline, "the drain deadline passed with active connections and --on-deadline abort: back in service, nothing restarted"},
	{exitUnreachable, "no agent answers on the socket"},
	{exitBusy, "another operation runs, or a maintenance holds the server (the message names who); pool release or forget of a live member"},
	{exitConfigTest, "the config test failed: nothing restarted, back in service"},
	{exitNotReady, "the readiness check failed: the server stays out"},
	{exitPermission, "the socket refused this user: use sudo or join its group"},
	{exitRestart, "the restart command failed: the server stays out"},
	{exitCommand, "the command of maintenance run failed or was interrupted: the server stays out (put back with --on-failure exit)"},
	{exitPoolBusy, "no slot of the pool within --pool-wait (the message names who uses the budget, and why): nothing was changed"},
	{exitPoolUnavailable, "etcd did not answer (down, unreachable, no quorum): the server was not taken out"},
	{exitOutsideWindow, "outside the --window (or it closed while waiting for a pool slot): nothing was changed"},
	{exitRebootFailed, "the reboot command failed, or the host did not reboot: the server stays out"},
	{exitDoctorWarning, "doctor: warnings, nothing worse"},
	{exitDoctorFail, "doctor: a finding that will lose requests or make drainctl's commands fail"},
	{exitForbidden, "your role may not: the agent refused this command to this user (the message names the group to join, or says it is root's): nothing was changed"},
}
