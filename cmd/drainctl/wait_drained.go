package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/settings"
)

// waitDrainedCommand is the drain alone, for scripts that withdraw the
// forward themselves and for trying a policy out before the agent uses it.
func waitDrainedCommand() *cli.Command {
	return &cli.Command{
		Name:  "wait-drained",
		Usage: "wait until the service port is quiet (no active connection), showing progress",
		Description: "Polls the connection table with the drain policy and returns when no active\n" +
			"connection has been seen for --drain-quiet (after at least --drain-min-wait),\n" +
			"or at the --drain-deadline. It does not withdraw anything: run it after\n" +
			"`forward withdraw`.\n" +
			"Active means: carried data within --drain-idle-after, seen by two polls in a row\n" +
			"(so health checks do not count), and not from a --drain-ignore'd address.\n\n" +
			"Exit status: 0 drained (or deadline with --drain-on-deadline proceed), 3\n" +
			"deadline with --drain-on-deadline abort. With --json, one JSON event per poll.",
		Flags:  append(append(tableFlags(), flagsOf(policySettingFlags())...), jsonFlag("print one JSON event per poll")),
		Action: runWaitDrained,
	}
}

// policyFrom is wait-drained's policy: the defaults and its flags (the
// config file's drain section is the agent's).
func policyFrom(c *cli.Context) (drain.Policy, error) {
	s := settings.Defaults()
	if _, err := applySettings(c, &s, policySettingFlags()); err != nil {
		return s.Policy, usageError{err}
	}
	if err := s.Policy.Validate(); err != nil {
		return s.Policy, usageError{err}
	}
	return s.Policy, nil
}

// runWaitDrained waits with the drain policy, as the agent does after a
// withdraw, but withdraws nothing.
func runWaitDrained(c *cli.Context) error {
	p, err := policyFrom(c)
	if err != nil {
		return err
	}
	t, err := openTable(c)
	if err != nil {
		return err
	}
	defer t.Close()
	// One line per poll on a terminal, rewritten; JSON lines for scripts.
	show := progressPrinter(c.Bool("json"))
	// No gate: without the agent nothing watches the load balancers, so
	// the policy's min-wait stands in for their confirmation.
	res, err := drain.Wait(c.Context, t, p, nil, func(e drain.Event) { show(api.DrainEventOf(e)) })
	if err != nil {
		return err
	}
	if !c.Bool("json") {
		fmt.Printf("%s after %s (%d active left)\n", res.Outcome, dur(res.Elapsed), res.Remaining)
	}
	return nil
}
