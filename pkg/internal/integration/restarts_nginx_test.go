package integration

// nginx's real Debian upgrade, by unattended-upgrades, under the e2e load
// (issue 25's proof: "nginx's upgrade the same way, with the nginx e2e
// pattern"). The lab is TestE2ENginx's (pkg/internal/lab): the
// recommended pattern on nftables, HAProxy checking at inter 200 ms, a
// 6 s drain deadline, web1 the lab's plain nginx; web2 a Debian 12
// container in its namespace whose nginx is bookworm's (installed from a
// local repository) and runs under systemd with drainctl's .deb and the
// agent set for nginx (web_server nginx: `nginx -t`, `systemctl reload
// nginx.service`). unattended-upgrades then upgrades nginx to
// bookworm-security's with a slow download in flight (8 s, proxied by
// nginx, begun when nginx-common's postinst starts: upgradeDownloadLines): nginx-common's
// postinst restarts nginx.service (deb-systemd-invoke, after asking
// policy-rc.d), nginx's postinst swaps the binary with the init script's
// USR2 upgrade (invoke-rc.d nginx upgrade), outside systemd. Whichever
// of them drainctl lets run, drains or does itself: no request fails, no
// user moves, the download completes, the server is out of rotation
// before nginx's listener closes (if it does), the history names the
// upgrade, and afterwards nginx runs the new binary under systemd's
// supervision (MainPID the pid file's, the unit active).
//
// The versions are read from the archive at run time (apt-cache madison
// on the host: the newest, and the one before it); when it offers only
// one, that one repacked with a higher version is the upgrade.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/lab"
	"github.com/drainctl/drainctl/pkg/internal/nspawn"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// nginxPackages are the binary packages of Debian's nginx source that
// the container installs and the upgrade replaces.
var nginxPackages = []string{"nginx", "nginx-common"}

// nginxSite is the container's site: web2's page, and the slow download
// (/cgi-bin/slow?N: N lines, one every 100 ms, then "end", as Apache's
// CGI) proxied unbuffered to a backend that writes it (slowBackend):
// nginx passes each line on as it comes, for the whole time. keepalive
// as the lab's nginx. A file of its own in conf.d, the default site's
// link replaced: the package's conffiles stay untouched (a changed
// conffile would keep unattended-upgrades from upgrading it).
//
// Not limit_rate on a file: nginx sends a limited answer in bursts a
// second apart (its budget is counted in whole seconds), and the drain
// does not count an answer silent for a second as in flight (measured,
// docs/benchmarks.md).
const nginxSite = `server {
    listen 80 default_server;
    root /var/www/html;
    index index.html;
    keepalive_timeout 5s;
    keepalive_requests 1000;
    location = /cgi-bin/slow {
        proxy_pass http://127.0.0.1:8090;
        proxy_buffering off;
    }
}
`

// slowBackend is the download's backend (python3 comes with
// unattended-upgrades), run by systemd in a unit of its own: nginx's
// stops and restarts leave it alone.
const slowBackend = `import http.server, time

class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        q = self.path.partition("?")[2]
        n = int(q) if q.isdigit() else 50
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        for i in range(n):
            self.wfile.write(b"line %d\n" % i)
            self.wfile.flush()
            time.sleep(0.1)
        self.wfile.write(b"end\n")

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", 8090), Slow).serve_forever()
`

// nginxDownloadLines is the download's length in lines: 6 s, as
// TestSystemdEveryRestart's; upgradeDownloadLines the upgrade's, 8 s (as
// Apache's upgrade): it begins with nginx-common's postinst, and on a
// busy machine the postinst takes up to 5.5 s before it asks for the
// restart (measured), which must find the download still in flight.
// The drain waits for it; were it not to, nginx.service's stop (QUIT,
// then TERM after 5 s: its ExecStop's --retry QUIT/5) would cut it.
const (
	nginxDownloadLines   = 60
	upgradeDownloadLines = 80
)

