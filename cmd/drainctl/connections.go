package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/conntable"
	"github.com/drainctl/drainctl/pkg/settings"
)

// tableFlags select what the connection table lists (openTable reads
// them).
func tableFlags(more ...cli.Flag) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringSliceFlag{Name: "forward", Aliases: []string{"f"},
			DefaultText: "the config's forwards, else " + fwSpecs(settings.Defaults().Forwards),
			Usage:       "forward `FROM:TO`: list port TO and tell connections that came through FROM"},
		&cli.UintSliceFlag{Name: "port", Aliases: []string{"p"}, Usage: "also list service `PORT` (classified direct); repeatable"},
		configFlag(),
	}, more...)
}

// connectionsCommand shows what a drain sees, with the same rules: who is
// still at work on this server, and through which entry they come.
func connectionsCommand() *cli.Command {
	return &cli.Command{
		Name:  "connections",
		Usage: "list the established connections of the service port, and how each arrived",
		Description: "Reads the kernel's socket table (netlink sock_diag, filtered in the kernel) and\n" +
			"conntrack: PATH is \"forward\" for connections that came through the forward port\n" +
			"(HAProxy's primary entry in the traffic-through-81 pattern) and \"direct\" for\n" +
			"connections to the service port (the backup entry; in the recommended pattern,\n" +
			"all traffic). IDLE is the time since data last moved either way.",
		Flags: append(tableFlags(jsonFlag(jsonForScripts)),
			&cli.BoolFlag{Name: "all", Usage: "list every connection, not only the 50 most recently active"},
			&cli.DurationFlag{Name: "idle-after", Value: settings.Defaults().Policy.IdleAfter, Usage: "count a connection idle after no data for `DURATION`"},
		),
		Action: runConnections,
	}
}

// openTable opens the connection table the flags describe. The forwards
// (from the flags, else the file, else 81:80) tell connections that came
// through a forward port from direct ones; --port alone lists other
// ports without reading the config at all.
func openTable(c *cli.Context) (*conntable.Table, error) {
	if err := noArgs(c); err != nil {
		return nil, err
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

// printConnections prints the table, the 50 most recently active unless
// all, and a summary line that counts every connection: how many came
// through the forward, how many are idle by idleAfter (the drain's rule).
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
				dur(c.Idle()), dur(c.SinceRecv()), dur(c.SinceSent()), byteSize(c.Info.Bytes_received), byteSize(c.Info.Bytes_acked))
		}
	}
	w.Flush() // to stdout: a failed write has nowhere to be reported
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

// runConnections lists the connections, most recently active first.
func runConnections(c *cli.Context) error {
	t, err := openTable(c)
	if err != nil {
		return err
	}
	defer t.Close()
	conns, err := t.List(c.Context)
	if err != nil {
		return fmt.Errorf("list connections: %w", err)
	}
	// The busiest first: those are the ones that hold a drain open.
	sort.Slice(conns, func(i, j int) bool { return conns[i].Idle() < conns[j].Idle() })
	if c.Bool("json") {
		return printJSON(conntable.NewListing(t.Ports(), conns))
	}
	printConnections(t.Ports(), conns, c.Bool("all"), c.Duration("idle-after"))
	return nil
}
