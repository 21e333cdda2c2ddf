package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/freetext"
	"github.com/drainctl/drainctl/pkg/supervise"
)

// maintenanceRunCommand is enter, a command, exit: the one way to patch a
// host without a step in between that could leave the server in
// rotation by mistake. Unlike the other operations, the command runs
// here, in the CLI, not in the agent: it is the operator's (their
// environment, their terminal), and the agent only holds the server for
// it.
func maintenanceRunCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "withdraw and drain, run a command, then check and restore; a failed command keeps the server out",
		ArgsUsage: "-- COMMAND [ARGS...]",
		Description: "For patch scripts and cron: `maintenance enter`, the command, `maintenance exit`,\n" +
			"with nothing in between that can leave the server in by mistake.\n\n" +
			"While the command runs the hold is its own: `restart`, `maintenance enter` and\n" +
			"`maintenance exit` by others answer busy (exit 5; `maintenance exit --force`\n" +
			"ends it). Its output is shown as it comes and written to --log. If it\n" +
			"fails, the server stays out, held with the command, its exit status and the\n" +
			"last line of its output as the reason, and drainctl exits 10; with\n" +
			"--on-failure exit it is put back anyway (still exit 10).\n\n" +
			"The command runs in its own process group with no input. Ctrl-C (SIGINT) or\n" +
			"SIGTERM is passed on to it; drainctl waits for it to end and records the\n" +
			"outcome (a second Ctrl-C kills it). A lost SSH session (SIGHUP) changes\n" +
			"nothing: the command goes on, and drainctl ends the hold when it ends,\n" +
			"writing to the log when the terminal is gone. If drainctl itself is killed\n" +
			"(SIGKILL), the server stays out, held by the run, until `maintenance exit --force`.\n\n" +
			"Example, from cron:\n\n" +
			"    drainctl maintenance run --reason 'security updates' -- apt-get -y upgrade",
		Flags: append(opFlags(false),
			&cli.DurationFlag{Name: "ttl", DefaultText: "no limit", Usage: "stop the command after `DURATION` (SIGTERM, SIGKILL 10s later); it counts as failed"},
			&cli.StringFlag{Name: "on-failure", Value: "hold", Usage: "when the command fails: hold (keep the server out) or exit (put it back)"},
			&cli.StringFlag{Name: "log", DefaultText: "/var/log/drainctl/run-TIME.log as root, else under ~/.local/state/drainctl",
				Usage: "write the command's output to `FILE`"},
		),
		Action: runMaintenanceRun,
	}
}

// runMaintenanceRun checks everything it can before the enter (the
// command exists, the log can be written), since after it a mistake
// means a server held out.
func runMaintenanceRun(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 {
		return usagef("maintenance run: no command; give it after --, e.g. drainctl maintenance run -- apt-get -y upgrade")
	}
	onFailure := c.String("on-failure")
	if onFailure != "hold" && onFailure != "exit" {
		return usagef("--on-failure %q: want hold or exit", onFailure)
	}
	req := flagRequest(c)
	// The run's --ttl bounds its command; the hold itself has none.
	ttl := req.TTL
	req.TTL, req.Command = 0, shellQuote(args)
	if ttl < 0 {
		return usagef("--ttl: must not be negative")
	}
	if err := checkRequest(apitype.OpEnter, req); err != nil {
		return err
	}
	if _, err := exec.LookPath(args[0]); err != nil {
		return usagef("maintenance run: %v", err)
	}
	log, err := openRunLog(c.String("log"))
	if err != nil {
		return err
	}
	defer log.Close()
	req.Log = log.Name()
	asJSON := c.Bool("json")
	cl := client(c)

	// A lost terminal must not end the run half-way: the outcome has to
	// reach the agent. Ctrl-C and SIGTERM go to the command instead.
	signal.Ignore(syscall.SIGHUP)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	// The enter, and later the exit, are not cancelled by those signals:
	// the agent finishes what it started either way.
	ctx := context.WithoutCancel(c.Context)
	if _, err := showOp(ctx, asJSON, cl.Enter, req); err != nil {
		return err
	}
	say := func(format string, a ...any) {
		if !asJSON {
			fmt.Printf(format+"\n", a...)
		}
	}
	say("running %s (output also in %s)", req.Command, log.Name())
	done := runLogged(args, log, ttl, sigs, asJSON, say)
	hold := done.ExitCode != 0 || done.Signal != ""
	if hold {
		say("%s %s", req.Command, api.CommandOutcome(done))
	}
	// The exit carries the outcome: the agent holds the server with it as
	// the reason, or puts the server back, and records it either way.
	done.Hold = hold && onFailure == "hold"
	_, err = showOp(ctx, asJSON, cl.Exit, apitype.Request{Who: label(), CommandDone: done})
	// Put back after a failure (--on-failure exit): still a failure, for
	// the script that ran it.
	if hold && err == nil {
		return cli.Exit(fmt.Sprintf("drainctl: %s %s; the server was put back (--on-failure exit)", req.Command, api.CommandOutcome(done)), exitCommand)
	}
	return err
}