func TestSystemdNginxUpgrade(t *testing.T) {
	nstest.RequireCmd(t, "haproxy", "nginx", "nft", "iptables", "systemd-nspawn", "debootstrap", "dpkg-scanpackages")
	begin := time.Now()
	// TestE2ENginx's lab: web1 the lab's nginx, checks at inter 200 ms,
	// a 6 s drain deadline.
	const deadline = 6 * time.Second
	l := startHostedLab(t, "nx", 2, 1, nil, func(o *lab.Options) {
		o.WebServer, o.Inter, o.Deadline = lab.Nginx, 200*time.Millisecond, deadline
	})
	w := l.Webs[1]
	repo := t.TempDir()
	if err := os.Chmod(repo, 0o755); err != nil { // apt's file: method reads it as _apt
		t.Fatal(err)
	}
	deb, _ := buildPackages(t, "0.0.1")
	c, debs := bootWithDebs(t, nspawn.Options{NetNS: w.NetNS(), BindRO: []string{repo + ":" + repoInside}}, deb)
	rbegin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	from, to, err := buildNginxRepo(ctx, repo, c.Dir)
	cancel()
	if err != nil {
		t.Fatalf("nginx's repository: %v", err)
	}
	t.Logf("repository with nginx %s and %s ready in %v", from, to, time.Since(rbegin).Round(time.Millisecond))
	bootNginxWeb(t, l, w, c, debs[0], from, deadline)
	t.Logf("lab and container ready in %v", time.Since(begin).Round(time.Millisecond))

	u := &nginxUpgrade{from: from, to: to}
	scenarios := []restartScenario{
		// The control: drainctl's own restart (drained, a graceful
		// reload of nginx) must cost nothing, or the harness is wrong.
		{name: "0-drainctl-restart", origin: []string{"control"}, lines: nginxDownloadLines, act: func(t *testing.T, c *nspawn.Container) {
			csh(t, c, "drainctl restart --reason control")
		}},
		// A download nginx streams at once, its request younger than a
		// second when the load balancer confirms the server out: the
		// drain must watch it until it tells (before it did, 1 run in 4
		// lost 9 requests: nginx's stop served it with the listener
		// closed).
		{name: "1-systemctl-restart-young-download", origin: []string{"systemctl restart nginx"}, lines: nginxDownloadLines,
			act: func(t *testing.T, c *nspawn.Container) { csh(t, c, "systemctl restart nginx") }},
		{name: "6-nginx-unattended-upgrade", prepare: u.prepare, actLate: u.upgrade, check: u.check, lines: upgradeDownloadLines,
			origin: []string{"unattended-upgrades", "dpkg: nginx"}},
	}
	var all []restartFigures
	for _, sc := range scenarios {
		sc.connect = 2 * time.Second // the lab's
		t.Run(sc.name, func(t *testing.T) {
			all = append(all, runRestartScenario(t, l, w, c, sc))
		})
	}
	t.Logf("summary (%v in all):", time.Since(begin).Round(time.Millisecond))
	for _, f := range all {
		t.Logf("  %-28s failed %d, moved %d (of %d requests); out of rotation %v (%v after the action began, before the listener closed: %v); listener gap %v (%v after; %d probes failed); drain %v; backup entry not UP %v; download %s; history: %s",
			f.name, f.failed, f.moved, f.requests, f.outFor.Round(time.Millisecond), f.outAfter.Round(time.Millisecond), f.outBeforeGap,
			f.gap.Round(time.Millisecond), f.gapAfter.Round(time.Millisecond), f.gaps, f.drain, f.backDownFor.Round(time.Millisecond), f.download, historyLine(f.history))
	}
	t.Logf("| scenario | failed | moved | requests | out of rotation | listener gap | drain | download |")
	for _, f := range all {
		t.Logf("| %s | %d | %d | %d | %v | %v | %v | %v |", f.name, f.failed, f.moved, f.requests,
			f.outFor.Round(10*time.Millisecond), f.gap.Round(10*time.Millisecond), f.drain, f.downloadOK)
	}
}

