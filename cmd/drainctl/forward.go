package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/settings"
)

// forwardFlags name the forwards and the backend: without them, the
// config file's, else the defaults (forwardsFrom).
func forwardFlags() []cli.Flag {
	return []cli.Flag{
		netfilterBackendFlag(),
		&cli.StringSliceFlag{Name: "forward", Aliases: []string{"f"},
			Usage: "a forward `FROM:TO` (forward port : service port); repeat for several"},
		&cli.IntFlag{Name: "from", Usage: "forward `PORT` (with --to; same as --forward FROM:TO)"},
		&cli.IntFlag{Name: "to", Usage: "service `PORT` (with --from)"},
		configFlag(),
	}
}

func forwardCommand() *cli.Command {
	return &cli.Command{
		Name:  "forward",
		Usage: "manage the forward (81→80) directly, without the agent",
		Description: "Low-level commands for operators and tests. They change netfilter at once;\n" +
			"while an agent runs it owns the forwards and puts back what it expects.\n\n" +
			"Forwards come from --forward/--from/--to, else the config file, else 81:80.\n" +
			"Every command is idempotent: running it twice changes nothing more.",
		Subcommands: []*cli.Command{
			forwardSubcommand("apply", "install the REDIRECT (IPv4 and IPv6, from the network and from this host)",
				"A withdrawn forward stays withdrawn; use restore to put it back in service.",
				func(c *cli.Context, f forward.Forwarder, fs []forward.Forward, _ bool) error {
					return f.Apply(c.Context, fs...)
				}),
			forwardSubcommand("withdraw", "refuse NEW connections to the forward port; established ones keep working",
				"HAProxy's check of the forward port then fails and the server goes DOWN for new\n"+
					"users, while users with its cookie reach it through the backup entry. The\n"+
					"REDIRECT stays, so live connections through it are not reset.",
				func(c *cli.Context, f forward.Forwarder, fs []forward.Forward, _ bool) error {
					return f.Withdraw(c.Context, fs...)
				}),
			forwardSubcommand("restore", "accept new connections again (installs the forward if missing)", "",
				func(c *cli.Context, f forward.Forwarder, fs []forward.Forward, _ bool) error {
					return f.Restore(c.Context, fs...)
				}),
			forwardSubcommand("remove", "delete drainctl's rules (all of them unless forwards are given)",
				"Deletes drainctl's nftables table or iptables chains and jump rules, nothing\n"+
					"else. Connections that came through the forward may be reset.",
				func(c *cli.Context, f forward.Forwarder, fs []forward.Forward, explicit bool) error {
					// The defaults name no forward in particular: remove
					// whatever drainctl installed.
					if !explicit {
						return f.Remove(c.Context)
					}
					return f.Remove(c.Context, fs...)
				}),
			forwardStatusCommand(),
		},
	}
}

// forwardAction is what a forward command does once the backend is open:
// to fs, which explicit says were given (flags or the file) rather than
// the defaults.
type forwardAction func(c *cli.Context, f forward.Forwarder, fs []forward.Forward, explicit bool) error

// forwardSubcommand is one of the forward commands: they differ only in
// what they do to the forwards.
func forwardSubcommand(name, usage, desc string, act forwardAction) *cli.Command {
	return &cli.Command{
		Name: name, Usage: usage, Description: desc,
		Flags:  forwardFlags(),
		Action: func(c *cli.Context) error { return runForward(c, name, act) },
	}
}

// runForward opens the backend the flags and the file choose (auto
// follows the host's firewall), runs act, and says what was done and
// why that backend: the same host can hold rules in several.
func runForward(c *cli.Context, name string, act forwardAction) error {
	fs, explicit, backend, err := forwardsFrom(c)
	if err != nil {
		return err
	}
	f, choice, err := forward.New(c.Context, forward.Options{Backend: backend})
	if err != nil {
		return err
	}
	defer f.Close()
	if err := act(c, f, fs, explicit); err != nil {
		return fmt.Errorf("%s %s (backend %s): %w", name, fwList(fs), f.Backend(), err)
	}
	what := fwList(fs)
	if name == "remove" && !explicit {
		what = "all forwards"
	}
	if name != "status" {
		fmt.Printf("%s %s: done (backend %s: %s)\n", name, what, f.Backend(), choice.Reason)
	}
	return nil
}

