package agent

import (
	"context"
	"strings"
	"time"

	"github.com/drainctl/drainctl/pkg/bootinfo"
	"github.com/drainctl/drainctl/pkg/maintenance"
	"github.com/drainctl/drainctl/pkg/ready"
	"github.com/drainctl/drainctl/pkg/runner"
	"github.com/drainctl/drainctl/pkg/settings"
)

// hostBoot is the engine's view of this host's boots (maintenance.Boot).
type hostBoot struct{ check bootinfo.RebootCheck }

func (hostBoot) ID() (string, error)         { return bootinfo.Boot() }
func (hostBoot) Started() (time.Time, error) { return bootinfo.InitStart() }

// RebootRequired says why a reboot is needed, or what was checked when
// none is: the engine's note reads "no reboot required (WHY)".
func (b hostBoot) RebootRequired(ctx context.Context) (bool, string, error) {
	n, err := b.check.Required(ctx)
	if err != nil {
		return false, "", err
	}
	if n.Required {
		return true, strings.Join(n.Reasons, "; "), nil
	}
	notes := n.Skipped
	if len(n.Checked) > 0 {
		notes = append([]string{"checked " + strings.Join(n.Checked, ", ")}, notes...)
	}
	return false, strings.Join(notes, "; "), nil
}

// rebootCommand is the configured reboot command (maintenance.Rebooter).
type rebootCommand struct{ runner.Command }

func (c rebootCommand) Reboot(ctx context.Context) (runner.Output, error) { return c.Run(ctx) }
func (c rebootCommand) String() string                                    { return c.Line }

// withReboots lets the engine reboot the host as the settings say.
func withReboots(d *maintenance.Deps, s settings.Settings) {
	d.Boot, d.Rebooter, d.RebootTimeout = hostBoot{}, rebootCommand{s.Reboot.Command}, s.Reboot.Timeout
	bootReady := s.Ready
	bootReady.Timeout = s.Reboot.ReadyTimeout
	d.BootReady = ready.Check(bootReady)
}
