package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/haproxy"
)

// haproxyConfigCommand writes the backend drainctl's pattern needs, so
// that nobody has to get its details (one cookie for both entries, the
// check port, retry-on) right by hand; pkg/haproxy explains each line.
func haproxyConfigCommand() *cli.Command {
	cmd := &cli.Command{
		Name:  "haproxy-config",
		Usage: "print the HAProxy backend for drainctl's pattern",
		Description: "Each app server is listed twice with one cookie: the primary entry sends\n" +
			"traffic to the service port and health-checks the forward port (withdrawing\n" +
			"the forward takes it out for new users); the backup entry, with a tolerant\n" +
			"check, keeps serving users whose cookie names the server. retry-on and option\n" +
			"redispatch cover the keep-alive connections a graceful restart closes.\n\n" +
			"--style agent-check writes the other way in: one entry per server, and\n" +
			"HAProxy's agent-check asking drainctl's agent (agent_check_listen), which\n" +
			"answers drain while the server is out; HAProxy's DRAIN keeps the server's\n" +
			"cookie users on it and sends nobody new.\n\n" +
			"  drainctl haproxy-config --server web1=10.0.0.11 --server web2=10.0.0.12",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "server", Aliases: []string{"s"}, Required: true, Usage: "app server `NAME=ADDRESS`; repeat for each"},
			haproxyForwardFlag("the forward `FROM:TO` (checked port : service port)"),
			&cli.StringFlag{Name: "haproxy-backend", Value: "app", Usage: "HAProxy backend `NAME`"},
			// Its name until --backend came to mean the netfilter backend
			// elsewhere: kept, unlisted, for the scripts that use it.
			&cli.StringFlag{Name: "backend", Hidden: true, Usage: "old name of --haproxy-backend"},
			&cli.StringFlag{Name: "cookie", Value: "SRV", Usage: "persistence cookie `NAME`"},
			&cli.StringFlag{Name: "check-path", Value: "/", Usage: "health check `PATH`"},
			&cli.StringFlag{Name: "style", Value: "recommended", Usage: "`STYLE`: recommended (two entries per server, the check through the forward), " +
				"agent-check (one entry per server; drainctl's agent answers HAProxy's agent-check: set agent_check_listen), " +
				"or through-forward (traffic through the forward port: users move; for comparison)"},
			&cli.UintFlag{Name: "agent-port", Value: 8081, Usage: "with --style agent-check: the `PORT` of the agents' agent_check_listen"},
		},
		Action: runHAProxyConfig,
	}
	// Completion offers the listed flags only, not the hidden old name.
	cmd.BashComplete = completeVisibleFlags(cmd)
	return cmd
}

// runHAProxyConfig prints the backend the flags describe.
func runHAProxyConfig(c *cli.Context) error {
	f, err := haproxyForward(c)
	if err != nil {
		return err
	}
	name, err := haproxyBackendName(c)
	if err != nil {
		return err
	}
	o := haproxy.Options{Backend: name, Cookie: c.String("cookie"), CheckPath: c.String("check-path"),
		ServicePort: f.To, ForwardPort: f.From}
	if err := setStyle(c, &o); err != nil {
		return err
	}
	// NAME=ADDRESS, no blanks: both land on a line of haproxy.cfg.
	for _, s := range c.StringSlice("server") {
		name, addr, ok := strings.Cut(s, "=")
		if !ok || name == "" || addr == "" || strings.ContainsAny(name+addr, " \t") {
			return usagef("--server %q: want NAME=ADDRESS, e.g. web1=10.0.0.11", s)
		}
		o.Servers = append(o.Servers, haproxy.Server{Name: name, Host: addr})
	}
	be, err := haproxy.Backend(o)
	if err != nil {
		return usageError{err}
	}
	fmt.Print(be)
	return nil
}

// haproxyBackendName is --haproxy-backend, or its old name --backend.
func haproxyBackendName(c *cli.Context) (string, error) {
	if !c.IsSet("backend") {
		return c.String("haproxy-backend"), nil
	}
	if c.IsSet("haproxy-backend") && c.String("haproxy-backend") != c.String("backend") {
		return "", usagef("--backend %q and --haproxy-backend %q: --backend is the old name of --haproxy-backend; give one", c.String("backend"), c.String("haproxy-backend"))
	}
	return c.String("backend"), nil
}

// setStyle sets the pattern --style names.
func setStyle(c *cli.Context, o *haproxy.Options) error {
	switch c.String("style") {
	case "recommended":
	case "through-forward":
		o.ThroughForward = true
	case "agent-check":
		p := c.Uint("agent-port")
		if p == 0 || p > 65535 {
			return usagef("--agent-port %d: want a port between 1 and 65535", p)
		}
		o.AgentPort = uint16(p)
	default:
		return usagef("--style %q: want recommended, agent-check or through-forward", c.String("style"))
	}
	return nil
}
