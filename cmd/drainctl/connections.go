package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/agent"
	"github.com/drainctl/drainctl/pkg/conntable"
	"github.com/drainctl/drainctl/pkg/drain"
)

// tableFlags select what the connection table lists.
func tableFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "forward", Aliases: []string{"f"},
			Usage: "forward `FROM:TO`: list port TO and tell connections that came through FROM (default: the config's forwards, else 81:80)"},
		&cli.UintSliceFlag{Name: "port", Aliases: []string{"p"}, Usage: "also list service `PORT` (classified direct); repeatable"},
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"DRAINCTL_CONFIG"}, Usage: "configuration `FILE`"},
		&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"},
	}
}

// openTable opens the connection table the flags describe.
func openTable(c *cli.Context) (*conntable.Table, error) {
	if c.NArg() > 0 {
		return nil, usagef("unexpected argument %q", c.Args().First())
	}
	o := conntable.Options{}
	for _, p := range c.UintSlice("port") {
		if p < 1 || p > 65535 {
			return nil, usagef("--port %d: must be between 1 and 65535", p)
		}
		o.Ports = append(o.Ports, uint16(p))
	}
	if len(o.Ports) == 0 || c.IsSet("forward") || c.IsSet("config") {
		fs, _, _, err := forwardsFrom(c)
		if err != nil {
			return nil, err
		}
		o.Forwards = fs
	}
	t, err := conntable.Open(o)
	if err != nil {
		return nil, fmt.Errorf("open connection table: %w", err)
	}
	return t, nil
}

func connectionsCommand() *cli.Command {
	return &cli.Command{
		Name:  "connections",
		Usage: "list the established connections of the service port, and how each arrived",
		Description: "Reads the kernel's socket table (netlink sock_diag, filtered in the kernel) and\n" +
			"conntrack: PATH is \"forward\" for connections that came through the forward port\n" +
			"(HAProxy's primary entry in the traffic-through-81 pattern) and \"direct\" for\n" +
			"connections to the service port (the backup entry; in the recommended pattern,\n" +
			"all traffic). IDLE is the time since data last moved either way.",
		Flags: append(tableFlags(),
			&cli.BoolFlag{Name: "all", Usage: "list every connection (default: the 50 most recently active)"},
			&cli.DurationFlag{Name: "idle-after", Value: agent.Defaults().Policy.IdleAfter, Usage: "count a connection idle after no data for `DURATION`"},
		),
		Action: func(c *cli.Context) error {
			t, err := openTable(c)
			if err != nil {
				return err
			}
			defer t.Close()
			conns, err := t.List(c.Context)
			if err != nil {
				return fmt.Errorf("list connections: %w", err)
			}
			sort.Slice(conns, func(i, j int) bool { return conns[i].Idle() < conns[j].Idle() })
			if c.Bool("json") {
				return printJSON(connectionsJSON(t.Ports(), conns))
			}
			printConnections(t.Ports(), conns, c.Bool("all"), c.Duration("idle-after"))
			return nil
		},
	}
}

type connJSON struct {
	Local         netip.AddrPort `json:"local"`
	Peer          netip.AddrPort `json:"peer"`
	Path          conntable.Path `json:"path"`
	IdleMS        int64          `json:"idle_ms"`
	SinceRecvMS   int64          `json:"since_recv_ms"`
	SinceSentMS   int64          `json:"since_sent_ms"`
	BytesReceived uint64         `json:"bytes_received"`
	BytesSent     uint64         `json:"bytes_sent"`
	RTTus         uint32         `json:"rtt_us"`
}

func connectionsJSON(ports []uint16, conns []conntable.Conn) any {
	out := make([]connJSON, 0, len(conns))
	for _, c := range conns {
		out = append(out, connJSON{
			Local: c.Local, Peer: c.Peer, Path: c.Path,
			IdleMS: c.Idle().Milliseconds(), SinceRecvMS: c.SinceRecv().Milliseconds(), SinceSentMS: c.SinceSent().Milliseconds(),
			BytesReceived: c.Info.Bytes_received, BytesSent: c.Info.Bytes_acked, RTTus: c.Info.Rtt,
		})
	}
	return struct {
		Ports       []uint16   `json:"ports"`
		Connections []connJSON `json:"connections"`
	}{ports, out}
}

