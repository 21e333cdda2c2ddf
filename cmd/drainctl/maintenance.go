package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/config"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/maintenance"
)

func forwardParse(s string) (forward.Forward, error) {
	f, err := forward.Parse(s)
	if err != nil {
		return f, usageError{err}
	}
	return f, nil
}

func client(c *cli.Context) *api.Client { return &api.Client{Socket: socketPath(c)} }

// socketFlag is --socket on each command that talks to the agent, so it
// works before or after the command name.
func socketFlag() cli.Flag {
	return &cli.StringFlag{Name: "socket", EnvVars: []string{"DRAINCTL_SOCKET"},
		Usage: "the agent's control socket `PATH` (default: " + api.DefaultSocket + ")"}
}

// socketPath finds --socket where it was set (this command or the
// global flag, or DRAINCTL_SOCKET), else the default.
func socketPath(c *cli.Context) string {
	for _, cc := range c.Lineage() {
		if cc.IsSet("socket") {
			return cc.String("socket")
		}
	}
	return api.DefaultSocket
}

// configFlag is --config of every command that reads the config file.
func configFlag() cli.Flag {
	return &cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"DRAINCTL_CONFIG"},
		Usage: "configuration `FILE` (default " + config.DefaultPath + " if it exists)"}
}

// label says who asked, beyond the uid the agent sees: the sudo user.
func label() string {
	if u := os.Getenv("SUDO_USER"); u != "" {
		return "via sudo by " + u
	}
	return ""
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:   "status",
		Usage:  "show the agent's state: in service or in maintenance, who and why, the forwards",
		Flags:  []cli.Flag{socketFlag(), &cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"}},
		Action: showStatus,
	}
}

func showStatus(c *cli.Context) error {
	st, err := client(c).Status(c.Context)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(st)
	}
	s := st.State
	fmt.Printf("state:    %s", s.Phase)
	if st.Running {
		fmt.Printf(" (%s in progress)", s.Op)
	}
	fmt.Println()
	if h := s.Holder; h != nil {
		fmt.Printf("holder:   %s since %s", safeLine(h.Who), h.Since.Local().Format(time.DateTime))
		if !h.Until.IsZero() {
			fmt.Printf(", until %s", h.Until.Local().Format(time.DateTime))
		}
		fmt.Println()
		if h.Reason != "" {
			fmt.Printf("reason:   %s\n", safeLine(h.Reason))
		}
		switch {
		case h.Command != "" && st.RunnerGone:
			fmt.Printf("command:  %s (maintenance run by pid %d, which is GONE: nobody will end this hold and the command's outcome is unknown; see its log, then maintenance exit --force)\n", safeLine(h.Command), h.RunnerPID)
		case h.Command != "":
			fmt.Printf("command:  %s (maintenance run by pid %d: the hold ends when it ends; exit --force ends it now)\n", safeLine(h.Command), h.RunnerPID)
		}
		if h.Log != "" {
			fmt.Printf("log:      %s\n", safeLine(h.Log))
		}
	}
	if s.LastError != "" {
		fmt.Printf("error:    %s\n", safeLine(s.LastError))
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "backend:  %s\n", st.Backend)
	fmt.Fprintln(w, "FORWARD\tSTATE\tREDIRECTED\tREFUSED")
	for _, f := range st.Forwards {
		fmt.Fprintf(w, "%d→%d\t%s\t%d\t%d\n", f.Forward.From, f.Forward.To, f.State(), f.Redirected, f.Refused)
	}
	w.Flush()
	for _, f := range st.Forwards {
		for _, p := range f.Problems {
			fmt.Printf("problem:  %d→%d: %s\n", f.Forward.From, f.Forward.To, safeLine(p))
		}
	}
	showHealthChecks(st.HealthChecks)
	if n := len(s.History); n > 0 {
		last := s.History[n-1]
		fmt.Printf("last:     %s %s %s\n", last.Time.Local().Format(time.DateTime), last.Phase, safeLine(last.Note))
	}
	return nil
}

// showHealthChecks lists the load balancers checking the forward ports,
// and warns when none does: then withdrawing takes the server out of no
// rotation drainctl can see.
func showHealthChecks(hc *maintenance.HealthChecks) {
	if hc == nil {
		fmt.Println("checks:   not watched (agent --watch-checks=false, or no CAP_NET_RAW)")
		return
	}
	active := 0
	for _, l := range hc.LoadBalancers {
		state := ""
		if !l.Active {
			state = " (stopped checking)"
		} else {
			active++
		}
		fmt.Printf("checked:  %s%s\n", l.Describe(time.Now()), state)
	}
	if active == 0 {
		fmt.Printf("warning:  no load balancer health-checks %s now: withdrawing will not take this server out of any rotation drainctl can see\n", lbview.PortsText(hc.Ports))
	}
}

func opFlags(withTTL bool) []cli.Flag {
	fs := []cli.Flag{
		socketFlag(),
		&cli.StringFlag{Name: "reason", Aliases: []string{"r"}, Usage: "why (recorded with who and when)"},
		&cli.DurationFlag{Name: "deadline", Usage: "stop waiting for the drain after `DURATION` (default: the agent's)"},
		&cli.StringFlag{Name: "on-deadline", Usage: "at the deadline: proceed, or abort (put the server back, exit 3)"},
		&cli.BoolFlag{Name: "json", Usage: "print progress and the result as JSON lines"},
	}
	if withTTL {
		fs = append(fs, &cli.DurationFlag{Name: "ttl", Usage: "end the maintenance by itself after `DURATION` (default: never)"})
	}
	return fs
}

