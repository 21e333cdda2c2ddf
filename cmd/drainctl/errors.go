package main

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/drain"
)

// exitCode maps an error to the exit code scripts see (main.go lists
// them). The agent's errors arrive as an *apitype.Error whose Code
// survives the API; the client's own as sentinels.
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
	// Codes the agent answers with. An unknown one (a newer agent) is a
	// plain failure: exit 1 is never wrong about where the server is.
	var me *apitype.Error
	if errors.As(err, &me) {
		if code, ok := exitByCode[me.Code]; ok {
			return code
		}
	}
	return exitError
}

// exitByCode maps the agent's codes to exit codes; the others
// (internal, agent-stopping) are exit 1.
var exitByCode = map[apitype.Code]int{
	apitype.CodeBusy:            exitBusy,
	apitype.CodeDeadline:        exitDeadline,
	apitype.CodeConfigTest:      exitConfigTest,
	apitype.CodeNotReady:        exitNotReady,
	apitype.CodeRestart:         exitRestart,
	apitype.CodeCommand:         exitCommand,
	apitype.CodeBadRequest:      exitUsage,
	apitype.CodePoolBusy:        exitPoolBusy,
	apitype.CodePoolUnavailable: exitPoolUnavailable,
	apitype.CodeOutsideWindow:   exitOutsideWindow,
	apitype.CodeRebootFailed:    exitRebootFailed,
	apitype.CodeForbidden:       exitForbidden,
}

// usageError marks errors in what the user asked for, as opposed to
// failures while doing it: they exit 2, and nothing was changed.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// noArgs refuses arguments to a command that takes none, rather than
// ignoring what may be a mistyped flag.
func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("unexpected argument %q", c.Args().First())
	}
	return nil
}

// flagErr matches urfave/cli's own flag errors, which are plain errors
// (no type to test for): an unknown flag, a missing or bad value, a
// required flag not given.
var flagErr = regexp.MustCompile(`^flag provided but not defined|^flag needs an argument|^invalid value|^Required flag`)

// isCLIUsage recognises those errors, so that they exit 2 as ours do.
func isCLIUsage(err error) bool {
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return false
	}
	return flagErr.MatchString(err.Error())
}