func printConnections(ports []uint16, conns []conntable.Conn, all bool, idleAfter time.Duration) {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PEER\tLOCAL\tPATH\tIDLE\tLAST RECV\tLAST SENT\tBYTES IN\tBYTES OUT")
	byPath := map[conntable.Path]int{}
	active := 0
	for i, c := range conns {
		byPath[c.Path]++
		if c.Idle() < idleAfter {
			active++
		}
		if i < 50 || all {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Peer, c.Local, c.Path,
				dur(c.Idle()), dur(c.SinceRecv()), dur(c.SinceSent()), bytes(c.Info.Bytes_received), bytes(c.Info.Bytes_acked))
		}
	}
	w.Flush()
	if len(conns) > 50 && !all {
		fmt.Printf("... %d more (--all lists them)\n", len(conns)-50)
	}
	var paths []string
	for _, p := range []conntable.Path{conntable.PathForward, conntable.PathDirect, conntable.PathUnknown} {
		if byPath[p] > 0 {
			paths = append(paths, fmt.Sprintf("%s %d", p, byPath[p]))
		}
	}
	noun := "connections"
	if len(conns) == 1 {
		noun = "connection"
	}
	fmt.Printf("%d %s on %s: %s; active %d, idle %d (no data for %s)\n",
		len(conns), noun, portList(ports), strings.Join(paths, ", "),
		active, len(conns)-active, idleAfter)
}

func portList(ports []uint16) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = fmt.Sprintf(":%d", p)
	}
	return strings.Join(s, ",")
}

func dur(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return d.Round(time.Minute).String()
}

func bytes(n uint64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000_000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000_000_000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1f GB", float64(n)/1e9)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// policyFrom is wait-drained's policy: the defaults and its flags (the
// config file's drain section is the agent's).
func policyFrom(c *cli.Context) (drain.Policy, error) {
	s := agent.Defaults()
	if _, err := applySettings(c, &s, policySettingFlags()); err != nil {
		return s.Policy, usageError{err}
	}
	if err := s.Policy.Validate(); err != nil {
		return s.Policy, usageError{err}
	}
	return s.Policy, nil
}

func waitDrainedCommand() *cli.Command {
	return &cli.Command{
		Name:  "wait-drained",
		Usage: "wait until the service port is quiet (no active connection), showing progress",
		Description: "Polls the connection table with the drain policy and returns when no active\n" +
			"connection has been seen for --quiet (after at least --min-wait), or at the\n" +
			"--deadline. It does not withdraw anything: run it after `forward withdraw`.\n" +
			"Active means: carried data within --idle-after, seen by two polls in a row\n" +
			"(so health checks do not count), and not from an --ignore'd address.\n\n" +
			"Exit status: 0 drained (or deadline with --on-deadline proceed), 3 deadline\n" +
			"with --on-deadline abort. With --json, one JSON event per poll.",
		Flags: append(tableFlags()[:3:3], append(flagsOf(policySettingFlags()), &cli.BoolFlag{Name: "json", Usage: "print one JSON event per poll"})...),
		Action: func(c *cli.Context) error {
			p, err := policyFrom(c)
			if err != nil {
				return err
			}
			t, err := openTable(c)
			if err != nil {
				return err
			}
			defer t.Close()
			show := progressPrinter(c.Bool("json"))
			res, err := drain.Wait(c.Context, t, p, nil, show)
			if err != nil {
				return err
			}
			if !c.Bool("json") {
				fmt.Printf("%s after %s (%d active left)\n", res.Outcome, dur(res.Elapsed), res.Remaining)
			}
			return nil
		},
	}
}

// progressPrinter shows drain events: one rewritten line on a terminal,
// JSON lines with --json, a line every few seconds otherwise (logs, cron).
func progressPrinter(asJSON bool) func(drain.Event) {
	enc := json.NewEncoder(os.Stdout)
	fi, _ := os.Stdout.Stat()
	tty := fi != nil && fi.Mode()&os.ModeCharDevice != 0
	var lastLog time.Duration = -time.Hour
	return func(e drain.Event) {
		if asJSON {
			_ = enc.Encode(e)
			return
		}
		line := fmt.Sprintf("draining %s: %d active (forward %d, direct %d), %d idle, %d new; quiet %s; deadline in %s",
			dur(e.Elapsed), e.Active, e.ByPath[conntable.PathForward], e.ByPath[conntable.PathDirect], e.Idle, e.New, dur(e.QuietFor), dur(e.DeadlineIn))
		if e.Oldest != nil {
			line += fmt.Sprintf("; oldest %s (%s, %s)", e.Oldest.Peer, e.Oldest.Path, dur(e.Oldest.Age))
		}
		switch {
		case tty:
			fmt.Printf("\r\033[K%s", line)
			if e.Outcome != "" {
				fmt.Println()
			}
		case e.Outcome != "" || e.Elapsed-lastLog >= 5*time.Second:
			fmt.Println(line)
			lastLog = e.Elapsed
		}
	}
}
