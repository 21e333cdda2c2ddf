package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/api/apitype"
)

// maintenanceRebootCommand is the reboot of a patch day: the agent takes
// the pool slot, withdraws, drains and reboots; the agent of the next
// boot checks the web server, restores and gives the slot back. This
// command's connection ends with the host, so what it says before is all
// the caller gets: where to look afterwards.
func maintenanceRebootCommand() *cli.Command {
	return &cli.Command{
		Name:  "reboot",
		Usage: "withdraw, drain and reboot the host; after the boot the agent puts the server back by itself",
		Description: "In a pool, waits for a slot first. Then withdraws the forward, waits for the\n" +
			"drain (users with this server's cookie get until the drain deadline: the\n" +
			"reboot ends the sessions held in the server's memory), records the boot it\n" +
			"leaves, and runs the agent's reboot command (systemctl reboot unless\n" +
			"configured). This command then ends with the host, exit 0.\n\n" +
			"After the boot the agent checks the web server (for up to the agent's\n" +
			"--reboot-ready-timeout), restores the forward, waits for the load balancers to\n" +
			"put the server back, and gives the pool slot back; `drainctl history -n 1`\n" +
			"shows the whole reboot, phase by phase.\n\n" +
			"Every failure leaves the server out, held, and drainctl never reboots a held\n" +
			"server: the reboot command fails or the host does not go down within the\n" +
			"agent's --reboot-timeout (exit 14), or the web server does not answer after\n" +
			"the boot (held; in a pool its slot is kept, so the pool stops there).\n\n" +
			"--if-required reboots only when the host says it needs to\n" +
			"(/var/run/reboot-required, and needrestart's kernel check where it is\n" +
			"installed); otherwise nothing is touched, exit 0. Example, from cron:\n\n" +
			"    drainctl maintenance run --reason 'security updates' -- apt-get -y upgrade &&\n" +
			"    drainctl maintenance reboot --if-required --window 'Mon-Fri 02:00-05:00'",
		Flags: append(opFlags(false),
			&cli.BoolFlag{Name: "if-required", Usage: "only if the host needs a reboot (/var/run/reboot-required, needrestart); else change nothing, exit 0"}),
		Action: runReboot,
	}
}

func runReboot(c *cli.Context) error {
	req, err := request(c, apitype.OpReboot)
	if err != nil {
		return err
	}
	var down bool // the agent said the reboot command runs
	op := func(ctx context.Context, r apitype.Request, progress func(apitype.Event)) (apitype.Result, error) {
		return client(c).Reboot(ctx, r, func(ev apitype.Event) {
			if ev.Phase == apitype.PhaseRebooting {
				down = true
			}
			progress(ev)
		})
	}
	_, err = showOp(c.Context, c.Bool("json"), op, req)
	var me *apitype.Error
	if down && (err != nil && (!errors.As(err, &me) || me.Code == apitype.CodeStopping)) {
		// The host went down under the agent, as asked: this is the end
		// the command expects, not a failure.
		if !c.Bool("json") {
			fmt.Println("rebooting: the host is going down. After the boot the agent checks the web server, restores the forward and waits for the load balancers; `drainctl status` shows where it is, `drainctl history -n 1` the whole reboot.")
		}
		return nil
	}
	return err
}
