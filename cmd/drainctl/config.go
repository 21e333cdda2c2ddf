package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// configCommand holds config check, which validates a configuration
// before the agent is restarted on it: the same settings, the same
// errors with the file's lines, nothing started.
func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "configuration file tools",
		Subcommands: []*cli.Command{{
			Name:   "check",
			Usage:  "validate the configuration file (and flags) and print the agent's settings",
			Flags:  append([]cli.Flag{configFlag()}, flagsOf(agentSettingFlags())...),
			Action: runConfigCheck,
		}},
	}
}

// runConfigCheck makes the settings as the agent would, prints them, and
// says OK on stderr, so that stdout stays the JSON.
func runConfigCheck(c *cli.Context) error {
	s, err := agentSettings(c)
	if err != nil {
		return err
	}
	if err := printJSON(s); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "configuration OK")
	return nil
}