// buildNginxRepo fills dir, a flat repository named as unattended-upgrades'
// default origin (writeIndex), with nginx's two versions (from, the
// archive's next to newest, which the container installs; to, its
// newest) and what installing them and unattended-upgrades takes in the
// container whose root is root (on the host).
func buildNginxRepo(ctx context.Context, dir, root string) (from, to string, err error) {
	host := func(args ...string) (string, error) { return hostCmd(ctx, dir, args...) }
	out, err := host("apt-cache", "madison", "nginx")
	if err != nil {
		return "", "", err
	}
	// The two highest versions the archive offers.
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "|")
		if len(f) < 2 {
			continue
		}
		v := strings.TrimSpace(f[1])
		gt := func(a, b string) bool { _, err := host("dpkg", "--compare-versions", a, "gt", b); return err == nil }
		switch {
		case v == to || v == from:
		case to == "" || gt(v, to):
			from, to = to, v
		case from == "" || gt(v, from):
			from = v
		}
	}
	if to == "" {
		return "", "", fmt.Errorf("the archive offers no nginx:\n%s", out)
	}
	// One version only: it, repacked higher, is the upgrade.
	repack := from == ""
	if repack {
		from, to = to, to+"+drainctl1"
	}
	status := "Dir::State::status=" + filepath.Join(root, "var/lib/dpkg/status")
	apt := []string{"apt-get", "-s", "-o", status, "--no-install-recommends", "install", "unattended-upgrades"}
	sims := [][]string{append(apt, "nginx="+from, "nginx-common="+from)}
	if !repack {
		sims = append(sims, append(apt[:len(apt):len(apt)], "nginx="+to, "nginx-common="+to))
	}
	// "Inst NAME [OLD] (VERSION ORIGIN [ARCH])"
	inst := regexp.MustCompile(`(?m)^Inst (\S+) (?:\[[^]]*\] )?\((\S+) `)
	seen := map[string]bool{}
	var get []string
	for _, sim := range sims {
		out, err := host(sim...)
		if err != nil {
			return "", "", err
		}
		for _, m := range inst.FindAllStringSubmatch(out, -1) {
			if p := m[1] + "=" + m[2]; !seen[p] {
				seen[p] = true
				get = append(get, p)
			}
		}
	}
	if _, err := host(append([]string{"apt-get", "download", "-q"}, get...)...); err != nil {
		return "", "", err
	}
	if repack {
		if err := repackPackages(host, nginxPackages, dir, dir, from, to, false); err != nil {
			return "", "", err
		}
	}
	return from, to, writeIndex(host, dir)
}

// bootNginxWeb makes w's container (booted, the repository bound) an
// nginx server: Apache stopped and disabled, nginx installed from
// the repository with the site (nginxSite), unattended-upgrades, then
// drainctl's .deb (its drop-in guards nginx.service) and the agent
// started by systemd with the lab's drain settings and web_server nginx.
// It returns once HAProxy has the server UP.
func bootNginxWeb(t *testing.T, l *lab.Lab, w *lab.Web, c *nspawn.Container, deb, version string, deadline time.Duration) {
	t.Helper()
	begin := time.Now()
	// The lab's settings (as bootRestartWeb's), with the nginx lab's
	// deadline: HAProxy confirms within fall 2 × inter 200 ms.
	flags := []string{"--web-server", "nginx", "--min-wait", "1s", "--quiet", "1s", "--deadline", deadline.String(),
		"--reconcile-interval", "1s", "--boot-ready-timeout", "10s", "--reboot-timeout", "60s"}
	var pins []string
	for _, p := range nginxPackages {
		pins = append(pins, p+"="+version)
	}
	script := fmt.Sprintf(`set -e
systemctl disable -q --now apache2
printf 'deb [trusted=yes] file:%s ./\n' > /etc/apt/sources.list
rm -f /etc/apt/sources.list.d/*
apt-get update -q >/dev/null
mkdir -p /etc/nginx/conf.d /etc/nginx/sites-enabled /var/www/html
# Before the package: its first start serves the site (no default site).
touch /etc/nginx/sites-enabled/default
cat > /etc/nginx/conf.d/drainctl-lab.conf <<'EOF'
%sEOF
echo %s > /var/www/html/index.html
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends unattended-upgrades %s >/dev/null
systemctl is-active -q nginx
cat > /usr/local/lib/drainctl-lab-slow.py <<'EOF'
%sEOF
systemd-run -q --unit drainctl-lab-slow python3 /usr/local/lib/drainctl-lab-slow.py
for i in $(seq 50); do curl -sf -o /dev/null 'http://127.0.0.1/cgi-bin/slow?0' && break; sleep 0.1; done
curl -sf 'http://127.0.0.1/cgi-bin/slow?2' | grep -qx end
dpkg -i %s >/dev/null
mkdir -p /etc/systemd/system/drainctl.service.d
printf '[Service]\nExecStart=\nExecStart=/usr/bin/drainctl agent %s\n' > /etc/systemd/system/drainctl.service.d/lab.conf
systemctl daemon-reload
systemctl start drainctl
# drainctl's postinst started nginx's guard (nginx was running).
systemctl is-active -q drainctl-guard@nginx.service`, repoInside, nginxSite, w.Name, strings.Join(pins, " "), slowBackend, deb, strings.Join(flags, " "))
	csh(t, c, script)
	for _, s := range []string{w.Name, w.Name + "-bak"} {
		if _, err := l.WaitStatus(context.Background(), s, "UP", 20*time.Second); err != nil {
			t.Fatalf("%s never UP in HAProxy: %v", s, err)
		}
	}
	t.Logf("nginx %s, drainctl and its agent set up in %v: %s", version, time.Since(begin).Round(time.Millisecond),
		strings.TrimSpace(csh(t, c, "drainctl agent --check | tr -d '\\n' | head -c 400")))
}

