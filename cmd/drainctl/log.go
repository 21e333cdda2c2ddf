package main

import (
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"
)

// logLevelFlag is the app's --log-level. The CLI's commands log little
// but warnings; the agent is a daemon whose journal should say what it
// did, so it logs at info unless the flag (or its variable) is given.
func logLevelFlag() cli.Flag {
	return &cli.StringFlag{Name: "log-level", Value: "warn", DefaultText: "warn; info for the agent",
		Usage: "debug, info, warn or error", EnvVars: []string{"DRAINCTL_LOG_LEVEL"}}
}

// setupLogging checks --log-level and makes the CLI's default logger.
func setupLogging(c *cli.Context) error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	slog.SetDefault(newLogger(lvl))
	return nil
}

// agentLogLevel is the agent's level: info unless --log-level says.
// setupLogging has checked the value.
func agentLogLevel(c *cli.Context) slog.Level {
	lvl := slog.LevelInfo
	if c.IsSet("log-level") {
		lvl.UnmarshalText([]byte(c.String("log-level")))
	}
	return lvl
}

// newLogger logs text lines to stderr, the journal's input under systemd.
func newLogger(lvl slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}
