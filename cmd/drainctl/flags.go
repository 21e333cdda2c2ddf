package main

import (
	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/config"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/settings"
)

// The flags several commands share, each defined once. They are
// functions: a flag value must not be shared between commands (see
// newApp). The agent's settings flags are in settings.go.

// socketFlag is --socket on the app and on each command that talks to
// the agent, so that it works before or after the command name.
func socketFlag() cli.Flag {
	return &cli.StringFlag{Name: "socket", EnvVars: []string{"DRAINCTL_SOCKET"},
		DefaultText: api.DefaultSocket, Usage: "the agent's control socket `PATH`"}
}

// socketPath finds --socket where it was set (this command or the
// app's, or DRAINCTL_SOCKET), else the default.
func socketPath(c *cli.Context) string {
	for _, cc := range c.Lineage() {
		if cc.IsSet("socket") {
			return cc.String("socket")
		}
	}
	return api.DefaultSocket
}

// configFlag is --config of every command that reads the config file
// (loadConfig, in settings.go).
func configFlag() cli.Flag {
	return &cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"DRAINCTL_CONFIG"},
		DefaultText: config.DefaultPath + " if it exists", Usage: "configuration `FILE`"}
}

// jsonFlag is --json; usage says what the command prints with it (a
// document, or lines as they come).
func jsonFlag(usage string) cli.Flag { return &cli.BoolFlag{Name: "json", Usage: usage} }

// The usages of --json.
const (
	jsonForScripts = "print JSON for scripts"
	jsonOpLines    = "print progress and the result as JSON lines"
)

// haproxyForwardFlag is the forward the haproxy commands write or check
// against: one, the agent's default unless given.
func haproxyForwardFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "forward", Aliases: []string{"f"}, Value: settings.Defaults().Forwards[0].String(), Usage: usage}
}

// haproxyForward reads haproxyForwardFlag.
func haproxyForward(c *cli.Context) (forward.Forward, error) {
	f, err := forward.Parse(c.String("forward"))
	if err != nil {
		return f, usageError{err}
	}
	return f, nil
}

// completeVisibleFlags completes cmd's flags as urfave/cli does, but
// leaves out the hidden ones (it offers every flag but hidden booleans).
func completeVisibleFlags(cmd *cli.Command) cli.BashCompleteFunc {
	return func(c *cli.Context) {
		visible := *cmd
		visible.Flags = cmd.VisibleFlags()
		cli.DefaultCompleteWithFlags(&visible)(c)
	}
}
