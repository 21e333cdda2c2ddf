package doctor

// The restarts nobody asks drainctl for: whether the guard unit drains
// them, and what each tool that restarts or reboots does here.

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drainctl/drainctl/pkg/settings"
	"github.com/drainctl/drainctl/pkg/window"
)

// notDrained is what an undrained stop or restart of the web server
// costs, as measured (issue 25): the listener closes at once and the
// load balancers learn it only from refused connections.
const notDrained = "each one closes the listener at once, with the server in rotation: new connections are refused for seconds and sticky users move; the load balancers learn it only from the refusals, and drainctl's history shows nothing"

func judgeRestarts(f Facts) []Finding {
	var out []Finding
	out = append(out, judgeGuards(f)...)
	out = append(out, judgeNeedrestart(f)...)
	out = append(out, judgeUnattended(f)...)
	out = append(out, judgePolicyRCD(f)...)
	return out
}

// guarded says whether g's stops are drained: it wants its guard, and the
// guard runs (or starts with it: an inactive unit has nothing to drain).
func (g Guarded) guarded() bool {
	return g.wants() && g.Guard != nil && g.Guard.LoadState == "loaded" &&
		(g.Guard.ActiveState == "active" || g.Unit.ActiveState != "active")
}

func (g Guarded) wants() bool { return slices.Contains(g.Unit.Wants, guardOf(g.Unit.Name)) }

// unguarded names the units whose stops are not drained.
func (f Facts) unguarded() []string {
	var out []string
	for _, g := range f.Restarts.Guarded {
		if !g.guarded() {
			out = append(out, g.Unit.Name)
		}
	}
	return out
}

// webGuarded says whether the web server's own stops are drained.
func (f Facts) webGuarded() bool {
	for _, g := range f.Restarts.Guarded {
		if g.Web {
			return g.guarded()
		}
	}
	return false
}

// addWants is the fix that makes a unit want its guard.
func addWants(unit string) string {
	return fmt.Sprintf(`systemctl edit %s, and add the two lines "[Unit]" and "Wants=%s"; then systemctl start %s`, unit, guardOf(unit), guardOf(unit))
}

func judgeGuards(f Facts) []Finding {
	if !f.Agent.Systemd {
		return []Finding{ok(AreaRestarts, "restarts.guard", "systemd does not run this host: restarts of the web server by hand, by dpkg or by a shutdown are not drained (the guard unit needs systemd), only drainctl's own (drainctl restart, drainctl maintenance)")}
	}
	var out []Finding
	if !f.Restarts.hasWeb() {
		switch f.Web.Preset.Name {
		case "":
			out = append(out, Finding{Area: AreaRestarts, Severity: OK, ID: "restarts.guard",
				Found: fmt.Sprintf("web server %s: doctor does not know its unit; its stops and restarts by others are drained only if the unit wants its guard", f.Settings.WebServer),
				Fix:   addWants("UNIT.service")})
		default:
			name := f.Web.Preset.Unit
			out = append(out, ok(AreaRestarts, "restarts.guard", fmt.Sprintf("systemd does not run %s: the guard has nothing to guard (web.unit says how the web server runs)", name)))
		}
	}
	for _, g := range f.Restarts.Guarded {
		out = append(out, judgeGuard(g))
	}
	if f.Restarts.ListErr != nil {
		out = append(out, warn(AreaRestarts, "restarts.guard", "cannot list the php-fpm units: "+f.Restarts.ListErr.Error(),
			"a php-fpm restarted by dpkg or needrestart answers 502 behind the web server, undrained unless its unit wants its guard",
			"see the error; for each php-fpm unit: "+addWants("php8.2-fpm.service")))
	}
	return out
}

func (r Restarts) hasWeb() bool {
	for _, g := range r.Guarded {
		if g.Web {
			return true
		}
	}
	return false
}

