package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/pool"
)

// poolCommand sees and mends the pool this host is in. It asks the
// agent, which asks etcd with its own settings and credentials: the
// operator needs neither.
// poolDescription is pool's --help: what a pool is, what counts against
// its budget, and how an admin reaches it.
const poolDescription = "With a pool (pool: in the config file, or the agent's --pool-etcd), every\n" +
	"operation that takes the server out first takes one of max_unavailable\n" +
	"slots on etcd, and gives it back once the load balancers see the server\n" +
	"back. A held slot is the host's: it survives an agent restart and a reboot.\n" +
	"The budget counts every server out, not only the slots: a web server\n" +
	"failing its check, load balancers refusing it, or a host whose agent is\n" +
	"gone uses it as a slot does, until it is back (or forgotten).\n" +
	"max_unavailable is the pool's, stored on etcd: a host's file only seeds a\n" +
	"new pool (the first agent's wins); drainctl pool set changes it.\n\n" +
	"Administration (release, forget, pause, resume, set) goes through this\n" +
	"host's agent, with the host's etcd credentials; where etcd's access control\n" +
	"confines a host to its own keys (docs/rbac.md), give the admin's own with\n" +
	"--admin-config FILE (or --pool-username and --pool-password-file): the\n" +
	"command then asks etcd directly, not the agent."

