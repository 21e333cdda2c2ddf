package doctor

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// files writes files (path under root: content) into a new root.
func files(t *testing.T, fs map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range fs {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// needrestart reads needrestart.conf, then conf.d's files in order: the
// last $nrconf{restart} wins, commented ones do not count.
func TestReadNeedrestart(t *testing.T) {
	root := files(t, map[string]string{
		needrestartProgram:                  "#!/usr/bin/perl\n",
		needrestartConf:                     "# Restart mode: (l)ist only, (i)nteractive or (a)utomatically.\n#$nrconf{restart} = 'i';\n$nrconf{restart} = 'i';\n",
		needrestartConfD + "/10-auto.conf":  "$nrconf{restart} = 'a';\n",
		needrestartConfD + "/20-list.conf":  "  $nrconf{'restart'} = \"l\"; # list only\n",
		needrestartConfD + "/30-other.conf": "$nrconf{kernelhints} = 0;\n",
		needrestartConfD + "/99-ignored":    "$nrconf{restart} = 'a';\n", // not *.conf
	})
	n := readNeedrestart(root)
	if !n.Installed || n.Mode != "l" || n.ModeFile != needrestartConfD+"/20-list.conf" || n.Err != nil {
		t.Errorf("%+v", n)
	}
	// Debian's file sets nothing: needrestart's default.
	root = files(t, map[string]string{needrestartProgram: "", needrestartConf: "#$nrconf{restart} = 'i';\n"})
	if n := readNeedrestart(root); !n.Installed || n.Mode != "" {
		t.Errorf("default: %+v", n)
	}
	if n := readNeedrestart(t.TempDir()); n.Installed {
		t.Errorf("not installed: %+v", n)
	}
}

// Debian's 50unattended-upgrades (blocks, lists, comments), 20auto-upgrades
// as dpkg-reconfigure unattended-upgrades writes it, and a local file in
// block syntax: apt's order, apt's ignored names skipped.
func TestReadUnattended(t *testing.T) {
	root := files(t, map[string]string{
		unattendedProgram:             "",
		aptConfD + "/20auto-upgrades": "APT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n",
		aptConfD + "/50unattended-upgrades": `// Unattended-Upgrade::Origins-Pattern controls which packages are
// upgraded.
Unattended-Upgrade::Origins-Pattern {
        // Codename based matching:
        "origin=Debian,codename=${distro_codename},label=Debian";
        "origin=Debian,codename=${distro_codename},label=Debian-Security";
};
/* Automatically reboot *WITHOUT CONFIRMATION* if
   the file /var/run/reboot-required is found after the upgrade */
//Unattended-Upgrade::Automatic-Reboot "false";
Unattended-Upgrade::Automatic-Reboot "false";
//Unattended-Upgrade::Automatic-Reboot-Time "02:00";
`,
		aptConfD + "/52local": "Unattended-Upgrade {\n  Automatic-Reboot \"true\"; // on patch days\n  Automatic-Reboot-Time \"03:30\";\n};\n",
		// dpkg's leftovers: apt reads neither.
		aptConfD + "/60local.dpkg-old": "Unattended-Upgrade::Automatic-Reboot \"false\";\n",
		aptConfD + "/70local~":         "Unattended-Upgrade::Automatic-Reboot \"false\";\n",
	})
	u := readUnattended(root)
	want := Unattended{Installed: true, Upgrade: "1", UpgradeFile: aptConfD + "/20auto-upgrades",
		Reboot: "true", RebootTime: "03:30", RebootFile: aptConfD + "/52local"}
	if u != want {
		t.Errorf("got  %+v\nwant %+v", u, want)
	}
	// apt.conf comes after apt.conf.d.
	root = files(t, map[string]string{unattendedProgram: "", aptConfD + "/20auto-upgrades": "APT::Periodic::Unattended-Upgrade \"1\";\n",
		aptConf: "APT { Periodic { Unattended-Upgrade \"0\"; }; };\n"})
	if u := readUnattended(root); u.Upgrade != "0" || u.UpgradeFile != aptConf {
		t.Errorf("apt.conf last: %+v", u)
	}
	if u := readUnattended(t.TempDir()); u.Installed {
		t.Errorf("not installed: %+v", u)
	}
}

func TestParseAptConf(t *testing.T) {
	// Cut short: what came before stands.
	for _, text := range []string{"A \"1\"; /* open", "A \"1\"; B \"open", "A \"1\"; C"} {
		if got := parseAptConf(text); got["a"] != "1" || len(got) != 1 {
			t.Errorf("%q: %v", text, got)
		}
	}
	got := parseAptConf(`#clear Foo
# a comment "with quotes";
A::B "1"; a::c "x"; /* A::B "2"; */
Outer { Inner { Key "v;1"; }; "list item"; Flat::Name yes; };
A::B "3"; // A::B "4";
`)
	want := map[string]string{"a::b": "3", "a::c": "x", "outer::inner::key": "v;1", "outer::flat::name": "yes"}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}

func TestReadPolicyRCD(t *testing.T) {
	docker := "#!/bin/sh\n\n# For most Docker users, \"apt-get install\" only happens during \"docker build\",\n# where starting services doesn't work.\n\nexit 101\n"
	if p := readPolicyRCD(files(t, map[string]string{policyRCD: docker})); p == nil || !p.Forbids || p.Drainctl || p.Target != "" {
		t.Errorf("Docker's: %+v", p)
	}
	asks := "#!/bin/sh\ncase \"$1\" in apache2*) exit 101;; esac\nexit 0\n"
	if p := readPolicyRCD(files(t, map[string]string{policyRCD: asks})); p == nil || p.Forbids {
		t.Errorf("a conditional one: %+v", p)
	}
	if p := readPolicyRCD(files(t, map[string]string{policyRCD: "#!/bin/sh\n# drainctl's\nexec drainctl policy \"$@\"\n"})); p == nil || !p.Drainctl {
		t.Errorf("drainctl's: %+v", p)
	}
	// update-alternatives' link.
	root := files(t, map[string]string{"/etc/alternatives/policy-rc.d": asks})
	if err := os.MkdirAll(filepath.Join(root, "/usr/sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A relative link resolves inside the test's root.
	if err := os.Symlink("../../etc/alternatives/policy-rc.d", filepath.Join(root, policyRCD)); err != nil {
		t.Fatal(err)
	}
	if p := readPolicyRCD(root); p == nil || p.Target != "../../etc/alternatives/policy-rc.d" || p.Forbids {
		t.Errorf("a link: %+v", p)
	}
	if p := readPolicyRCD(t.TempDir()); p != nil {
		t.Errorf("none: %+v", p)
	}
}

// systemctl show's lines of apt-daily-upgrade.timer on Debian 12, with
// --timestamp=unix.
func TestParseTimer(t *testing.T) {
	// As systemd 252 prints it (Debian 12 in a container): the random
	// delay drawn ahead into NextElapseUSecRealtime, which ignores
	// --timestamp; TimersCalendar's next_elapse without it.
	out := "TimersCalendar={ OnCalendar=*-*-* 06:00:00 ; next_elapse=@1796709600 }\n" +
		"NextElapseUSecRealtime=Tue 2026-12-08 06:49:20 UTC\n" +
		"RandomizedDelayUSec=1h\n" +
		"LoadState=loaded\n" +
		"DropInPaths=/etc/systemd/system/apt-daily-upgrade.timer.d/override.conf\n"
	tm := parseTimer(aptUpgradeTimer, out)
	if tm == nil || !slices.Equal(tm.Calendar, []string{"*-*-* 06:00:00"}) || !tm.Next.Equal(time.Unix(1796709600, 0)) ||
		!tm.Drawn.Equal(time.Unix(1796709600+49*60+20, 0)) || tm.RandomDelay != time.Hour || len(tm.DropIns) != 1 {
		t.Errorf("%+v", tm)
	}
	// Two calendars: the earlier.
	tm = parseTimer(aptUpgradeTimer, "LoadState=loaded\nTimersCalendar={ OnCalendar=*-*-* 06:00:00 ; next_elapse=@1796709600 }\nTimersCalendar={ OnCalendar=*-*-* 02:00:00 ; next_elapse=@1796695200 }\n")
	if tm == nil || len(tm.Calendar) != 2 || !tm.Next.Equal(time.Unix(1796695200, 0)) {
		t.Errorf("two calendars: %+v", tm)
	}
	// A drop-in's calendar after an empty OnCalendar=: only its own.
	tm = parseTimer(aptUpgradeTimer, "LoadState=loaded\nTimersCalendar={ OnCalendar=Mon..Fri *-*-* 02:00:00 ; next_elapse=n/a }\nNextElapseUSecRealtime=\nRandomizedDelayUSec=0\n")
	if tm == nil || !slices.Equal(tm.Calendar, []string{"Mon..Fri *-*-* 02:00:00"}) || !tm.Next.IsZero() || tm.RandomDelay != 0 {
		t.Errorf("%+v", tm)
	}
	if tm := parseTimer(aptUpgradeTimer, "LoadState=not-found\n"); tm != nil {
		t.Errorf("not found: %+v", tm)
	}
	for in, want := range map[string]time.Time{"@1765173600": time.Unix(1765173600, 0), "1765173600000000": time.Unix(1765173600, 0),
		"Mon 2025-12-08 06:00:00 UTC": time.Unix(1765173600, 0), "": {}, "n/a": {}, "@0": {}} {
		if got := parseTimestamp(in); !got.Equal(want) {
			t.Errorf("parseTimestamp(%q) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]time.Duration{"1h": time.Hour, "1h 30min": 90 * time.Minute, "500ms": 500 * time.Millisecond, "0": 0, "2d": 48 * time.Hour} {
		if got := parseTimespan(in); got != want {
			t.Errorf("parseTimespan(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestParseUnitListAndWants(t *testing.T) {
	list := "php8.2-fpm.service loaded active running The PHP 8.2 FastCGI Process Manager\nphp7.4-fpm.service loaded active running The PHP 7.4 FastCGI Process Manager\n"
	if got := parseUnitList(list); !slices.Equal(got, []string{"php8.2-fpm.service", "php7.4-fpm.service"}) {
		t.Errorf("%v", got)
	}
	u := parseUnit("apache2.service", "LoadState=loaded\nActiveState=active\nWants=drainctl-guard@apache2.service network-online.target\n")
	if !slices.Equal(u.Wants, []string{"drainctl-guard@apache2.service", "network-online.target"}) {
		t.Errorf("%+v", u)
	}
	if got := guardOf("php8.2-fpm.service"); got != "drainctl-guard@php8.2-fpm.service" {
		t.Error(got)
	}
}