func judgeGuard(g Guarded) Finding {
	u, guard := g.Unit, guardOf(g.Unit.Name)
	impact := notDrained
	if !g.Web {
		impact = "a stop or restart of " + u.Name + " (dpkg upgrading PHP, needrestart) makes the web server answer 502 while the server is in rotation"
	}
	switch {
	case !g.wants():
		fix := addWants(u.Name)
		if g.Web {
			fix = fmt.Sprintf("install drainctl's package (it ships /usr/lib/systemd/system/%s.d/drainctl.conf), or %s", u.Name, fix)
		}
		found := fmt.Sprintf("%s does not want %s: its stops and restarts by dpkg, needrestart, systemctl and shutdowns are not drained", u.Name, guard)
		if g.Guard != nil && g.Guard.ActiveState == "active" {
			// Started by hand: PartOf= carries the unit's stops and
			// restarts to it, but nothing starts it after a stop.
			found = fmt.Sprintf("%s does not want %s: the guard runs now, but once %s stops, nothing starts it again and its later stops and restarts are not drained", u.Name, guard, u.Name)
		}
		return warn(AreaRestarts, "restarts.guard", found, impact, fix)
	case g.Guard == nil || g.Guard.LoadState != "loaded":
		state := "unknown to systemctl"
		if g.Guard != nil {
			state = g.Guard.LoadState
		}
		return warn(AreaRestarts, "restarts.guard", fmt.Sprintf("%s wants %s, but systemd has no such unit (%s)", u.Name, guard, state),
			impact, "install drainctl's package (it ships /usr/lib/systemd/system/drainctl-guard@.service), then systemctl daemon-reload && systemctl start "+guard)
	case u.ActiveState != "active":
		return ok(AreaRestarts, "restarts.guard", fmt.Sprintf("%s is %s: %s starts with it and drains its stops and restarts", u.Name, u.ActiveState, guard))
	case g.Guard.ActiveState == "active":
		return ok(AreaRestarts, "restarts.guard", fmt.Sprintf("%s's stops and restarts are drained (%s active)", u.Name, guard))
	}
	fix := fmt.Sprintf("systemctl start %s (the next start of %s starts it too)", guard, u.Name)
	if g.Guard.ActiveState == "failed" {
		fix = fmt.Sprintf("systemctl reset-failed %s && systemctl start %s; see journalctl -u %s", guard, guard, guard)
	}
	return warn(AreaRestarts, "restarts.guard", fmt.Sprintf("%s wants %s, but the guard is %s", u.Name, guard, g.Guard.ActiveState),
		"systemd stops only a guard that runs: until it does, "+impact, fix)
}

// needrestartModes say each mode in plain words.
var needrestartModes = map[string]string{
	"a": "restarts the services that use replaced libraries itself after every apt run (systemctl restart)",
	"l": "only lists the services to restart after an apt run: it restarts nothing itself",
	"i": "asks at a terminal which services to restart (systemctl restart); without one (unattended-upgrades) it only lists them",
}

func judgeNeedrestart(f Facts) []Finding {
	n := f.Restarts.Needrestart
	if !n.Installed {
		return []Finding{ok(AreaRestarts, "restarts.needrestart", "needrestart is not installed: nothing restarts services after a library upgrade (reboot says when one is owed)")}
	}
	mode, from := n.Mode, "set in "+n.ModeFile
	if mode == "" {
		mode, from = "i", "its default: no $nrconf{restart} set"
	}
	found := fmt.Sprintf("needrestart %s (mode %s, %s)", needrestartModes[mode], mode, from)
	var out []Finding
	if n.Err != nil {
		out = append(out, warn(AreaRestarts, "restarts.needrestart", "cannot read needrestart's configuration: "+n.Err.Error(),
			"its mode may be other than doctor says", "run drainctl doctor as root"))
	}
	unguarded := f.unguarded()
	switch {
	case mode == "l":
		out = append(out, ok(AreaRestarts, "restarts.needrestart", found))
	case len(unguarded) == 0 && f.Restarts.hasWeb():
		out = append(out, ok(AreaRestarts, "restarts.needrestart", found+": drained by the guard"))
	case !f.Agent.Systemd || !f.Restarts.hasWeb():
		out = append(out, Finding{Area: AreaRestarts, Severity: OK, ID: "restarts.needrestart", Found: found + ": the guard does not see them (restarts.guard)",
			Fix: "to restart services by hand, with the drain: needrestart's list, then drainctl restart for the web server"})
	default:
		out = append(out, warn(AreaRestarts, "restarts.needrestart", fmt.Sprintf("%s: undrained for %s", found, strings.Join(unguarded, ", ")),
			notDrained, "make the units want their guards (restarts.guard), or set $nrconf{restart} = 'l'; in /etc/needrestart/conf.d/drainctl.conf and restart them with drainctl restart"))
	}
	return out
}

