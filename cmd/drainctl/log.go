package main

import (
	"io"
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

// newLogger logs text lines to stderr, the journal's input under
// systemd.
func newLogger(lvl slog.Level) *slog.Logger { return slog.New(logHandler(os.Stderr, lvl)) }

func logHandler(w io.Writer, lvl slog.Level) slog.Handler {
	opts := &slog.HandlerOptions{Level: lvl}
	if underSystemd() {
		opts.ReplaceAttr = dropTime
	}
	return slog.NewTextHandler(w, opts)
}

// underSystemd says whether systemd runs this process: it sets
// JOURNAL_STREAM when stderr goes to the journal, and INVOCATION_ID for
// every unit.
func underSystemd() bool {
	return os.Getenv("JOURNAL_STREAM") != "" || os.Getenv("INVOCATION_ID") != ""
}

// dropTime removes each record's time: journald stamps every line
// already, and a second stamp only makes the line longer.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
