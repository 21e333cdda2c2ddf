package main

import (
	"cmp"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
)

// historyCommand shows the agent's record of operations: the answer to
// "who restarted web1 last night, and did it work?".
func historyCommand() *cli.Command {
	return &cli.Command{
		Name:  "history",
		Usage: "the last maintenance operations: who, when, why, how they ended",
		Description: "The agent keeps the last 1,000 operations (maintenance enter and exit,\n" +
			"restart, TTL expiry) in its state directory, and logs each as structured\n" +
			"fields. --json prints every field: each phase with its duration, the\n" +
			"config test's and restart command's exit statuses, the error.",
		Flags: []cli.Flag{
			socketFlag(),
			&cli.IntFlag{Name: "n", Value: 20, Usage: "show the last `N` operations (0: all)"},
			jsonFlag(jsonForScripts),
		},
		Action: runHistory,
	}
}

// runHistory lists the last operations, oldest first, as the agent keeps
// them.
func runHistory(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	if c.Int("n") < 0 {
		return usagef("-n %d: want a number of operations, 0 for all", c.Int("n"))
	}
	// The agent cuts the list: a thousand entries need not cross the
	// socket for the last twenty.
	entries, err := client(c).History(c.Context, c.Int("n"))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(entries)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "START\tOP\tOUTCOME\tTOOK\tNOW\tLBS OUT/BACK\tWHO\tREASON")
	for _, e := range entries {
		reason := e.Reason
		if e.Command != "" {
			// A maintenance run's: the command, and how it ended.
			reason = strings.TrimSpace(reason + " [run: " + e.Command)
			if e.CommandExit != nil {
				reason += fmt.Sprintf(", exit %d", *e.CommandExit)
			}
			reason += "]"
		}
		if e.Action != "" {
			// A restart owed to the package manager: what it did.
			reason = strings.TrimSpace(reason + " [" + e.Action + "]")
		}
		// How many load balancers confirmed the withdraw and the
		// restore ("-": not watched, or not done).
		lbs := cmp.Or(e.OutOfRotation, "-") + " " + cmp.Or(e.BackInRotation, "-")
		// Who and why come from clients: escaped, like every text of
		// others drainctl shows.
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Start.Local().Format(time.DateTime), e.Op, e.Outcome,
			(time.Duration(e.DurationMS) * time.Millisecond).String(), e.Phase, lbs, safeLine(e.Who), safeLine(reason))
	}
	if len(entries) == 0 {
		fmt.Fprintln(w, "(no operation yet)")
	}
	return w.Flush()
}
