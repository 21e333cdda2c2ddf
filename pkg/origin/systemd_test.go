package origin

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/nspawn"
)

// probeEnv, set, makes the test binary a probe instead of running tests:
// it appends Of(os.Args[1])'s answer, as a JSON line, to the file it
// names. The systemd test runs this very binary as a guard unit's
// ExecStop inside a container.
const probeEnv = "ORIGIN_PROBE_OUT"

func TestMain(m *testing.M) {
	if out := os.Getenv(probeEnv); out != "" {
		os.Exit(probe(out))
	}
	os.Exit(nspawn.Main(m))
}

// probeLine is what the probe writes.
type probeLine struct {
	Origin  Origin  `json:"origin"`
	Restart bool    `json:"restart"`
	TookMS  float64 `json:"took_ms"`
}

func probe(out string) int {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "probe: which unit?")
		return 2
	}
	begin := time.Now()
	o := Of(context.Background(), os.Args[1])
	line, err := json.Marshal(probeLine{Origin: o, Restart: o.Restart(), TookMS: float64(time.Since(begin).Microseconds()) / 1000})
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	return 0
}

// guardUnit is a guard like drainctl's: stopped before the web server on
// its every stop and restart (PartOf=, After=), its ExecStop the probe.
// StartLimitIntervalSec=0: the guard starts again with every restart of
// the web server, and systemd's default limit (5 starts in 10 s) would
// leave it failed, and the server unguarded, after a burst of restarts.
const guardUnit = `[Unit]
Description=origin's probe, as drainctl's guard, for %i
PartOf=%i.service
After=%i.service
StartLimitIntervalSec=0

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecStop=-/usr/local/bin/origin-probe %i.service
Environment=` + probeEnv + `=/var/log/origin.jsonl

[Install]
WantedBy=apache2.service
`

// probePackage builds originprobe 1.0 and 1.1 in the container
// (/root/p1.deb, /root/p2.deb): its postinst restarts apache2 on an
// upgrade the way Debian's packages do (debhelper's block).
const probePackage = `set -e
d=$(mktemp -d)
mkdir -p $d/p/DEBIAN
printf 'Package: originprobe\nVersion: 1.0\nArchitecture: all\nMaintainer: drainctl tests <root@localhost>\nDescription: origin probe\n' >$d/p/DEBIAN/control
cat >$d/p/DEBIAN/postinst <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -n "$2" ] && [ -d /run/systemd/system ]; then
	deb-systemd-invoke restart 'apache2.service' >/dev/null || true
fi
EOF
chmod 755 $d/p/DEBIAN/postinst
dpkg-deb -b $d/p /root/p1.deb >/dev/null
sed -i 's/^Version: 1.0$/Version: 1.1/' $d/p/DEBIAN/control
dpkg-deb -b $d/p /root/p2.deb >/dev/null
rm -rf $d
printf '#!/bin/sh\ndpkg -i "$@"\n' >/usr/local/bin/unattended-upgrade
chmod 755 /usr/local/bin/unattended-upgrade
`

// Of run by a guard's ExecStop under a real systemd (Debian 12's, in a
// container): what systemd's job list and the process table tell for a
// restart and a stop by hand, a package's restart under
// unattended-upgrades (real dpkg, postinst and deb-systemd-invoke; the
// unattended-upgrade above them a script of that name), and a reboot.
func TestUnderSystemd(t *testing.T) {
	t.Parallel()
	c := nspawn.Boot(t, nspawn.Options{})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "guard")
	if err := os.WriteFile(unit, []byte(guardUnit), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.CopyIn(exe, "/usr/local/bin/origin-probe", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.CopyIn(unit, "/etc/systemd/system/drainctl-guard@.service", 0o644); err != nil {
		t.Fatal(err)
	}
	sh := func(script string) string { t.Helper(); return c.Must(t, 2*time.Minute, "sh", "-c", script) }
	// start: the guard's start job runs after apache2's; wait for it.
	const startBoth = "systemctl start apache2.service drainctl-guard@apache2.service"
	sh("systemctl daemon-reload && systemctl enable drainctl-guard@apache2.service && " + startBoth)
	sh(probePackage)
	sh("dpkg -i /root/p1.deb >/dev/null") // a first install restarts nothing

	seen := 0
	last := func(what string) probeLine {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(sh("cat /var/log/origin.jsonl 2>/dev/null || true")), "\n")
		if lines[0] == "" {
			lines = nil
		}
		if len(lines) != seen+1 {
			t.Fatalf("%s: the guard's ExecStop ran %d times, want 1:\n%s", what, len(lines)-seen, strings.Join(lines, "\n"))
		}
		seen = len(lines)
		var l probeLine
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &l); err != nil {
			t.Fatalf("%s: %v: %s", what, err, lines[len(lines)-1])
		}
		t.Logf("%s: %s", what, lines[len(lines)-1])
		return l
	}

	sh("systemctl restart apache2 && " + startBoth)
	if l := last("systemctl restart"); l.Origin.Job != "restart" || l.Origin.GuardJob != "restart" || !l.Restart ||
		l.Origin.Kind != KindSystemctl || !strings.HasPrefix(l.Origin.Text, "systemctl restart apache2") {
		t.Errorf("systemctl restart: %+v", l)
	}

	sh("systemctl stop apache2")
	if l := last("systemctl stop"); l.Origin.Job != "stop" || l.Origin.GuardJob != "stop" || l.Restart || l.Origin.Shutdown ||
		l.Origin.Kind != KindSystemctl || !strings.HasPrefix(l.Origin.Text, "systemctl stop apache2") {
		t.Errorf("systemctl stop: %+v", l)
	}
	sh(startBoth)

	sh("unattended-upgrade /root/p2.deb >/dev/null && " + startBoth)
	if l := last("unattended-upgrades"); l.Origin.Job != "restart" || !l.Restart || l.Origin.Kind != KindUnattended ||
		l.Origin.Text != "unattended-upgrades: dpkg: originprobe 1.0 → 1.1" {
		t.Errorf("unattended-upgrades: %+v", l)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if l := last("systemctl reboot"); l.Origin.Job != "stop" || !l.Origin.Shutdown || !l.Origin.Reboot || l.Restart ||
		l.Origin.Kind != KindShutdown || l.Origin.Text != "shutdown (reboot)" {
		t.Errorf("reboot: %+v", l)
	}
}
