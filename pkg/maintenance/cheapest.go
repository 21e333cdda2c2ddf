package maintenance

// The cheapest action that loads what a package upgrade installed. A
// package's postinst restarts its server whatever it replaced; a restart
// is a stop and a start, with a gap where nothing listens. drainctl
// takes the restart over (policy-rc.d's 101, policy.go) and does only
// what the new files need: the web server's graceful reload when the
// running server still maps every binary and library on disk (new
// configuration, modules' data, scripts), nginx's binary upgrade when
// its binary changed (a new master started by the old one, which hands
// it the listening sockets: no gap), and a restart otherwise (Apache's
// new binary, a replaced library). Each is drained the same way.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/drainctl/drainctl/pkg/runner"
	"github.com/drainctl/drainctl/pkg/stale"
	"github.com/drainctl/drainctl/pkg/state"
)

// The owed actions, cheapest first.
const (
	// actReload: the web server's config test and graceful reload (the
	// agent's commands, as drainctl restart): no new process.
	actReload = "reload"
	// actUpgrade: nginx's binary upgrade (its init script's upgrade:
	// USR2 to the master, then QUIT to the old one once the new one
	// runs).
	actUpgrade = "upgrade"
	// actRestart: systemd's restart of the unit, with new connections
	// held through the listener's gap.
	actRestart = "restart"
)

// binaryUpgrades are the units whose server can load a new binary
// without closing its listener, and how: nginx's init script (Debian's
// nginx-common ships it; its postinst runs the same after an upgrade).
var binaryUpgrades = map[string]string{"nginx.service": "/etc/init.d/nginx upgrade"}

// cheapest chooses the action for a restart of unit owed to the package
// manager, and says why.
func (e *Engine) cheapest(ctx context.Context, unit string) (action, why string) {
	replaced, err := e.replaced(ctx, unit)
	switch {
	case err != nil:
		return actRestart, fmt.Sprintf("whether it runs the files on disk is not known (%v): restarted", err)
	case len(replaced) == 0 && unit == e.d.WebUnit && e.d.Runner != nil:
		return actReload, "it runs the binary and libraries on disk: a graceful reload loads the new files"
	case len(replaced) == 0:
		return actRestart, "not the agent's web server, whose reload it knows: restarted"
	}
	files := strings.Join(replaced[:min(len(replaced), 3)], ", ")
	if len(replaced) > 3 {
		files += fmt.Sprintf(" and %d more", len(replaced)-3)
	}
	if _, ok := binaryUpgrades[unit]; ok {
		return actUpgrade, files + " replaced: its binary upgrade, which keeps the listener"
	}
	return actRestart, files + " replaced: a new process"
}

// replaced lists the files replaced under unit's main process
// (Deps.Replaced, else /proc).
func (e *Engine) replaced(ctx context.Context, unit string) ([]string, error) {
	if e.d.Replaced != nil {
		return e.d.Replaced(ctx, unit)
	}
	return stale.Unit(ctx, unit)
}

// upgradeUnit runs unit's binary upgrade (Deps.UnitUpgrade, else
// binaryUpgrades), bounded.
func (e *Engine) upgradeUnit(ctx context.Context, unit string) (runner.Output, error) {
	if e.d.UnitUpgrade != nil {
		return e.d.UnitUpgrade(ctx, unit)
	}
	// The init script waits up to 10 s for the new master's pid file.
	return runner.Command{Line: binaryUpgrades[unit], Timeout: time.Minute}.Run(ctx)
}

// clearOwed drops the restart owed of unit from the state: written with
// the step that does the action, so an agent killed from there on
// finishes that operation (Resume), not owes it again.
func clearOwed(unit string) func(*state.State) {
	return func(st *state.State) {
		if st.Owed != nil && st.Owed.Unit == unit {
			st.Owed = nil
		}
	}
}

// owedReload is the owed action when nothing the server runs was
// replaced: restart's config test and graceful reload. A config test
// that fails reloads nothing (the old configuration serves) and puts the
// server back.
func (r *opRun) owedReload(why string) error {
	res := r.res
	if err := r.restartSteps(clearOwed(r.req.Unit)); err != nil {
		return err
	}
	if err := r.putBack(closing{note: r.req.Unit + " reloaded"}); err != nil {
		res.Phase, res.Holder = state.Held, r.e.led.get().Holder
		return err
	}
	res.Phase, res.Elapsed = state.InService, r.elapsed()
	res.Note = r.req.Unit + " reloaded (" + why + "); " + backNote(res.Back)
	return nil
}

// owedUpgrade is nginx's binary upgrade; one that fails (the old master
// gone, no new pid file in time) falls back to the restart, as nginx's
// own postinst does.
func (r *opRun) owedUpgrade(why string) error {
	e, res, unit := r.e, r.res, r.req.Unit
	if err := r.step(state.Restarting, binaryUpgrades[unit], clearOwed(unit)); err != nil {
		return err
	}
	out, ferr := e.upgradeUnit(e.ctx, unit)
	res.Restart = &out
	r.publish(Event{Op: r.op, Phase: state.Restarting, Output: &out})
	if ferr != nil && e.ctx.Err() != nil {
		return errStopping
	}
	if ferr != nil {
		r.warn(fmt.Sprintf("%s's binary upgrade failed (%v): restarting it instead", unit, ferr))
		why += "; the binary upgrade failed"
		r.action = actRestart + ": " + why
		return r.owedRestartUnit(why)
	}
	if err := r.putBack(closing{note: unit + " upgraded"}); err != nil {
		res.Phase, res.Holder = state.Held, e.led.get().Holder
		return err
	}
	res.Phase, res.Elapsed = state.InService, r.elapsed()
	res.Note = unit + " binary upgraded (" + why + "); " + backNote(res.Back)
	return nil
}
