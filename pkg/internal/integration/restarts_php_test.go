package integration

// Scenario 6 of TestSystemdEveryRestart: php-fpm restarted by hand behind
// Apache. php8.2-fpm (bookworm's, fetched from the archive on the host
// into a flat repository in the container's root) is installed after
// drainctl, as a site adds PHP to a server: the package's generator
// (drainctl-guard-generator) gives the unit its guard at the
// daemon-reload php-fpm's postinst runs, and php-fpm's start starts the
// guard. Apache hands .php to php-fpm (proxy_fcgi, Debian's
// php8.2-fpm.conf), the page the users load is a PHP page (so a 503 of
// proxy_fcgi while php-fpm is down counts as failed), and the agent's
// readiness check is that page: the server comes back only once PHP
// answers. Then `systemctl restart php8.2-fpm` under the load, HAProxy's
// timeout connect at Debian's 5 s (the scenario before's). Last of
// the scenarios: it changes what web2 serves and the readiness check.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/nspawn"
)

// phpRepoInside is the php repository's place in the container's root.
const phpRepoInside = "/srv/php-repo"

// phpUnit is bookworm's php-fpm unit.
const phpUnit = "php8.2-fpm"

// phpScenario is the scenario's state: the server's name (the page's
// first word), php-fpm's main PID before.
type phpScenario struct {
	server  string
	mainPID int
}

// phpRestart is the scenario, for the server named server.
func phpRestart(name, server string) restartScenario {
	p := &phpScenario{server: server}
	return restartScenario{name: name, connect: 5 * time.Second, prepare: p.install, act: p.restart, check: p.check,
		origin: []string{"systemctl restart " + phpUnit}}
}

// install fetches php8.2-fpm and what it needs (apt on the host, given
// the container's dpkg status) into the container's root, installs it
// with apt in the container, lets Apache hand .php to it, makes the
// page the users load a PHP page, and the agent's readiness check that
// page. It checks the generator's drop-in, the guard running and
// doctor's word.
func (p *phpScenario) install(t *testing.T, c *nspawn.Container) {
	t.Helper()
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := filepath.Join(c.Dir, phpRepoInside)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	host := func(args ...string) string {
		t.Helper()
		out, err := hostCmd(ctx, dir, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	status := filepath.Join(c.Dir, "var/lib/dpkg/status")
	sim := host("apt-get", "-s", "-o", "Dir::State::status="+status, "--no-install-recommends", "install", phpUnit)
	inst := regexp.MustCompile(`(?m)^Inst (\S+) (?:\[[^]]*\] )?\((\S+) `)
	var get []string
	for _, m := range inst.FindAllStringSubmatch(sim, -1) {
		get = append(get, m[1]+"="+m[2])
	}
	if len(get) == 0 {
		t.Fatalf("apt on the host installs nothing for %s:\n%s", phpUnit, sim)
	}
	host(append([]string{"apt-get", "download", "-q"}, get...)...)
	if err := writeIndex(func(args ...string) (string, error) { return hostCmd(ctx, dir, args...) }, dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d packages for %s fetched in %v", len(get), phpUnit, time.Since(begin).Round(time.Millisecond))

	// apt in the container with the repository as its only source (the
	// scenarios before may have changed sources.list; this one leaves
	// it). php-fpm's postinst reloads systemd, which runs the generator,
	// and starts php-fpm, which starts its guard. index.html goes: the
	// users' page at / is index.php (dir.conf lists it), its first word
	// the server's name, as the load counts servers.
	apt := fmt.Sprintf("-o Dir::Etc::sourcelist=%s/sources.list -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0", phpRepoInside)
	csh(t, c, fmt.Sprintf(`set -e
echo 'deb [trusted=yes] file:%[1]s ./' > %[1]s/sources.list
apt-get update -q %[2]s >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends %[2]s %[3]s >/dev/null
a2enmod -q proxy_fcgi setenvif
a2enconf -q %[3]s
echo '<?php echo "%[4]s php ", PHP_VERSION, "\n";' > /var/www/html/index.php
rm -f /var/www/html/index.html
systemctl reload apache2`, phpRepoInside, apt, phpUnit, p.server))
	t.Logf("%s installed and Apache handing .php to it in %v", phpUnit, time.Since(begin).Round(time.Millisecond))

	// The generator's drop-in, in force.
	dropIn := "/run/systemd/generator/" + phpUnit + ".service.d/drainctl.conf"
	guard := "drainctl-guard@" + phpUnit + ".service"
	if out := csh(t, c, fmt.Sprintf(`cat %s; systemctl show -P Wants %s.service
for i in $(seq 300); do systemctl is-active -q %s && break; sleep 0.1; done
systemctl is-active %s || journalctl -q --no-pager -u %s`, dropIn, phpUnit, guard, guard, guard)); !strings.Contains(out, "Wants="+guard) ||
		!strings.Contains(out, "\nactive") {
		t.Fatalf("%s installed after drainctl: no drop-in from the generator, or its guard does not run:\n%s", phpUnit, out)
	}
	t.Logf("%s wants %s (the generator's drop-in), which runs: %v since the install began", phpUnit, guard, time.Since(begin).Round(time.Millisecond))
	r := cdoctor(t, c)
	found := false
	for _, f := range r.Findings {
		found = found || f.ID == "restarts.guard" && f.Severity == "ok" && strings.Contains(f.Found, phpUnit+".service's stops and restarts are drained")
	}
	if !found {
		t.Fatalf("doctor does not find %s guarded:\n%s", phpUnit, r)
	}

	// The readiness check: the PHP page. The agent restarted to read it.
	csh(t, c, `set -e
sed -i 's|^ExecStart=/usr/bin/drainctl agent |&--ready-url http://127.0.0.1:80/index.php |' /etc/systemd/system/drainctl.service.d/lab.conf
grep -q -- '--ready-url http://127.0.0.1:80/index.php' /etc/systemd/system/drainctl.service.d/lab.conf
systemctl daemon-reload
systemctl restart drainctl
for i in $(seq 100); do drainctl status >/dev/null 2>&1 && break; sleep 0.1; done`)
	// php's own client (the root has no curl). PHP_VERSION in the answer
	// says PHP ran the page (not shown as its source).
	page := csh(t, c, `php -r 'echo file_get_contents("http://127.0.0.1/");'`)
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(p.server) + ` php 8\.2\.\d+\n$`).MatchString(page) {
		t.Fatalf("web2's page is not PHP's:\n%s", page)
	}
	p.mainPID = unitPID(t, c, phpUnit)
}

// restart is the hand's restart of php-fpm.
func (p *phpScenario) restart(t *testing.T, c *nspawn.Container) {
	csh(t, c, "systemctl restart "+phpUnit)
}

// check: php-fpm restarted (a new main process), its guard runs again.
func (p *phpScenario) check(t *testing.T, c *nspawn.Container) {
	t.Helper()
	pid := unitPID(t, c, phpUnit)
	if pid == p.mainPID {
		t.Fatalf("%s not restarted: main PID %d as before", phpUnit, pid)
	}
	if out := csh(t, c, "for i in $(seq 300); do systemctl is-active -q drainctl-guard@"+phpUnit+".service && break; sleep 0.1; done; systemctl is-active drainctl-guard@"+phpUnit+".service || true"); strings.TrimSpace(out) != "active" {
		t.Errorf("the guard of %s after its restart: %s", phpUnit, out)
	}
	t.Logf("%s restarted: main PID %d (before %d)", phpUnit, pid, p.mainPID)
}
