package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/doctor"
	"github.com/drainctl/drainctl/pkg/window"
)

// doctorCommand says whether drainctl will work on this host, before
// anyone trusts it with a maintenance. It reads the settings as the
// agent does (the same file and flags) and changes nothing.
func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check this host before trusting drainctl with it: firewall, load balancers, web server, agent, pool, reboots, restarts",
		Description: "Reads the host and says, finding by finding, what is so, what will go wrong,\n" +
			"and the fix:\n" +
			"  firewall        the backend drainctl uses and why, firewall software whose\n" +
			"                  reload removes drainctl's rules, other rules on the forward port;\n" +
			"  load-balancers  who health-checks the forward port and how often (captured for\n" +
			"                  --listen, and the agent's view), hosts that check the service\n" +
			"                  port instead, checks nobody answers, fall and rise against the\n" +
			"                  intervals seen;\n" +
			"  web-server      the config test (run), the readiness check (run), the restart\n" +
			"                  command, and whether systemd runs the web server;\n" +
			"  agent           running or not, its state, drainctl.service's sandbox against\n" +
			"                  what the agent needs (AF_PACKET, CAP_NET_ADMIN), the state file;\n" +
			"  pool            etcd reachable, the members, and who uses the budget\n" +
			"                  (slots held, servers out of service, agents gone);\n" +
			"  reboot          whether a reboot is required, and --window;\n" +
			"  restarts        whether the web server's (and php-fpm's) stops and restarts by\n" +
			"                  others (dpkg, needrestart, systemctl, shutdowns) are drained by\n" +
			"                  drainctl-guard@UNIT.service; needrestart's mode, unattended-\n" +
			"                  upgrades' automatic reboots and schedule against --window,\n" +
			"                  policy-rc.d;\n" +
			"  haproxy-config  with --haproxy-config, haproxy-check's findings.\n" +
			"It changes nothing: no rule, no state, no restart. Run it as root on the app\n" +
			"server, with the agent's --config. Exit status: 0 all ok, 15 warnings, 16 a\n" +
			"finding that will lose requests or make drainctl's commands fail, 2 bad usage.",
		Flags: append(append([]cli.Flag{configFlag()}, flagsOf(agentSettingFlags())...),
			jsonFlag(jsonForScripts),
			&cli.StringFlag{Name: "haproxy-config", Usage: "also check the haproxy.cfg `FILE` (a copy of the load balancer's)"},
			&cli.DurationFlag{Name: "listen", Value: 6 * time.Second,
				Usage: "capture the load balancers' checks for `DURATION` (HAProxy checks every 2 s by default: give it 3 checks); 0 relies on the agent's view"},
			&cli.StringFlag{Name: "window", EnvVars: []string{"DRAINCTL_PATCH_WINDOW"},
				Usage: "the maintenance `WINDOW` your patch runs use, e.g. \"Mon-Fri 02:00-05:00 Europe/Berlin\": whether it is open now"},
		),
		Action: runDoctor,
	}
}

func runDoctor(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	if c.Duration("listen") < 0 {
		return usagef("--listen must not be negative")
	}
	s, err := agentSettings(c)
	if err != nil {
		return err
	}
	var w window.Window
	if v := c.String("window"); v != "" {
		if w, err = window.Parse(v); err != nil {
			return usagef("--window: %v", err)
		}
	}
	if !c.Bool("json") && c.Duration("listen") > 0 {
		fmt.Printf("watching the load balancers' checks for %s...\n", c.Duration("listen"))
	}
	facts, err := doctor.Gather(c.Context, doctor.Options{Settings: s, Listen: c.Duration("listen"),
		HAProxyConfig: c.String("haproxy-config"), Window: w, Log: newLogger(agentLogLevel(c))})
	if err != nil {
		return usageError{fmt.Errorf("--haproxy-config: %w", err)}
	}
	r := doctor.NewReport(doctor.Judge(facts))
	fs, worst := r.Findings, r.Worst
	if c.Bool("json") {
		if err := printJSON(r); err != nil {
			return err
		}
	} else {
		printFindings(fs)
	}
	n := map[doctor.Severity]int{}
	for _, f := range fs {
		n[f.Severity]++
	}
	switch worst {
	case doctor.Fail:
		return cli.Exit(fmt.Sprintf("drainctl doctor: %d failure(s), %d warning(s): requests will be lost or drainctl's commands will fail", n[doctor.Fail], n[doctor.Warning]), exitDoctorFail)
	case doctor.Warning:
		return cli.Exit(fmt.Sprintf("drainctl doctor: %d warning(s)", n[doctor.Warning]), exitDoctorWarning)
	}
	if !c.Bool("json") {
		fmt.Println("all ok: drainctl will work on this host")
	}
	return nil
}

// printFindings prints one line per finding, and for the others what
// will go wrong and the fix, indented under it.
func printFindings(fs []doctor.Finding) {
	const indent = "                         "
	for _, f := range fs {
		sev := f.Severity.String()
		if f.Severity == doctor.Fail {
			sev = "FAIL"
		}
		fmt.Printf("%-15s %-8s %s\n", f.Area, sev, safeLine(f.Found))
		if f.Impact != "" {
			fmt.Printf("%swhat goes wrong: %s\n", indent, safeLine(f.Impact))
		}
		if f.Fix != "" {
			fmt.Printf("%sfix: %s\n", indent, safeLine(strings.TrimSpace(f.Fix)))
		}
	}
}