func forwardStatusCommand() *cli.Command {
	cmd := forwardSubcommand("status", "show drainctl's forwards: applied, withdrawn, packet counters", "", showForwardStatus)
	cmd.Flags = append(cmd.Flags, jsonFlag(jsonForScripts))
	return cmd
}

// showForwardStatus shows the rules as netfilter holds them, with the
// problems found (a jump not first, a rule missing): the counters say
// whether traffic still comes through the forward.
func showForwardStatus(c *cli.Context, f forward.Forwarder, fs []forward.Forward, explicit bool) error {
	st, err := f.Status(c.Context)
	if err != nil {
		return err
	}
	if explicit {
		st = only(st, fs)
	}
	if c.Bool("json") {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Backend  string           `json:"backend"`
			Forwards []forward.Status `json:"forwards"`
		}{f.Backend(), st})
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "backend: %s\n", f.Backend())
	fmt.Fprintln(w, "FORWARD\tSTATE\tREDIRECTED\tREFUSED\tRULES")
	for _, s := range st {
		fmt.Fprintf(w, "%d→%d\t%s\t%d\t%d\t%d/%d\n", s.Forward.From, s.Forward.To, s.State(), s.Redirected, s.Refused, s.Rules, s.Want)
	}
	if len(st) == 0 {
		fmt.Fprintln(w, "(no forward installed)")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, s := range st {
		for _, p := range s.Problems {
			fmt.Printf("%d→%d: %s\n", s.Forward.From, s.Forward.To, p)
		}
	}
	return nil
}

// only keeps the statuses of fs, reporting absent ones as such: asked
// about 81:80, status must say "absent" rather than list nothing, or a
// script reads a missing forward as fine.
func only(st []forward.Status, fs []forward.Forward) []forward.Status {
	by := map[forward.Forward]forward.Status{}
	for _, s := range st {
		by[s.Forward] = s
	}
	out := make([]forward.Status, 0, len(fs))
	for _, f := range fs {
		s, ok := by[f]
		if !ok {
			s = forward.Status{Forward: f, Want: 2}
		}
		out = append(out, s)
	}
	return out
}

// forwardsFrom gathers the forwards and backend: the config file over the
// defaults, then --forward (or --from and --to) and --backend. explicit
// is false when the defaults were used.
func forwardsFrom(c *cli.Context) (fs []forward.Forward, explicit bool, backend string, err error) {
	if c.NArg() > 0 {
		return nil, false, "", usagef("unexpected argument %q (forwards are given with --forward FROM:TO)", c.Args().First())
	}
	fs, err = parseForwards(c.StringSlice("forward"))
	if err != nil {
		return nil, false, "", usageError{err}
	}
	if c.IsSet("from") || c.IsSet("to") {
		if !c.IsSet("from") || !c.IsSet("to") {
			return nil, false, "", usagef("--from and --to go together")
		}
		f, err := forward.FromPorts(fmt.Sprint(c.Int("from")), fmt.Sprint(c.Int("to")))
		if err != nil {
			return nil, false, "", usageError{err}
		}
		fs = append(fs, f)
	}
	// The file as the agent reads it, so that a forward command and the
	// agent agree on the forwards and the backend.
	s := settings.Defaults()
	src, err := loadConfig(c, &s)
	if err != nil {
		return nil, false, "", usageError{err}
	}
	given := map[string]bool{}
	if len(fs) > 0 {
		s.Forwards, given[settings.KeyForwards] = fs, true
	}
	if c.IsSet("backend") {
		s.Backend, given[settings.KeyBackend] = c.String("backend"), true
	}
	// Only the forwards and the backend: a forward command needs no
	// socket group or readiness URL, and must not fail on one.
	if err := s.ValidateForwards(); err != nil {
		return nil, false, "", usageError{locate(err, src, given)}
	}
	return s.Forwards, len(fs) > 0 || src.Sets(settings.KeyForwards), s.Backend, nil
}

// netfilterBackendFlag is the forward commands' --backend: the netfilter
// backend, as the agent's --backend (settings.go). The haproxy commands'
// backend is HAProxy's: --haproxy-backend.
func netfilterBackendFlag() cli.Flag {
	return &cli.StringFlag{Name: "backend", Value: settings.Defaults().Backend, EnvVars: []string{"DRAINCTL_BACKEND"},
		Usage: "auto, nftables, iptables, iptables-nft or iptables-legacy (auto follows the host's firewall)"}
}