// aptTrue is apt's reading of a boolean.
func aptTrue(v string) bool {
	switch strings.ToLower(v) {
	case "true", "yes", "on", "1", "with", "enable":
		return true
	}
	return false
}

func judgeUnattended(f Facts) []Finding {
	u := f.Restarts.Unattended
	if !u.Installed {
		return []Finding{ok(AreaRestarts, "restarts.unattended", "unattended-upgrades is not installed")}
	}
	var out []Finding
	if u.Err != nil {
		out = append(out, warn(AreaRestarts, "restarts.unattended", "cannot read apt's configuration: "+u.Err.Error(),
			"unattended-upgrades' settings may be other than doctor says", "run drainctl doctor as root"))
	}
	if u.Upgrade == "" || u.Upgrade == "0" {
		return append(out, ok(AreaRestarts, "restarts.unattended", "unattended-upgrades is installed but off (APT::Periodic::Unattended-Upgrade is 0 or unset)"))
	}
	runs := fmt.Sprintf("unattended-upgrades runs (APT::Periodic::Unattended-Upgrade %q in %s): dpkg restarts the web server when it upgrades it", u.Upgrade, u.UpgradeFile)
	switch {
	case f.webGuarded():
		out = append(out, ok(AreaRestarts, "restarts.unattended", runs+", drained by the guard"))
	case !f.Agent.Systemd || !f.Restarts.hasWeb():
		out = append(out, ok(AreaRestarts, "restarts.unattended", runs+"; the guard does not see it (restarts.guard)"))
	default:
		out = append(out, warn(AreaRestarts, "restarts.unattended", runs+", undrained", notDrained, "make the web server's unit want its guard (restarts.guard)"))
	}
	if aptTrue(u.Reboot) {
		out = append(out, judgeAutoReboot(f))
	}
	if w := f.Reboot.Window; !w.IsZero() {
		out = append(out, judgeUpgradeWindow(u.Timer, w))
	}
	return out
}

func judgeAutoReboot(f Facts) Finding {
	u := f.Restarts.Unattended
	at := "right after an upgrade that needs it"
	if t := u.RebootTime; t != "" && t != "now" {
		at = "at " + t + " after an upgrade that needs it"
	}
	found := fmt.Sprintf("unattended-upgrades reboots %s (Unattended-Upgrade::Automatic-Reboot %q in %s), with shutdown -r", at, u.Reboot, u.RebootFile)
	fix := fmt.Sprintf(`set Unattended-Upgrade::Automatic-Reboot "false"; and reboot with drainctl maintenance reboot --if-required --window '%s' from a cron job or timer`,
		cmp.Or(f.Reboot.Window.String(), "Mon-Fri 02:00-05:00"))
	switch {
	case f.Pool.Configured:
		wait := f.Settings.WebUnitWait
		return warn(AreaRestarts, "restarts.unattended-reboot", found+", outside the pool's queue",
			fmt.Sprintf("the guard drains the web server, but two hosts may reboot at once (after %s %s, over the pool's budget)", settings.KeyWebUnitWait, wait), fix)
	case !f.webGuarded():
		return warn(AreaRestarts, "restarts.unattended-reboot", found+", undrained", "the shutdown stops the web server in rotation: "+notDrained, fix)
	}
	return Finding{Area: AreaRestarts, Severity: OK, ID: "restarts.unattended-reboot", Found: found + ": the guard drains the web server at shutdown; with no pool nothing keeps two hosts from rebooting at once", Fix: fix}
}

