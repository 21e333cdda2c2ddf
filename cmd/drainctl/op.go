package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/maintenance"
	"github.com/drainctl/drainctl/pkg/state"
)

// The operations — restart, maintenance enter, exit and run — share
// their flags, their request and how their progress is shown.

// opFlags are the operations' flags. --deadline and --on-deadline have
// no value of their own: unset, the agent's policy decides, so one place
// (the agent's config) sets the host's drain; given, they travel in the
// request. withTTL adds --ttl for the holds (enter); run has its own.
func opFlags(withTTL bool) []cli.Flag {
	fs := []cli.Flag{
		socketFlag(),
		&cli.StringFlag{Name: "reason", Aliases: []string{"r"}, Usage: "why (recorded with who and when)"},
		&cli.DurationFlag{Name: "deadline", DefaultText: "the agent's", Usage: "stop waiting for the drain after `DURATION`"},
		&cli.StringFlag{Name: "on-deadline", DefaultText: "the agent's", Usage: "at the deadline: proceed, or abort (put the server back, exit 3)"},
		jsonFlag(jsonOpLines),
		// Every operation given opFlags takes the server out (exit has
		// flags of its own), so it may wait for a pool slot.
		&cli.DurationFlag{Name: "pool-wait", DefaultText: "the agent's (2h unless set)",
			Usage: "in a pool, wait at most `DURATION` for a slot, then give up: busy, exit 11, nothing changed"},
	}
	fs = append(fs, windowFlags()...)
	if withTTL {
		fs = append(fs, &cli.DurationFlag{Name: "ttl", DefaultText: "never", Usage: "end the maintenance by itself after `DURATION`"})
	}
	return fs
}

// windowFlags are --window and --outside-window, of every operation that
// takes the server out. The agent checks the window (and again once a
// pool slot is granted); checked here too, a bad one names its flag.
func windowFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "window", DefaultText: "any time",
			Usage: "go out only within `WINDOW`: days, hours and a time zone, e.g. 'Mon-Fri 02:00-05:00 Europe/Berlin' (no days: every day; no zone: the host's)"},
		&cli.StringFlag{Name: "outside-window", Value: "skip",
			Usage: "outside the window: skip (change nothing, exit 13: for cron, which comes back tomorrow) or wait (until it opens: for a person who asked for tonight)"},
	}
}

// request is operation op's request from its flags, checked; the
// operations take no arguments (a stray word is usually a reason without
// --reason, and the hint says so).
func request(c *cli.Context, op apitype.Op) (apitype.Request, error) {
	if c.NArg() > 0 {
		return apitype.Request{}, usagef("unexpected argument %q (give the reason with --reason)", c.Args().First())
	}
	r := flagRequest(c)
	r.IfRequired = c.Bool("if-required") // reboot's; false where it is no flag
	return r, checkRequest(op, r)
}

// flagRequest reads the flags every operation shares. Unset, --deadline
// and --on-deadline leave the agent's own policy to decide; the default
// of --outside-window means nothing without a window.
func flagRequest(c *cli.Context) apitype.Request {
	r := apitype.Request{Who: label(), Reason: c.String("reason"), Deadline: c.Duration("deadline"),
		TTL: c.Duration("ttl"), Force: c.Bool("force"), PoolWait: c.Duration("pool-wait"),
		OnDeadline: c.String("on-deadline"), Window: c.String("window"), OutsideWindow: c.String("outside-window")}
	if r.Window == "" && !c.IsSet("outside-window") {
		r.OutsideWindow = ""
	}
	return r
}

// requestFlags are the flags of the request's fields (their JSON keys,
// maintenance.FieldOf's answer).
var requestFlags = map[string]string{
	"deadline_ms": "--deadline", "on_deadline": "--on-deadline", "ttl_ms": "--ttl",
	"pool_wait_ms": "--pool-wait", "window": "--window", "outside_window": "--outside-window",
	"force": "--force", "if_required": "--if-required",
}

// checkRequest checks r by the engine's own rules (the agent checks it
// again: the socket is a trust boundary), so that a bad flag exits 2
// naming the flag, with no agent running and nothing changed.
func checkRequest(op apitype.Op, r apitype.Request) error {
	req := api.EngineRequest(r)
	// Who the caller is, the agent learns from the socket (the kernel's
	// peer credentials): a label of ours is only a note on it.
	req.Who = cmp.Or(req.Who, "the caller")
	err := maintenance.CheckRequest(state.Op(op), req)
	if err == nil {
		return nil
	}
	var e *maintenance.Error
	if errors.As(err, &e) {
		if flag, ok := requestFlags[maintenance.FieldOf(err)]; ok {
			return usagef("%s: %s", flag, e.Msg)
		}
		return usagef("%s", e.Msg)
	}
	return usageError{err}
}

// opFunc is one of api.Client's operations: Enter, Exit, Restart.
type opFunc func(context.Context, apitype.Request, func(apitype.Event)) (apitype.Result, error)

// runOp is the action of restart, maintenance enter and exit.
func runOp(c *cli.Context, name apitype.Op, op opFunc) error {
	req, err := request(c, name)
	if err != nil {
		return err
	}
	_, err = showOp(c.Context, c.Bool("json"), op, req)
	return err
}

// showOp runs an operation, showing its progress and result: for people,
// or as the API's JSON lines. The agent's texts (messages, notes, the
// commands' output) are escaped: a reason given by another user must not
// drive this terminal. Warnings go to stderr, so that a script reading
// stdout sees the same lines with or without them.
func showOp(ctx context.Context, asJSON bool, op opFunc, req apitype.Request) (apitype.Result, error) {
	enc := json.NewEncoder(os.Stdout)
	// As in events: with --json, drain progress is in the event lines.
	drainLine := progressPrinter(false)
	res, err := op(ctx, req, func(ev apitype.Event) {
		switch {
		case asJSON:
			enc.Encode(apitype.Line{Event: &ev})
		case ev.Drain != nil:
			drainLine(*ev.Drain)
		case ev.Output != nil:
			// A command's output (the config test's), indented under its
			// line so that it cannot pass for drainctl's.
			fmt.Printf("  %s (exit %d, %s)\n", ev.Output.Command, ev.Output.ExitCode, dur(ev.Output.Duration))
			for _, l := range strings.Split(strings.TrimSpace(ev.Output.Output), "\n") {
				if l != "" {
					fmt.Printf("    | %s\n", safeLine(l))
				}
			}
		default:
			fmt.Printf("%s %s", ev.Time.Local().Format(time.TimeOnly), ev.Phase)
			if ev.Message != "" {
				fmt.Printf(": %s", safeLine(ev.Message))
			}
			fmt.Println()
		}
	})
	if asJSON {
		// The result line, as the API sends it: with the agent's error
		// when it refused or failed. A transport error (the agent went
		// away) has no result line: the exit code and stderr say it.
		var me *apitype.Error
		errors.As(err, &me)
		if err == nil || me != nil {
			enc.Encode(apitype.Line{Result: &res, Error: me})
		}
	} else if err == nil {
		fmt.Printf("done: %s", res.Phase)
		if res.Note != "" {
			fmt.Printf(" — %s", safeLine(res.Note))
		}
		fmt.Println()
	}
	if !asJSON {
		for _, w := range res.Warnings {
			fmt.Fprintf(os.Stderr, "warning: %s\n", safeLine(w))
		}
	}
	return res, err
}
