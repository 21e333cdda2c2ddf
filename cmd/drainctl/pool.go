package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
)

// poolCommand sees and mends the pool this host is in. It asks the
// agent, which asks etcd with its own settings and credentials: the
// operator needs neither.
func poolCommand() *cli.Command {
	return &cli.Command{
		Name:  "pool",
		Usage: "the pool of app servers this host is in: who is out, who waits; free, pause, resume",
		Description: "With a pool (pool: in the config file, or the agent's --pool-etcd), every\n" +
			"operation that takes the server out first takes one of max_unavailable\n" +
			"slots on etcd, and gives it back once the load balancers see the server\n" +
			"back. A held slot is the host's: it survives an agent restart and a reboot.",
		Subcommands: []*cli.Command{
			{
				Name:   "status",
				Usage:  "members, who holds the slots (operation, reason, who, since), who waits, a pause",
				Flags:  []cli.Flag{socketFlag(), jsonFlag(jsonForScripts)},
				Action: runPoolStatus,
			},
			{
				Name:      "release",
				Usage:     "free the slot of a host that is gone (recorded in the history)",
				ArgsUsage: "ID",
				Description: "A live host gives its own slot back once it is back in rotation: freeing it\n" +
					"lets another server out while this one may still be out. Refused unless\n" +
					"--force.",
				Flags:  []cli.Flag{socketFlag(), &cli.BoolFlag{Name: "force", Usage: "free it even though the host's agent is alive"}},
				Action: runPoolRelease,
			},
			{
				Name:   "pause",
				Usage:  "grant no new slot, pool-wide (held slots stay held): to stop a bad patch rolling on",
				Flags:  []cli.Flag{socketFlag(), &cli.StringFlag{Name: "reason", Aliases: []string{"r"}, Usage: "why (shown to every waiter)"}},
				Action: runPoolPause,
			},
			{
				Name:   "resume",
				Usage:  "grant slots again: the line goes on, first come, first served",
				Flags:  []cli.Flag{socketFlag()},
				Action: runPoolResume,
			},
		},
	}
}

func runPoolStatus(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	ps, err := client(c).PoolStatus(c.Context)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(ps)
	}
	printPool(ps, time.Now())
	return nil
}

// printPool shows the pool for people: a summary line, the holders, the
// line, the members.
func printPool(ps apitype.PoolStatus, now time.Time) {
	fmt.Printf("pool %s: %d/%d out (max_unavailable %s, %d members); this host: %s\n",
		safeLine(ps.Name), len(ps.Holders), ps.Allowed, ps.MaxUnavailable, api.PoolSize(ps), safeLine(ps.ID))
	if p := ps.Paused; p != nil {
		fmt.Printf("PAUSED by %s %s ago: %s (drainctl pool resume lets the line on)\n", safeLine(p.By), ago(now, p.Since), safeLine(p.Reason))
	}
	live := map[string]bool{}
	for _, m := range ps.Members {
		live[m.ID] = m.Live
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	if len(ps.Holders) > 0 {
		fmt.Fprintln(w, "HOLDER\tOP\tSINCE\tAGENT\tBY\tREASON")
		for _, h := range ps.Holders {
			agent := "live"
			if !live[h.ID] {
				agent = "gone (drainctl pool release " + h.ID + " frees it)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s ago\t%s\t%s\t%s\n", safeLine(h.ID), safeLine(h.Op), ago(now, h.Since), agent, safeLine(h.By), safeLine(h.Reason))
		}
	}
	for i, q := range ps.Waiters {
		if i == 0 {
			fmt.Fprintln(w, "WAITING\tOP\tSINCE")
		}
		fmt.Fprintf(w, "%d. %s\t%s\t%s ago\n", i+1, safeLine(q.ID), safeLine(q.Op), ago(now, q.Since))
	}
	w.Flush()
	var ms []string
	for _, m := range ps.Members {
		s := m.ID + " live"
		if !m.Live {
			s = fmt.Sprintf("%s gone (last seen %s ago)", m.ID, ago(now, m.LastSeen))
		}
		ms = append(ms, safeLine(s))
	}
	fmt.Printf("members: %s\n", strings.Join(ms, ", "))
	if s := ps.Slot; s != nil && s.Release {
		fmt.Println("this host's release is pending: etcd did not answer; the agent retries")
	}
	for _, m := range ps.Malformed {
		// Someone else's keys: escaped, as every text of others.
		fmt.Printf("malformed key %s: %s (delete it with etcdctl del once understood)\n", safeLine(m.Key), safeLine(m.Why))
	}
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return dur(now.Sub(t).Round(time.Second))
}

func runPoolRelease(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("pool release: give one host's id (drainctl pool status lists them)")
	}
	return printNote(client(c).PoolRelease(c.Context, c.Args().First(), c.Bool("force")))
}

func runPoolPause(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	return printNote(client(c).PoolPause(c.Context, c.String("reason")))
}

func runPoolResume(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	return printNote(client(c).PoolResume(c.Context))
}

// printNote prints the agent's note on a pool change, or returns its error.
func printNote(note string, err error) error {
	if err != nil {
		return err
	}
	fmt.Println(safeLine(note))
	return nil
}