// judgeUpgradeWindow says whether unattended-upgrades' runs (and so its
// restarts) fall inside the maintenance window.
func judgeUpgradeWindow(t *Timer, w window.Window) Finding {
	fix := fmt.Sprintf(`systemctl edit %s, and add the lines "[Timer]", "OnCalendar=", "OnCalendar=%s" and "RandomizedDelaySec=0"`, aptUpgradeTimer, calendarOf(w))
	if t == nil {
		return Finding{Area: AreaRestarts, Severity: OK, ID: "restarts.unattended-window",
			Found: fmt.Sprintf("doctor cannot read %s's schedule: whether unattended-upgrades runs inside the window %s is not judged", aptUpgradeTimer, w), Fix: fix}
	}
	if t.Next.IsZero() {
		return warn(AreaRestarts, "restarts.unattended-window", fmt.Sprintf("%s is not scheduled (OnCalendar %s)", t.Name, strings.Join(t.Calendar, ", ")),
			"unattended-upgrades does not run from it, or runs when something else starts it", "systemctl enable --now "+t.Name+"; to keep it inside the window: "+fix)
	}
	when := fmt.Sprintf("%s (OnCalendar %s) runs unattended-upgrades next at %s", t.Name, strings.Join(t.Calendar, ", "), t.Next.In(w.Location()).Format(time.DateTime))
	if t.RandomDelay > 0 {
		when += fmt.Sprintf(", plus up to %s at random", t.RandomDelay)
		if t.Drawn.After(t.Next) {
			when += fmt.Sprintf(" (this time %s)", t.Drawn.In(w.Location()).Format(time.TimeOnly))
		}
	}
	last := t.Next.Add(t.RandomDelay)
	if w.Contains(t.Next) && w.Contains(last) {
		return ok(AreaRestarts, "restarts.unattended-window", when+": inside the window "+w.String())
	}
	return warn(AreaRestarts, "restarts.unattended-window", when+": outside the window "+w.String(),
		"its upgrades restart the web server (and php-fpm) outside the window; and as the timer is Persistent, a run missed while the host was down comes right after the boot", fix)
}

// calendarOf is a window's opening as systemd's OnCalendar= writes it:
// "Mon-Fri 02:00-05:00 Europe/Berlin" is "Mon..Fri 02:00 Europe/Berlin".
func calendarOf(w window.Window) string {
	fields := strings.Fields(w.String())
	if len(fields) == 0 {
		return ""
	}
	var out []string
	if !strings.Contains(fields[0], ":") {
		var days []string
		for _, d := range strings.Split(fields[0], ",") {
			from, to, isRange := strings.Cut(d, "-")
			switch {
			case !isRange:
				days = append(days, d)
			case weekIndex(from) <= weekIndex(to):
				days = append(days, from+".."+to)
			default: // a range through Sunday (Fri-Mon): two for systemd
				days = append(days, dayRange(from, "Sun"), dayRange("Mon", to))
			}
		}
		out = append(out, strings.Join(days, ","))
		fields = fields[1:]
	}
	start, _, _ := strings.Cut(fields[0], "-")
	out = append(out, start)
	return strings.Join(append(out, fields[1:]...), " ")
}

// dayRange is OnCalendar's range of days from to.
func dayRange(from, to string) string {
	if from == to {
		return from
	}
	return from + ".." + to
}

// weekIndex is a day's place in the week from Monday, as windows write
// them.
func weekIndex(day string) int {
	return strings.Index("MonTueWedThuFriSatSun", day) / 3
}

func judgePolicyRCD(f Facts) []Finding {
	p := f.Restarts.PolicyRCD
	if p == nil || p.Drainctl {
		return nil
	}
	what := p.Path
	if p.Target != "" {
		what += " (→ " + p.Target + ")"
	}
	if p.Forbids {
		return []Finding{ok(AreaRestarts, "restarts.policy-rc.d", what+" answers 101 to everything: dpkg starts, stops and restarts no service, the web server included (an upgraded one runs the old binary until someone restarts it); needrestart, systemctl and shutdowns do not ask it; drainctl's policy-rc.d (/usr/lib/drainctl/policy-rc.d: in a pool, a package's restart with no slot free deferred, not taken over the budget) was not installed over it")}
	}
	return []Finding{ok(AreaRestarts, "restarts.policy-rc.d", what+" governs dpkg's starts, stops and restarts (invoke-rc.d, deb-systemd-invoke) before the guard sees them: if it answers 101 for the web server, dpkg does not restart it at all; drainctl's policy-rc.d (/usr/lib/drainctl/policy-rc.d: in a pool, a package's restart with no slot free deferred, not taken over the budget) was not installed over it")}
}