func poolCommand() *cli.Command {
	return &cli.Command{
		Name:        "pool",
		Usage:       "the pool of app servers this host is in: who is out, who waits; free, forget, pause, resume, set its limit",
		Description: poolDescription,
		Subcommands: []*cli.Command{
			{
				Name:   "status",
				Usage:  "what uses the budget (every member out, and why), each member's health, who holds the slots, who waits, a pause",
				Flags:  []cli.Flag{socketFlag(), jsonFlag(jsonForScripts)},
				Action: runPoolStatus,
			},
			{
				Name:      "release",
				Usage:     "free the slot of a host that is gone (recorded in the history)",
				ArgsUsage: "ID",
				Description: "A live host gives its own slot back once it is back in rotation: freeing it\n" +
					"lets another server out while this one may still be out. Refused unless\n" +
					"--force.\n\n" +
					"A host that is gone still counts against the budget, its slot freed or\n" +
					"not, until it is back: drainctl pool forget ID removes one that is gone\n" +
					"for good.",
				Flags:  append([]cli.Flag{socketFlag(), &cli.BoolFlag{Name: "force", Usage: "free it even though the host's agent is alive"}}, poolDirectFlags()...),
				Action: runPoolRelease,
			},
			{
				Name:      "forget",
				Usage:     "remove a host that is gone for good from the pool: it stops counting against the budget (recorded in the history)",
				ArgsUsage: "ID",
				Description: "A host whose agent is gone (its lease ended: powered off, unplugged, its\n" +
					"agent stopped) counts against max_unavailable until it is back, or\n" +
					"forgotten: while nobody knows whether it serves, the pool keeps it out.\n" +
					"Forget a host removed for good (retired, or rebuilt under another id):\n" +
					"its record, health, place in line and slot go, so it no longer counts\n" +
					"against the budget nor in a percentage's base. Recorded in the history\n" +
					"(pool-forget).\n\n" +
					"Do not forget a host that is coming back (a reboot, a repair): counting\n" +
					"it out while it is out is what keeps the others in. A live member (its\n" +
					"agent runs) is refused (exit 5): stop its agent first. An id the pool\n" +
					"does not know changes nothing. If a forgotten host's agent starts\n" +
					"again, it joins the pool again.",
				Flags:  append([]cli.Flag{socketFlag()}, poolDirectFlags()...),
				Action: runPoolForget,
			},
			{
				Name:   "pause",
				Usage:  "grant no new slot, pool-wide (held slots stay held): to stop a bad patch rolling on",
				Flags:  append([]cli.Flag{socketFlag(), &cli.StringFlag{Name: "reason", Aliases: []string{"r"}, Usage: "why (shown to every waiter)"}}, poolDirectFlags()...),
				Action: runPoolPause,
			},
			{
				Name:   "resume",
				Usage:  "grant slots again: the line goes on, first come, first served",
				Flags:  append([]cli.Flag{socketFlag()}, poolDirectFlags()...),
				Action: runPoolResume,
			},
			{
				Name:      "set",
				Usage:     "set the pool's max_unavailable, for every member whatever its file says (recorded in the history)",
				ArgsUsage: "max-unavailable N|P%",
				Description: "The pool's limit lives on etcd with the pool: every member's grants obey it.\n" +
					"A host's max_unavailable (pool.max_unavailable, --pool-max-unavailable)\n" +
					"only seeds a pool that has none; a host whose file says otherwise is told\n" +
					"(status, pool status, doctor, the agent's log), never obeyed. A grant\n" +
					"decided on the old limit and not yet committed decides again: a lowered\n" +
					"limit is never exceeded. N is a count (at least 1), P% a percentage of\n" +
					"the pool's members (rounded down, at least one server).",
				Flags:  append([]cli.Flag{socketFlag()}, poolDirectFlags()...),
				Action: runPoolSet,
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

// printPool shows the pool for people: what uses the budget (a summary
// line, then one line per member counted out, as a waiter is told), the
// settings, the holders, the line, and every member's health.
func printPool(ps apitype.PoolStatus, now time.Time) {
	limit := ps.MaxUnavailable
	if limit == "" {
		limit = "none"
	}
	outs := api.PoolUnavailable(ps)
	fmt.Printf("pool %s: %d/%d unavailable (max_unavailable %s, the pool's; %d members); this host: %s, configured %s\n",
		safeLine(ps.Name), len(outs), ps.Allowed, safeLine(limit), api.PoolSize(ps), safeLine(ps.ID), safeLine(ps.ConfiguredMaxUnavailable))
	live := map[string]bool{}
	for _, m := range ps.Members {
		live[m.ID] = m.Live
	}
	for _, o := range outs {
		// The waiter's words (pool.Out.Text), so that what a host waits
		// for reads the same here.
		line := "  " + safeLine(pool.Out(o).Text())
		if !live[o.ID] {
			// A gone host counts until it is back: its slot freed or not,
			// only forgetting it stops that.
			line += fmt.Sprintf(" (counted until it is back; drainctl pool forget %s if it is removed for good)", safeLine(o.ID))
		}
		fmt.Println(line)
	}
	printPoolSettings(ps, now)
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	if len(ps.Holders) > 0 {
		fmt.Fprintln(w, "HOLDER\tOP\tSINCE\tAGENT\tBY\tREASON")
		for _, h := range ps.Holders {
			agent := "live"
			if !live[h.ID] {
				agent = "gone"
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
	if len(ps.Members) > 0 {
		fmt.Fprintln(w, "MEMBER\tAGENT\tHEALTH")
	}
	for _, m := range ps.Members {
		agent := "live"
		if !m.Live {
			agent = "gone " + ago(now, m.LastSeen) + " ago"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", safeLine(m.ID), agent, safeLine(healthText(m, now)))
	}
	w.Flush()
	if s := ps.Slot; s != nil && s.Release {
		fmt.Println("this host's release is pending: etcd did not answer; the agent retries")
	}
	for _, m := range ps.Malformed {
		// Someone else's keys: escaped, as every text of others.
		fmt.Printf("malformed key %s: %s (delete it with etcdctl del once understood)\n", safeLine(m.Key), safeLine(m.Why))
	}
}

// printPoolSettings says the pool's limit and who set it, or why no
// slot is granted, this host's file when it says otherwise, and a pause.
func printPoolSettings(ps apitype.PoolStatus, now time.Time) {
	switch {
	case ps.SettingsError != "":
		fmt.Printf("NO SLOT IS GRANTED: %s (drainctl pool set max-unavailable N rewrites them)\n", safeLine(ps.SettingsError))
	case ps.Settings == nil:
		fmt.Printf("the pool has no settings yet: the first agent to ask seeds them with its max_unavailable (this host's: %s)\n", safeLine(ps.ConfiguredMaxUnavailable))
	default:
		by := ps.Settings.By
		if !strings.HasPrefix(by, "seeded by ") {
			by = "set by " + by
		}
		fmt.Printf("max_unavailable %s: %s, %s ago\n", safeLine(ps.Settings.MaxUnavailable), safeLine(by), ago(now, ps.Settings.Since))
	}
	if d := api.PoolLimitDiffers(ps); d != "" {
		fmt.Println(safeLine(d))
	}
	if p := ps.Paused; p != nil {
		fmt.Printf("PAUSED by %s %s ago: %s (drainctl pool resume lets the line on)\n", safeLine(p.By), ago(now, p.Since), safeLine(p.Reason))
	}
}

// healthText says what a member's agent last said of its server: in
// service (no record: an agent keeps none while its server is in
// service, and an agent older than the health count says nothing), or
// out and why, with since when. A gone member's is what it said before
// it went, or, when its departure was recorded, since when it is gone.
func healthText(m apitype.PoolMember, now time.Time) string {
	h := m.Health
	var s string
	switch {
	case h == nil || h.InService || (h.Gone && m.Live):
		s = "in service"
	case h.Gone:
		return "agent gone, since " + ago(now, h.Since) + " ago"
	default:
		s = "out: " + h.Why
		if h.Why == "" {
			s = "out of service"
		}
	}
	if h != nil && !h.Gone && !h.Since.IsZero() {
		s += ", since " + ago(now, h.Since) + " ago"
	}
	if !m.Live {
		s = "last said: " + s
	}
	return s
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
	if ran, err := withDirectPool(c, func(ctx context.Context, d directAdmin) (string, error) {
		return d.release(ctx, c.Args().First(), c.Bool("force"))
	}); ran {
		return err
	}
	return printNote(client(c).PoolRelease(c.Context, c.Args().First(), c.Bool("force")))
}

func runPoolForget(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("pool forget: give one host's id (drainctl pool status lists them)")
	}
	if ran, err := withDirectPool(c, func(ctx context.Context, d directAdmin) (string, error) {
		return d.forget(ctx, c.Args().First())
	}); ran {
		return err
	}
	return printNote(client(c).PoolForget(c.Context, c.Args().First()))
}

func runPoolPause(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	if ran, err := withDirectPool(c, func(ctx context.Context, d directAdmin) (string, error) {
		return d.pause(ctx, c.String("reason"))
	}); ran {
		return err
	}
	return printNote(client(c).PoolPause(c.Context, c.String("reason")))
}

func runPoolResume(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	if ran, err := withDirectPool(c, func(ctx context.Context, d directAdmin) (string, error) {
		return d.resume(ctx)
	}); ran {
		return err
	}
	return printNote(client(c).PoolResume(c.Context))
}

func runPoolSet(c *cli.Context) error {
	if c.NArg() != 2 || (c.Args().First() != "max-unavailable" && c.Args().First() != "max_unavailable") {
		return usagef("pool set: give max-unavailable N (a count) or max-unavailable P%% (a percentage of the members)")
	}
	if _, err := pool.ParseLimit(c.Args().Get(1)); err != nil {
		return usagef("pool set: %v", err)
	}
	if ran, err := withDirectPool(c, func(ctx context.Context, d directAdmin) (string, error) {
		return d.set(ctx, c.Args().Get(1))
	}); ran {
		return err
	}
	return printNote(client(c).PoolSet(c.Context, c.Args().Get(1)))
}

// printNote prints the agent's note on a pool change, or returns its error.
func printNote(note string, err error) error {
	if err != nil {
		return err
	}
	fmt.Println(safeLine(note))
	return nil
}
