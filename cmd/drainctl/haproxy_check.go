package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/haproxy"
	"github.com/drainctl/drainctl/pkg/settings"
)

// haproxyCheckCommand reads a haproxy.cfg as drainctl's agents will meet
// it: the checks of the forward port, the backup entries, fall and rise.
// It runs anywhere (the load balancer, a laptop): it needs no agent.
func haproxyCheckCommand() *cli.Command {
	return &cli.Command{
		Name:      "haproxy-check",
		Usage:     "check a haproxy.cfg: what will lose requests or sessions during maintenance",
		ArgsUsage: "FILE",
		Description: "Reads an HAProxy configuration and reports, per backend and server, what will\n" +
			"fail requests or move sticky users while drainctl withdraws a server, with the\n" +
			"line to change, and primary entries whose fall or rise differ from what the\n" +
			"agents count (--fall, --rise: their health_checks), which would make their\n" +
			"\"out of rotation\" or \"back in rotation\" wrong. Exit status: 0 nothing\n" +
			"found, 1 problems found, 2 unreadable.",
		Flags: []cli.Flag{
			haproxyForwardFlag("the forward `FROM:TO`"),
			&cli.IntFlag{Name: "fall", Value: settings.Defaults().Checks.Fall, Usage: "the agents' health_checks fall: the primary entries' fall must be `N`"},
			&cli.IntFlag{Name: "rise", Value: settings.Defaults().Checks.Rise, Usage: "the agents' health_checks rise: the primary entries' rise must be `N`"},
			jsonFlag(jsonForScripts),
		},
		Action: runHAProxyCheck,
	}
}

// runHAProxyCheck reports the findings; they exit 1, an unreadable file 2.
func runHAProxyCheck(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("give one haproxy.cfg, e.g. drainctl haproxy-check /etc/haproxy/haproxy.cfg")
	}
	if c.Int("fall") < 1 || c.Int("rise") < 1 {
		return usagef("--fall and --rise must be at least 1")
	}
	f, err := haproxyForward(c)
	if err != nil {
		return err
	}
	fh, err := os.Open(c.Args().First())
	if err != nil {
		return usageError{err}
	}
	defer fh.Close()
	fs, err := haproxy.Check(fh, haproxy.Expect{ForwardPort: int(f.From), ServicePort: int(f.To), Fall: c.Int("fall"), Rise: c.Int("rise")})
	if err != nil {
		return usageError{fmt.Errorf("%s: %w", c.Args().First(), err)}
	}
	if c.Bool("json") {
		// [] rather than null: a script iterates over it either way.
		if fs == nil {
			fs = []haproxy.Finding{}
		}
		if err := printJSON(fs); err != nil {
			return err
		}
	} else {
		for _, x := range fs {
			who := "backend " + x.Backend
			if x.Server != "" {
				who += ", server " + x.Server
			}
			fmt.Printf("%s:%d: %s: %s\n    change to: %s\n", c.Args().First(), x.Line, who, x.Problem, x.Fix)
		}
	}
	if len(fs) > 0 {
		return cli.Exit(fmt.Sprintf("drainctl: %d problem(s) found", len(fs)), 1)
	}
	if !c.Bool("json") {
		fmt.Println("no problem found: withdrawing a server will not lose requests or sessions")
	}
	return nil
}
