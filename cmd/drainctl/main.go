// Command drainctl takes an app server out of an HAProxy pool, restarts its
// web server, and puts it back, without failing a request or losing a
// sticky session. See README.md.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/maintenance"
)

// Exit codes, documented in README.md. Scripts branch on them.
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
	{exitBusy, "another operation runs, or a maintenance holds the server (the message names who)"},
	{exitConfigTest, "the config test failed: nothing restarted, back in service"},
	{exitNotReady, "the readiness check failed: the server stays out"},
	{exitPermission, "the socket refused this user: use sudo or join its group"},
	{exitRestart, "the restart command failed: the server stays out"},
	{exitCommand, "the command of maintenance run failed or was interrupted: the server stays out (put back with --on-failure exit)"},
}

// exitCode maps an error to the exit code scripts see.
func exitCode(err error) int {
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	var ue usageError
	switch {
	case errors.As(err, &ue) || isCLIUsage(err):
		return exitUsage
	case errors.Is(err, api.ErrUnreachable):
		return exitUnreachable
	case errors.Is(err, api.ErrPermission):
		return exitPermission
	case errors.Is(err, drain.ErrDeadline):
		return exitDeadline
	}
	var me *maintenance.Error
	if errors.As(err, &me) {
		switch me.Code {
		case maintenance.CodeBusy:
			return exitBusy
		case maintenance.CodeDeadline:
			return exitDeadline
		case maintenance.CodeConfigTest:
			return exitConfigTest
		case maintenance.CodeNotReady:
			return exitNotReady
		case maintenance.CodeRestart:
			return exitRestart
		case maintenance.CodeCommand:
			return exitCommand
		case maintenance.CodeBadRequest:
			return exitUsage
		}
	}
	return exitError
}

// usageError marks errors in what the user asked for, as opposed to
// failures while doing it.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	app := newApp()
	err := app.Run(args)
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

// isCLIUsage recognises urfave/cli's own flag errors, which are plain
// errors: an unknown flag or a missing value.
func isCLIUsage(err error) bool {
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return false
	}
	return flagErr.MatchString(err.Error())
}

// logLevel is the agent's log level: info unless --log-level says.
func logLevel(c *cli.Context) slog.Level {
	lvl := slog.LevelInfo
	if c.IsSet("log-level") {
		lvl.UnmarshalText([]byte(c.String("log-level")))
	}
	return lvl
}

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
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "warn", Usage: "debug, info, warn or error (the agent logs at info unless set)", EnvVars: []string{"DRAINCTL_LOG_LEVEL"}},
			socketFlag(),
		},
		Before: func(c *cli.Context) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return usagef("--log-level %q: want debug, info, warn or error", c.String("log-level"))
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
			return nil
		},
		Commands: []*cli.Command{statusCommand(), maintenanceCommand(), restartCommand(), eventsCommand(), historyCommand(), agentCommand(), configCommand(),
			forwardCommand(), connectionsCommand(), waitDrainedCommand(), haproxyConfigCommand(), haproxyCheckCommand(),
			completionCommand(), manCommand()},
		// Completion asks the binary (completion.bash): it lists commands
		// and flags and runs no action.
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		// Errors are printed once, by run.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
	}
}