// runLogged runs the command under supervise.Run with its output going
// to log, shown on stdout (stderr when quiet: stdout is for JSON), and
// tells the operator what is done to it. It returns the outcome and the
// end of the output, as the exit's request carries them.
func runLogged(args []string, log *os.File, ttl time.Duration, sigs <-chan os.Signal, quiet bool, say func(string, ...any)) *apitype.CommandDone {
	done := &apitype.CommandDone{Command: shellQuote(args)}
	show := io.Writer(os.Stdout)
	if quiet {
		show = os.Stderr
	}
	r := supervise.Run(args, supervise.Options{Log: log, Show: show, TTL: ttl, Signals: sigs, Notify: func(e supervise.Event) {
		switch e.Kind {
		case supervise.Relayed:
			say("drainctl: %s: passed on to %s; waiting for it to end (again to kill it)", e.Signal, done.Command)
		case supervise.Killing:
			say("drainctl: killing %s", done.Command)
		case supervise.TimedOut:
			say("drainctl: %s ran out its --ttl %s: SIGTERM", done.Command, ttl)
		}
	}})
	done.ExitCode, done.Signal, done.Output = r.ExitCode, r.Signal, r.Output
	return done
}

// openRunLog opens (appending) the run's log: the file given, else one
// named by the time under /var/log/drainctl (root) or the user's state
// directory.
func openRunLog(path string) (*os.File, error) {
	if path == "" {
		dir := "/var/log/drainctl"
		if os.Geteuid() != 0 {
			base := os.Getenv("XDG_STATE_HOME")
			if base == "" {
				home, err := os.UserHomeDir()
				if err != nil {
					return nil, usagef("maintenance run: no home directory for the log; give --log FILE")
				}
				base = filepath.Join(home, ".local", "state")
			}
			dir = filepath.Join(base, "drainctl")
		}
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, usagef("maintenance run: log directory: %v (give --log FILE)", err)
		}
		// Named by the time (UTC: logs are compared across hosts) and
		// the pid, so that two runs never share a log.
		path = filepath.Join(dir, fmt.Sprintf("run-%s-%d.log", time.Now().UTC().Format("20060102T150405Z"), os.Getpid()))
	}
	// Absolute: the agent records the path for `status`, which may run
	// from another directory.
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, usagef("--log: %v", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, usagef("--log: %v", err)
	}
	return f, nil
}

// needsQuoting reports whether r, in a word, needs the shell's quotes:
// anything but letters, digits and the punctuation the shell leaves alone.
func needsQuoting(r rune) bool {
	plain := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r)
	return !plain
}

// shellQuote writes args as one shell command line, for people and the
// record (the command itself runs without a shell). A word with a
// control or bidi character, or a byte that is not UTF-8, is written in
// bash's $'...' form with those escaped: the record stays one line that
// shows what ran, and the agent (which refuses such characters in a
// command) takes it.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		switch {
		case a != "" && !strings.ContainsFunc(a, needsQuoting):
			q[i] = a
		case freetext.Check("", a, len(a)) != nil:
			q[i] = ansiQuote(a)
		default:
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// ansiQuote writes a in bash's $'...' form, its control and bidi
// characters and invalid bytes escaped.
func ansiQuote(a string) string {
	var b strings.Builder
	b.WriteString("$'")
	for len(a) > 0 {
		r, n := utf8.DecodeRuneInString(a)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, a[0])
		case r == '\'' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x80 && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r) || freetext.IsBidi(r) || r == utf8.RuneError:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		a = a[n:]
	}
	b.WriteByte('\'')
	return b.String()
}
