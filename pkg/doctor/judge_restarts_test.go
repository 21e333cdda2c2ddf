package doctor

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/runner"
	"github.com/drainctl/drainctl/pkg/window"
)

// fpm is an active php-fpm unit, wanting its guard or not, the guard
// in state guard ("" for the unit's own guard unknown to systemctl).
func fpm(wants bool, guard string) Guarded {
	u := &Unit{Name: "php8.2-fpm.service", LoadState: "loaded", ActiveState: "active"}
	if wants {
		u.Wants = []string{"php-fpm-helper.service", "drainctl-guard@php8.2-fpm.service"}
	}
	g := Guarded{Unit: u}
	if guard != "" {
		g.Guard = &Unit{Name: "drainctl-guard@php8.2-fpm.service", LoadState: "loaded", ActiveState: guard}
	}
	return g
}

// apt's daily upgrade timer as Debian ships it: 06:00 plus up to an
// hour, next on the day after now.
func debianTimer() *Timer {
	return &Timer{Name: aptUpgradeTimer, Calendar: []string{"*-*-* 06:00:00"}, Next: time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC),
		Drawn: time.Date(2026, 12, 2, 6, 49, 20, 0, time.UTC), RandomDelay: time.Hour}
}

// The restarts area, a rule at a time: the healthy host with one fact
// changed, the finding (found by its ID and a part of what it says),
// its severity, and a part of its fix.
func TestJudgeRestarts(t *testing.T) {
	mustWindow := func(s string) window.Window {
		w, err := window.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	unattended := func(f *Facts) {
		f.Restarts.Unattended = Unattended{Installed: true, Upgrade: "1", UpgradeFile: "/etc/apt/apt.conf.d/20auto-upgrades"}
	}
	for _, tc := range []struct {
		name   string
		change func(*Facts)
		id     string
		sev    Severity
		says   string
		fix    string
	}{
		{"as packaged", func(*Facts) {}, "restarts.guard", OK,
			"apache2.service's stops and restarts are drained (drainctl-guard@apache2.service active)", ""},
		{"no systemd", func(f *Facts) { f.Agent.Systemd, f.Restarts.Guarded = false, nil }, "restarts.guard", OK,
			"systemd does not run this host: restarts of the web server by hand, by dpkg or by a shutdown are not drained", ""},
		{"no drop-in (a tarball install)", func(f *Facts) { f.Web.Unit.Wants = nil }, "restarts.guard", Warning,
			"apache2.service does not want drainctl-guard@apache2.service", `systemctl edit apache2.service, and add the two lines "[Unit]" and "Wants=drainctl-guard@apache2.service"`},
		{"guard started by hand, no drop-in", func(f *Facts) { f.Web.Unit.Wants = []string{"network-online.target"} }, "restarts.guard", Warning,
			"the guard runs now, but once apache2.service stops, nothing starts it again", "Wants=drainctl-guard@apache2.service"},
		{"no drop-in, no guard", func(f *Facts) { f.Web.Unit.Wants, f.Restarts.Guarded[0].Guard.ActiveState = nil, "inactive" }, "restarts.guard", Warning,
			"apache2.service does not want drainctl-guard@apache2.service: its stops and restarts by dpkg, needrestart, systemctl and shutdowns are not drained", "drainctl.conf"},
		{"guard not started yet", func(f *Facts) { f.Restarts.Guarded[0].Guard.ActiveState = "inactive" }, "restarts.guard", Warning,
			"apache2.service wants drainctl-guard@apache2.service, but the guard is inactive", "systemctl start drainctl-guard@apache2.service (the next start of apache2.service starts it too)"},
		{"guard failed", func(f *Facts) { f.Restarts.Guarded[0].Guard.ActiveState = "failed" }, "restarts.guard", Warning,
			"but the guard is failed", "systemctl reset-failed drainctl-guard@apache2.service"},
		{"guard template missing", func(f *Facts) { f.Restarts.Guarded[0].Guard.LoadState = "not-found" }, "restarts.guard", Warning,
			"systemd has no such unit (not-found)", "drainctl-guard@.service"},
		{"web server stopped", func(f *Facts) {
			f.Web.Unit.ActiveState = "inactive"
			f.Restarts.Guarded[0].Guard.ActiveState = "inactive"
		}, "restarts.guard", OK,
			"apache2.service is inactive: drainctl-guard@apache2.service starts with it", ""},
		{"systemd does not run the web server", func(f *Facts) { f.Web.Unit.LoadState, f.Restarts.Guarded = "not-found", nil }, "restarts.guard", OK,
			"systemd does not run apache2.service", ""},
		{"custom web server", func(f *Facts) {
			f.Settings.WebServer, f.Web.Preset, f.Web.Unit, f.Restarts.Guarded = "custom", runner.WebServer{}, nil, nil
		}, "restarts.guard", OK, "web server custom: doctor does not know its unit", "Wants=drainctl-guard@UNIT.service"},
		{"php-fpm unguarded", func(f *Facts) { f.Restarts.Guarded = append(f.Restarts.Guarded, fpm(false, "inactive")) }, "restarts.guard", Warning,
			"php8.2-fpm.service does not want drainctl-guard@php8.2-fpm.service", `systemctl edit php8.2-fpm.service, and add the two lines "[Unit]" and "Wants=drainctl-guard@php8.2-fpm.service"`},
		{"php-fpm guarded", func(f *Facts) { f.Restarts.Guarded = append(f.Restarts.Guarded, fpm(true, "active")) }, "restarts.guard", OK,
			"php8.2-fpm.service's stops and restarts are drained", ""},

		{"needrestart asks (its default)", func(f *Facts) { f.Restarts.Needrestart = Needrestart{Installed: true} }, "restarts.needrestart", OK,
			"needrestart asks at a terminal which services to restart (systemctl restart); without one (unattended-upgrades) it only lists them (mode i, its default: no $nrconf{restart} set): drained by the guard", ""},
		{"needrestart restarts, unguarded", func(f *Facts) {
			f.Restarts.Needrestart = Needrestart{Installed: true, Mode: "a", ModeFile: "/etc/needrestart/conf.d/auto.conf"}
			f.Web.Unit.Wants = nil
		}, "restarts.needrestart", Warning, "restarts the services that use replaced libraries itself after every apt run (systemctl restart) (mode a, set in /etc/needrestart/conf.d/auto.conf): undrained for apache2.service", "restarts.guard"},
		{"needrestart restarts php-fpm unguarded", func(f *Facts) {
			f.Restarts.Needrestart = Needrestart{Installed: true, Mode: "a", ModeFile: "/etc/needrestart/needrestart.conf"}
			f.Restarts.Guarded = append(f.Restarts.Guarded, fpm(true, "inactive"))
		}, "restarts.needrestart", Warning, "undrained for php8.2-fpm.service", "restarts.guard"},
		{"needrestart lists, unguarded", func(f *Facts) {
			f.Restarts.Needrestart = Needrestart{Installed: true, Mode: "l", ModeFile: "/etc/needrestart/needrestart.conf"}
			f.Web.Unit.Wants = nil
		}, "restarts.needrestart", OK, "only lists the services to restart", ""},
		{"needrestart restarts, guarded", func(f *Facts) {
			f.Restarts.Needrestart = Needrestart{Installed: true, Mode: "a", ModeFile: "/etc/needrestart/needrestart.conf"}
		}, "restarts.needrestart", OK, "(mode a, set in /etc/needrestart/needrestart.conf): drained by the guard", ""},
		{"needrestart not installed", func(*Facts) {}, "restarts.needrestart", OK, "needrestart is not installed", ""},

		{"unattended-upgrades not installed", func(*Facts) {}, "restarts.unattended", OK, "unattended-upgrades is not installed", ""},
		{"unattended-upgrades off", func(f *Facts) { f.Restarts.Unattended = Unattended{Installed: true, Upgrade: "0"} }, "restarts.unattended", OK,
			"installed but off", ""},
		{"unattended-upgrades, guarded", unattended, "restarts.unattended", OK,
			`unattended-upgrades runs (APT::Periodic::Unattended-Upgrade "1" in /etc/apt/apt.conf.d/20auto-upgrades): dpkg restarts the web server when it upgrades it, drained by the guard`, ""},
		{"unattended-upgrades, unguarded", func(f *Facts) { unattended(f); f.Restarts.Guarded[0].Guard.ActiveState = "inactive" }, "restarts.unattended", Warning,
			"when it upgrades it, undrained", "restarts.guard"},
		{"automatic reboot with a pool", func(f *Facts) {
			unattended(f)
			f.Restarts.Unattended.Reboot, f.Restarts.Unattended.RebootFile = "true", "/etc/apt/apt.conf.d/52local"
			f.Pool.Configured = true
			f.Reboot.Window = mustWindow("Mon-Fri 02:00-05:00 UTC")
			f.Restarts.Unattended.Timer = debianTimer()
		}, "restarts.unattended-reboot", Warning,
			`unattended-upgrades reboots right after an upgrade that needs it (Unattended-Upgrade::Automatic-Reboot "true" in /etc/apt/apt.conf.d/52local), with shutdown -r, outside the pool's queue`,
			`set Unattended-Upgrade::Automatic-Reboot "false"; and reboot with drainctl maintenance reboot --if-required --window 'Mon-Fri 02:00-05:00 UTC'`},
		{"automatic reboot at a time, no pool, guarded", func(f *Facts) {
			unattended(f)
			f.Restarts.Unattended.Reboot, f.Restarts.Unattended.RebootTime, f.Restarts.Unattended.RebootFile = "true", "02:00", "/etc/apt/apt.conf.d/52local"
		}, "restarts.unattended-reboot", OK, "reboots at 02:00 after an upgrade that needs it", "drainctl maintenance reboot --if-required"},
		{"automatic reboot, no pool, unguarded", func(f *Facts) {
			unattended(f)
			f.Restarts.Unattended.Reboot, f.Restarts.Unattended.RebootFile = "1", "/etc/apt/apt.conf.d/52local"
			f.Web.Unit.Wants = nil
		}, "restarts.unattended-reboot", Warning, "with shutdown -r, undrained", "drainctl maintenance reboot --if-required"},
		{"upgrades outside the window", func(f *Facts) {
			unattended(f)
			f.Reboot.Window = mustWindow("Mon-Fri 02:00-05:00 UTC")
			f.Restarts.Unattended.Timer = debianTimer()
		}, "restarts.unattended-window", Warning,
			"apt-daily-upgrade.timer (OnCalendar *-*-* 06:00:00) runs unattended-upgrades next at 2026-12-02 06:00:00, plus up to 1h0m0s at random (this time 06:49:20): outside the window Mon-Fri 02:00-05:00 UTC",
			`systemctl edit apt-daily-upgrade.timer, and add the lines "[Timer]", "OnCalendar=", "OnCalendar=Mon..Fri 02:00 UTC" and "RandomizedDelaySec=0"`},
		{"upgrades inside the window", func(f *Facts) {
			unattended(f)
			f.Reboot.Window = mustWindow("Mon-Fri 02:00-05:00 Europe/Berlin")
			f.Restarts.Unattended.Timer = &Timer{Name: aptUpgradeTimer, Calendar: []string{"Mon..Fri 02:00 Europe/Berlin"}, Next: time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)}
		}, "restarts.unattended-window", OK, "next at 2026-12-02 02:00:00: inside the window Mon-Fri 02:00-05:00 Europe/Berlin", ""},
		{"upgrades, the timer unknown", func(f *Facts) {
			unattended(f)
			f.Reboot.Window = mustWindow("Sat 01:00-03:00 UTC")
		}, "restarts.unattended-window", OK, "cannot read apt-daily-upgrade.timer's schedule", `"OnCalendar=Sat 01:00 UTC"`},

		{"Docker's policy-rc.d", func(f *Facts) { f.Restarts.PolicyRCD = &PolicyRCD{Path: policyRCD, Forbids: true} }, "restarts.policy-rc.d", OK,
			"/usr/sbin/policy-rc.d answers 101 to everything: dpkg starts, stops and restarts no service", ""},
		{"another policy-rc.d", func(f *Facts) {
			f.Restarts.PolicyRCD = &PolicyRCD{Path: policyRCD, Target: "/etc/alternatives/policy-rc.d"}
		}, "restarts.policy-rc.d", OK, "/usr/sbin/policy-rc.d (→ /etc/alternatives/policy-rc.d) governs dpkg's starts, stops and restarts", ""},
		{"another policy-rc.d, not drainctl's", func(f *Facts) {
			f.Restarts.PolicyRCD = &PolicyRCD{Path: policyRCD, Forbids: true}
		}, "restarts.policy-rc.d", OK, "drainctl's policy-rc.d (/usr/lib/drainctl/policy-rc.d: in a pool, a package's restart with no slot free deferred, not taken over the budget) was not installed over it", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := healthy()
			tc.change(&f)
			fs := Judge(f)
			i := slices.IndexFunc(fs, func(x Finding) bool { return x.ID == tc.id && strings.Contains(x.Found, tc.says) })
			if i < 0 {
				var got []string
				for _, x := range fs {
					if x.Area == AreaRestarts {
						got = append(got, x.Severity.String()+" "+x.ID+": "+x.Found)
					}
				}
				t.Fatalf("no %s saying %q; the restarts area:\n%s", tc.id, tc.says, strings.Join(got, "\n"))
			}
			got := fs[i]
			if got.Area != AreaRestarts {
				t.Errorf("%s in area %s", tc.id, got.Area)
			}
			if got.Severity != tc.sev {
				t.Errorf("%s is %s, want %s: %+v", tc.id, got.Severity, tc.sev, got)
			}
			if !strings.Contains(got.Fix, tc.fix) {
				t.Errorf("%s's fix %q, want it to say %q", tc.id, got.Fix, tc.fix)
			}
			if got.Severity != OK && (got.Impact == "" || got.Fix == "") {
				t.Errorf("%s: a %s needs what goes wrong and the fix: %+v", tc.id, got.Severity, got)
			}
			for _, x := range fs {
				if strings.ContainsAny(x.Found+x.Impact+x.Fix, "\n\t") {
					t.Errorf("%s: a finding is one line each, as doctor prints it: %+v", x.ID, x)
				}
			}
		})
	}
}

