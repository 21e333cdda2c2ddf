package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/origin"
)

// hookCommand is what the guard unit (drainctl-guard@UNIT.service) runs
// when systemd stops the web server's unit and starts it again. People
// do not run it; it is documented so that they can read what it does.
func hookCommand() *cli.Command {
	return &cli.Command{
		Name:  "hook",
		Usage: "the guard unit's: the web server's unit stops or started (systemd runs it, not people)",
		Description: "drainctl-guard@UNIT.service runs `drainctl hook stopping UNIT` before systemd\n" +
			"stops the web server's unit UNIT, whoever asked (dpkg's maintainer scripts,\n" +
			"needrestart, unattended-upgrades, a person's systemctl restart or stop, a\n" +
			"shutdown), and `drainctl hook started UNIT` after it started.\n\n" +
			"stopping asks the agent to take the server out of rotation first, as\n" +
			"drainctl's own operations do: a pool slot, the withdraw, the load balancers'\n" +
			"confirmation, the drain. The agent waits at most its web_unit.wait for the\n" +
			"slot and as long for the drain (the requests in flight), then lets systemd go\n" +
			"ahead (over the pool's budget if no slot came: the history says so). Unless\n" +
			"the host shuts down, new connections are then held, not refused, while the\n" +
			"web server does not listen (at most 30 s after a restart's stop, 10 s after a\n" +
			"plain stop): the load balancer's next SYN lands on the new one. The history\n" +
			"names who asked: \"dpkg: apache2 2.4.68-1~deb12u1 → 2.4.71-1~deb12u1\",\n" +
			"\"needrestart\", \"systemctl restart apache2 by alice (pts/0)\", \"shutdown\".\n\n" +
			"started puts the server back if that unit's stop took it out: readiness,\n" +
			"restore, the load balancers' confirmation, the slot given back. A server held\n" +
			"by a person or a maintenance run stays held.\n\n" +
			"Both exit 0 whatever happens (the agent not running, busy, slow): systemd\n" +
			"must never be kept from stopping or starting the web server by drainctl.",
		Subcommands: []*cli.Command{
			{Name: "stopping", Usage: "systemd is about to stop UNIT: take the server out of rotation first", ArgsUsage: "UNIT",
				Flags: []cli.Flag{socketFlag(), jsonFlag(jsonOpLines)}, Action: hookStopping},
			{Name: "started", Usage: "systemd started UNIT: put the server back if its stop took it out", ArgsUsage: "UNIT",
				Flags: []cli.Flag{socketFlag(), jsonFlag(jsonOpLines)}, Action: hookStarted},
			{Name: "policy", Usage: "the package manager would ACTION UNIT: exit 101 when drainctl takes the restart over", ArgsUsage: "UNIT ACTION",
				Description: "drainctl's policy-rc.d (/usr/lib/drainctl/policy-rc.d) runs it for the web\n" +
					"servers' units when deb-systemd-invoke or invoke-rc.d would restart one (or\n" +
					"upgrade nginx's binary). The agent records the restart owed (drainctl status\n" +
					"shows it) and answers defer: exit 101, the package manager skips the restart,\n" +
					"the old binary keeps serving, and once the package manager is done (in a\n" +
					"pool: and the pool grants a slot) the agent does itself, drained, the\n" +
					"cheapest action the new files need: the web server's graceful reload if the\n" +
					"package replaced nothing it runs, nginx's binary upgrade, else a restart.\n" +
					"Otherwise exit 0: another action, the server already out, the agent not\n" +
					"running, any error (the guard unit still drains the restart).",
				Flags: []cli.Flag{socketFlag()}, Action: hookPolicy},
		},
	}
}

// hookUnit is the one argument, the web server's unit.
func hookUnit(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", usagef("want one argument, the web server's unit (e.g. apache2.service)")
	}
	unit := c.Args().First()
	if !strings.Contains(unit, ".") {
		unit += ".service"
	}
	return unit, nil
}

func hookStopping(c *cli.Context) error {
	unit, err := hookUnit(c)
	if err != nil {
		return err
	}
	o := origin.Of(c.Context, unit)
	job := apitypeJob(o)
	if job == "" {
		// The guard alone stops (the package removed, a person's
		// systemctl on the guard): the web server stays up.
		fmt.Printf("%s is not stopping (%s): nothing to do\n", unit, o.Text)
		return nil
	}
	req := apitype.Request{Who: "systemd", Reason: o.Text, Unit: unit, Job: job}
	return hookOp(c, req, client(c).WebStop)
}

func hookStarted(c *cli.Context) error {
	unit, err := hookUnit(c)
	if err != nil {
		return err
	}
	return hookOp(c, apitype.Request{Who: "systemd", Unit: unit}, client(c).WebStart)
}

// exitDefer is policy-rc.d's "action forbidden" (invoke-rc.d(8)): the
// package manager skips the action and goes on. Only hook policy exits
// with it, for policy-rc.d to pass on.
const exitDefer = 101

// policyWait bounds the question to the agent: the package manager
// waits for the answer.
const policyWait = 10 * time.Second

func hookPolicy(c *cli.Context) error {
	if c.NArg() != 2 {
		return usagef("want two arguments, the unit and the action (e.g. apache2.service restart)")
	}
	unit, action := c.Args().Get(0), c.Args().Get(1)
	if !strings.Contains(unit, ".") {
		unit += ".service"
	}
	ctx, cancel := context.WithTimeout(c.Context, policyWait)
	defer cancel()
	req := apitype.Request{Who: "dpkg", Reason: origin.Of(ctx, unit).Text, Unit: unit, Job: action}
	a, err := client(c).WebPolicy(ctx, req)
	if err != nil {
		// Never in apt's way: the guard drains the restart as it can.
		fmt.Fprintf(os.Stderr, "drainctl: %v; %s %s goes on\n", err, action, unit)
		return nil
	}
	if !a.Defer {
		return nil
	}
	return cli.Exit("drainctl: "+action+" of "+unit+" taken over: "+a.Note, exitDefer)
}

// apitypeJob is the job the agent is told of: a shutdown, a restart (the
// unit starts again at once), a stop; none when the web server is not
// stopping at all.
func apitypeJob(o origin.Origin) string {
	switch {
	case o.Shutdown:
		return "shutdown"
	case o.Restart():
		return "restart"
	case o.Job == "" && o.GuardJob != "":
		return ""
	}
	// A stop, or a job systemd did not say: out until the next start.
	return "stop"
}

// hookOp runs the operation and says what became of it; its failures are
// told, never returned: systemd goes on whatever drainctl says.
func hookOp(c *cli.Context, req apitype.Request, op opFunc) error {
	_, err := showOp(c.Context, c.Bool("json"), op, req)
	if err == nil {
		return nil
	}
	var me *apitype.Error
	switch {
	case errors.Is(err, api.ErrUnreachable):
		fmt.Fprintf(os.Stderr, "drainctl: %v; %s goes on without drainctl\n", err, req.Unit)
	case errors.As(err, &me) && me.Code == apitype.CodeBadRequest:
		return err // the guard unit is miswritten: say so, exit 2
	default:
		fmt.Fprintf(os.Stderr, "drainctl: %v: %s goes on\n", err, req.Unit)
	}
	return nil
}