// nginxUpgrade is the scenario: nginx from from to to.
type nginxUpgrade struct {
	from, to string
	mainPID  int // nginx's before the upgrade
}

// prepare checks the upgrade is offered and notes nginx's main PID.
func (u *nginxUpgrade) prepare(t *testing.T, c *nspawn.Container) {
	t.Helper()
	out := csh(t, c, "apt-get -s upgrade | grep '^Inst' || true")
	for _, p := range nginxPackages {
		if !strings.Contains(out, "Inst "+p+" ["+u.from+"] ("+u.to+" ") {
			t.Fatalf("%s not upgradable from %s to %s from the repository:\n%s", p, u.from, u.to, out)
		}
	}
	u.mainPID = unitPID(t, c, "nginx")
}

// nginxPostinst is where the upgrade's restart of nginx is asked for:
// nginx-common's postinst, whose last lines (debhelper's) restart
// nginx.service; nginx's postinst, after it, swaps the binary (USR2).
const nginxPostinst = "/var/lib/dpkg/info/nginx-common.postinst"

// upgrade runs unattended-upgrade, as apt-daily-upgrade.service does, and
// starts the download once nginx-common's postinst runs (runSeeing:
// stopped meanwhile).
func (u *nginxUpgrade) upgrade(t *testing.T, c *nspawn.Container, start func()) {
	t.Helper()
	runSeeing(t, c, "unattended-upgrade -v 2>&1", nginxPostinst, start)
}

// check: the new version installed, nginx runs its binary (not a
// deleted file), and systemd still supervises it: the unit active, its
// MainPID the master's in /run/nginx.pid.
func (u *nginxUpgrade) check(t *testing.T, c *nspawn.Container) {
	t.Helper()
	for _, p := range nginxPackages {
		if v := strings.TrimSpace(csh(t, c, "dpkg-query -W -f '${Version}' "+p)); v != u.to {
			t.Errorf("%s %s after the upgrade, want %s", p, v, u.to)
		}
	}
	pid := unitPID(t, c, "nginx")
	exe := strings.TrimSpace(csh(t, c, fmt.Sprintf("readlink /proc/%d/exe", pid)))
	active := strings.TrimSpace(csh(t, c, "systemctl is-active nginx || true"))
	pidFile := strings.TrimSpace(csh(t, c, "cat /run/nginx.pid"))
	t.Logf("nginx %s: main PID %d (before %d), exe %s, unit %s, /run/nginx.pid %s; its processes:\n%s", u.to, pid, u.mainPID, exe, active, pidFile,
		csh(t, c, "ps -o pid,ppid,lstart,args -C nginx; systemd-cgls --no-pager -u nginx.service | tail -n +2"))
	if exe != "/usr/sbin/nginx" {
		t.Errorf("nginx's main process runs %q, want the new /usr/sbin/nginx", exe)
	}
	if active != "active" {
		t.Errorf("systemctl is-active nginx: %q", active)
	}
	if pidFile != fmt.Sprint(pid) {
		t.Errorf("systemd's MainPID %d, /run/nginx.pid %q: systemd does not track nginx's master", pid, pidFile)
	}
	// Every nginx process runs the new binary, in nginx.service's cgroup.
	if out := csh(t, c, "for p in $(pgrep -x nginx); do echo $p $(readlink /proc/$p/exe) $(cat /proc/$p/cgroup); done"); strings.Contains(out, "(deleted)") ||
		strings.Count(out, "/system.slice/nginx.service") != strings.Count(out, "\n") {
		t.Errorf("nginx's processes (pid, exe, cgroup):\n%s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	j, _ := c.Sh(ctx, "journalctl -q --no-pager -o short-precise -u nginx -u 'drainctl-guard@nginx' -n 40")
	elog, _ := c.Sh(ctx, "tail -n 20 /var/log/nginx/error.log")
	hist, _ := c.Sh(ctx, "drainctl history -n 4 --json")
	var es []json.RawMessage
	_ = json.Unmarshal([]byte(hist), &es)
	t.Logf("nginx's journal:\n%s\nnginx's error.log:\n%s\ndrainctl's last operations:\n%s", j, elog, strings.Join(func() []string {
		var s []string
		for _, e := range es {
			s = append(s, string(e))
		}
		return s
	}(), "\n"))
}