// The policy-rc.d that drainctl would ship is its own business: no
// finding.
func TestDrainctlsPolicyRCDIsNotReported(t *testing.T) {
	f := healthy()
	f.Restarts.PolicyRCD = &PolicyRCD{Path: policyRCD, Drainctl: true}
	if got := find(Judge(f), "restarts.policy-rc.d"); got != nil {
		t.Errorf("%+v", got)
	}
}

// A php-fpm the healthy host does not run adds no finding, and a host
// without one is all ok (TestHealthyHostIsAllOK); with one guarded,
// the web server's and its own findings are both there.
func TestEveryGuardedUnitHasItsFinding(t *testing.T) {
	f := healthy()
	f.Restarts.Guarded = append(f.Restarts.Guarded, fpm(true, "active"))
	var units []string
	for _, x := range Judge(f) {
		if x.ID == "restarts.guard" {
			units = append(units, strings.Fields(x.Found)[0])
		}
	}
	if want := []string{"apache2.service's", "php8.2-fpm.service's"}; !slices.Equal(units, want) {
		t.Errorf("restarts.guard findings of %v, want %v", units, want)
	}
}

func TestCalendarOf(t *testing.T) {
	for in, want := range map[string]string{
		"Mon-Fri 02:00-05:00 Europe/Berlin": "Mon..Fri 02:00 Europe/Berlin",
		"Sat,Sun 22:00-04:00 UTC":           "Sat,Sun 22:00 UTC",
		"03:30-04:00 UTC":                   "03:30 UTC",
		"Fri-Mon 23:00-01:00 UTC":           "Fri..Sun,Mon 23:00 UTC",
		"Mon,Wed-Fri 02:00-03:00 UTC":       "Mon,Wed..Fri 02:00 UTC",
		"Sun-Tue 02:00-03:00 UTC":           "Sun,Mon..Tue 02:00 UTC",
	} {
		w, err := window.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := calendarOf(w); got != want {
			t.Errorf("calendarOf(%q) = %q, want %q", in, got, want)
		}
	}
}