// request is an operation's request from its flags; the operations take
// no arguments.
func request(c *cli.Context) (maintenance.Request, error) {
	if c.NArg() > 0 {
		return maintenance.Request{}, usagef("unexpected argument %q (give the reason with --reason)", c.Args().First())
	}
	return flagRequest(c)
}

// flagRequest reads and checks the flags every operation shares.
func flagRequest(c *cli.Context) (maintenance.Request, error) {
	r := maintenance.Request{Who: label(), Reason: c.String("reason"), Deadline: c.Duration("deadline"),
		TTL: c.Duration("ttl"), Force: c.Bool("force")}
	// Not given: the agent's own policy decides.
	if c.String("on-deadline") != "" {
		o, err := parseOnDeadlineFlag(c)
		if err != nil {
			return r, usageError{err}
		}
		r.OnDeadline = o
	}
	if r.Deadline < 0 || r.TTL < 0 {
		return r, usagef("--deadline and --ttl must not be negative")
	}
	return r, nil
}

type opFunc func(context.Context, maintenance.Request, func(maintenance.Event)) (maintenance.Result, error)

func runOp(c *cli.Context, op opFunc) error {
	req, err := request(c)
	if err != nil {
		return err
	}
	_, err = showOp(c.Context, c.Bool("json"), op, req)
	return err
}

// showOp runs an operation, showing its progress and result: for people,
// or as the API's JSON lines.
func showOp(ctx context.Context, asJSON bool, op opFunc, req maintenance.Request) (maintenance.Result, error) {
	enc := json.NewEncoder(os.Stdout)
	drainLine := progressPrinter(false)
	res, err := op(ctx, req, func(ev maintenance.Event) {
		switch {
		case asJSON:
			enc.Encode(api.Line{Event: &ev})
		case ev.Drain != nil:
			drainLine(*ev.Drain)
		case ev.Output != nil:
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
		var me *maintenance.Error
		errors.As(err, &me)
		if err == nil || me != nil {
			enc.Encode(api.Line{Result: &res, Error: me})
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
				Flags:  opFlags(true),
				Action: func(c *cli.Context) error { return runOp(c, client(c).Enter) },
			},
			{
				Name:  "exit",
				Usage: "check the web server answers, then restore the forward",
				Description: "If the readiness check fails the server stays out and the command fails\n" +
					"(exit 7). Exiting a server that is in service changes nothing. While a\n" +
					"command of maintenance run holds the server, exit is busy (exit 5) unless\n" +
					"--force.",
				Flags: []cli.Flag{socketFlag(), &cli.BoolFlag{Name: "json", Usage: "print progress and the result as JSON lines"},
					&cli.BoolFlag{Name: "force", Usage: "end the hold even while a command of maintenance run owns it (the command goes on)"}},
				Action: func(c *cli.Context) error { return runOp(c, client(c).Exit) },
			},
			runMaintenanceCommand(),
			{
				Name:   "status",
				Usage:  "same as drainctl status",
				Flags:  []cli.Flag{socketFlag(), &cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"}},
				Action: showStatus,
			},
		},
	}
}

func restartCommand() *cli.Command {
	return &cli.Command{
		Name:  "restart",
		Usage: "the full cycle: withdraw, drain, config test, graceful restart, readiness, restore",
		Description: "A failed config test restarts nothing and puts the server back (exit 6). A\n" +
			"failed restart command or readiness check leaves the server out (exit 9, 7):\n" +
			"fix it, then `drainctl maintenance exit`.",
		Flags:  opFlags(false),
		Action: func(c *cli.Context) error { return runOp(c, client(c).Restart) },
	}
}

func eventsCommand() *cli.Command {
	return &cli.Command{
		Name:  "events",
		Usage: "follow the agent's progress events as they happen (any operation, by anyone)",
		Description: "Prints every transition, drain progress line and command output of the agent\n" +
			"until interrupted: follow from a second terminal a restart that cron or a\n" +
			"colleague started. --json prints the lines of GET /v1/events ({\"event\": …}).",
		Flags: []cli.Flag{socketFlag(), &cli.BoolFlag{Name: "json", Usage: "print JSON lines"}},
		Action: func(c *cli.Context) error {
			enc := json.NewEncoder(os.Stdout)
			drainLine := progressPrinter(false)
			return client(c).Events(c.Context, func(ev maintenance.Event) {
				switch {
				case c.Bool("json"):
					enc.Encode(api.Line{Event: &ev}) // as GET /v1/events sends it
				case ev.Drain != nil:
					drainLine(*ev.Drain)
				case ev.Output != nil:
					fmt.Printf("%s %s: exit %d\n", ev.Time.Local().Format(time.TimeOnly), ev.Output.Command, ev.Output.ExitCode)
				default:
					fmt.Printf("%s %s %s %s\n", ev.Time.Local().Format(time.TimeOnly), ev.Op, ev.Phase, safeLine(ev.Message))
				}
			})
		},
	}
}

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "configuration file tools",
		Subcommands: []*cli.Command{{
			Name:  "check",
			Usage: "validate the configuration file (and flags) and print the agent's settings",
			Flags: append([]cli.Flag{configFlag()}, flagsOf(agentSettingFlags())...),
			Action: func(c *cli.Context) error {
				s, err := agentSettings(c)
				if err != nil {
					return err
				}
				if err := printJSON(s); err != nil {
					return err
				}
				fmt.Fprintln(os.Stderr, "configuration OK")
				return nil
			},
		}},
	}
}
