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
	"github.com/drainctl/drainctl/pkg/lbview"
)

// statusCommand shows where the server is and why, from the agent's
// state and the load balancers' view; it changes nothing.
func statusCommand() *cli.Command {
	return &cli.Command{
		Name:   "status",
		Usage:  "show the agent's state: in service or in maintenance, who and why, the forwards",
		Flags:  []cli.Flag{socketFlag(), jsonFlag(jsonForScripts)},
		Action: runStatus,
	}
}

// runStatus shows the agent's status; `maintenance status` too. Every
// text that came from a client (who, why, the command) is escaped. It
// takes no argument and has never refused one: a script passing one must
// not start failing.
func runStatus(c *cli.Context) error {
	st, err := client(c).Status(c.Context)
	if err != nil {
		return err
	}
	// --json is GET /v1/status as it is: one shape for scripts, whether
	// they use the CLI or the socket.
	if c.Bool("json") {
		return printJSON(st)
	}
	s := st.State
	fmt.Printf("state:    %s", s.Phase)
	if st.Running {
		fmt.Printf(" (%s in progress)", s.Op)
	}
	fmt.Println()
	// Who holds the server out, and until when: the first question of
	// whoever finds it out of rotation.
	if h := s.Holder; h != nil {
		fmt.Printf("holder:   %s since %s", safeLine(h.Who), h.Since.Local().Format(time.DateTime))
		if !h.Until.IsZero() {
			fmt.Printf(", until %s", h.Until.Local().Format(time.DateTime))
		}
		fmt.Println()
		if h.Reason != "" {
			fmt.Printf("reason:   %s\n", safeLine(h.Reason))
		}
		// A maintenance run's hold ends with its command; if that drainctl
		// died (SIGKILL, a reboot), nothing will end it, and the operator
		// must be told rather than left waiting.
		switch {
		case h.Command != "" && st.RunnerGone:
			fmt.Printf("command:  %s (maintenance run by pid %d, which is GONE: nobody will end this hold and the command's outcome is unknown; see its log, then maintenance exit --force)\n", safeLine(h.Command), h.RunnerPID)
		case h.Command != "":
			fmt.Printf("command:  %s (maintenance run by pid %d: the hold ends when it ends; exit --force ends it now)\n", safeLine(h.Command), h.RunnerPID)
		}
		if h.Log != "" {
			fmt.Printf("log:      %s\n", safeLine(h.Log))
		}
		if h.Unit != "" {
			// Stopped by someone else (systemctl, dpkg, a shutdown): the
			// unit's start puts the server back, nobody need exit.
			fmt.Printf("unit:     %s stopped; the server goes back when it starts again (drainctl-guard@%s)\n",
				safeLine(h.Unit), safeLine(strings.TrimSuffix(h.Unit, ".service"))+".service")
		}
	}
	if s.LastError != "" {
		fmt.Printf("error:    %s\n", safeLine(s.LastError))
	}
	if rb := s.Reboot; rb != nil {
		fmt.Printf("reboot:   %q since %s, leaving boot %s; the next boot puts the server back\n",
			safeLine(rb.Command), rb.Since.Local().Format(time.DateTime), safeLine(rb.BootID))
	}
	showOwed(s.Owed)
	showPool(st)
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "backend:  %s\n", st.Backend)
	fmt.Fprintln(w, "FORWARD\tSTATE\tREDIRECTED\tREFUSED")
	for _, f := range st.Forwards {
		fmt.Fprintf(w, "%d→%d\t%s\t%d\t%d\n", f.Forward.From, f.Forward.To, api.ForwardState(f), f.Redirected, f.Refused)
	}
	w.Flush() // to stdout: a failed write has nowhere to be reported
	for _, f := range st.Forwards {
		for _, p := range f.Problems {
			fmt.Printf("problem:  %d→%d: %s\n", f.Forward.From, f.Forward.To, safeLine(p))
		}
	}
	showHealthChecks(st.HealthChecks)
	// The last transition says what happened most recently, even when
	// the state is in service again.
	if n := len(s.History); n > 0 {
		last := s.History[n-1]
		fmt.Printf("last:     %s %s %s\n", last.Time.Local().Format(time.DateTime), last.Phase, safeLine(last.Note))
	}
	return nil
}

// showHealthChecks lists the load balancers checking the forward ports,
// and warns when none does: then withdrawing takes the server out of no
// rotation drainctl can see.
func showHealthChecks(hc *apitype.HealthChecks) {
	if hc == nil {
		fmt.Println("checks:   not watched (agent --health-checks-watch=false, or no CAP_NET_RAW)")
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
		fmt.Printf("checked:  %s%s\n", lbview.LB(l).Describe(time.Now()), state)
	}
	if active == 0 {
		fmt.Printf("warning:  no load balancer health-checks %s now: withdrawing will not take this server out of any rotation drainctl can see\n", lbview.PortsText(hc.Ports))
	}
}

// showPool says whether the host is in a pool, and the slot it holds:
// with none, the host decides alone (nothing stops every host going out
// at once).
func showPool(st apitype.Status) {
	p := st.Pool
	if p == nil {
		fmt.Println("pool:     none: this host decides alone (pool: in the config file coordinates a pool on etcd)")
		return
	}
	limit := safeLine(p.MaxUnavailable) + " (the pool's)"
	if p.MaxUnavailable == "" {
		limit = "not read yet (configured " + safeLine(p.ConfiguredMaxUnavailable) + ")"
	}
	fmt.Printf("pool:     %s as %s, max_unavailable %s", safeLine(p.Name), safeLine(p.ID), limit)
	if sl := st.State.Slot; sl != nil {
		fmt.Printf("; holds a slot since %s (%s)", sl.Since.Local().Format(time.DateTime), sl.Op)
		if sl.Release {
			fmt.Print(", release pending: etcd did not answer, the agent retries")
		}
	}
	fmt.Println()
	if d := api.PoolLimitDiffers(apitype.PoolStatus{MaxUnavailable: p.MaxUnavailable, ConfiguredMaxUnavailable: p.ConfiguredMaxUnavailable}); d != "" {
		fmt.Println("          " + safeLine(d))
	}
}

// showOwed shows a package's restart taken over by drainctl's
// policy-rc.d: the old binary serves until drainctl reloads, upgrades or
// restarts the unit.
func showOwed(o *apitype.Owed) {
	if o == nil {
		return
	}
	what := safeLine(o.Action) + " of " + safeLine(o.Unit)
	if o.Reason != "" {
		what += " (" + safeLine(o.Reason) + ")"
	}
	fmt.Printf("owed:     %s, taken over since %s: once the package manager is done (in a pool: and a slot is free) drainctl reloads, upgrades or restarts it, as the new files need, drained\n",
		what, o.Since.Local().Format(time.DateTime))
}
