package integration

// The systemd tier: the .deb installed in a Debian 12 container booted
// under systemd-nspawn (pkg/internal/nspawn), the agent run by systemd
// under its real unit: its sandbox, its restart of Apache through
// systemd, the load balancers' view, an upgrade's try-restart.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/haproxy"
	"github.com/drainctl/drainctl/pkg/internal/nspawn"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
	"github.com/drainctl/drainctl/pkg/state"
)

// bootWithDebs boots a container with each .deb bound read-only at
// /mnt/NAME.deb, and returns it with the debs' paths inside.
func bootWithDebs(t *testing.T, o nspawn.Options, debs ...string) (*nspawn.Container, []string) {
	t.Helper()
	var inside []string
	for _, d := range debs {
		p := "/mnt/" + filepath.Base(d)
		o.BindRO = append(o.BindRO, d+":"+p)
		inside = append(inside, p)
	}
	begin := time.Now()
	c := nspawn.Boot(t, o)
	t.Logf("%s: running %v after Boot", c.Name, time.Since(begin).Round(time.Millisecond))
	return c, inside
}

// csh runs a script in the container, bounded (2 minutes: dpkg, a
// restart), failing the test on error.
func csh(t *testing.T, c *nspawn.Container, script string) string {
	t.Helper()
	return c.Must(t, 2*time.Minute, "sh", "-c", script)
}

// installAndStart installs a .deb (enabled, not started: checked) and
// starts the agent with systemctl, as an operator does after editing the
// config (the shipped one forwards 81→80 to the container's Apache).
func installAndStart(t *testing.T, c *nspawn.Container, deb string) (mainPID int) {
	t.Helper()
	begin := time.Now()
	csh(t, c, "dpkg -i "+deb)
	t.Logf("dpkg -i in %v", time.Since(begin).Round(time.Millisecond))
	csh(t, c, "systemctl is-enabled -q drainctl && ! systemctl is-active -q drainctl")
	// Type=notify: start returns once the agent said it is ready.
	// A start that fails shows the unit's journal (a sandbox that
	// forbids what the agent or its ExecStartPre needs).
	csh(t, c, "systemctl start drainctl && systemctl is-active -q drainctl || { journalctl -q -u drainctl --no-pager -n 40; exit 1; }")
	return unitPID(t, c, "drainctl")
}

// unitPID is a unit's MainPID, in the container's PID namespace.
func unitPID(t *testing.T, c *nspawn.Container, unit string) int {
	t.Helper()
	out := csh(t, c, "systemctl show -P MainPID "+unit)
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || pid == 0 {
		t.Fatalf("%s's MainPID: %q", unit, out)
	}
	return pid
}

// status is `drainctl status --json` in the container.
func cstatus(t *testing.T, c *nspawn.Container) (apitype.Status, string) {
	t.Helper()
	out := csh(t, c, "drainctl status --json")
	var st apitype.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st, out
}

// The agent under drainctl.service: in the unit's cgroup and sandbox
// (systemd-analyze's exposure at most 4.0; five capabilities, no new
// privileges, a seccomp filter, the file system read-only but its own
// directories, a /tmp and /dev of its own: sandbox_test.go); `agent
// --check` picks systemd's reload of apache2.service; from inside the
// sandbox, `drainctl restart` reloads Apache through systemd: every
// Apache process is in apache2.service's cgroup, none in
// drainctl.service's.
func TestSystemdAgentUnit(t *testing.T) {
	t.Parallel()
	deb, _ := buildPackages(t, "0.0.1")
	c, debs := bootWithDebs(t, nspawn.Options{}, deb)
	pid := installAndStart(t, c, debs[0])

	csh(t, c, fmt.Sprintf("grep -qx '0::/system.slice/drainctl.service' /proc/%d/cgroup", pid))
	checkExposure(t, c)
	checkSandbox(t, c, pid)

	var check struct {
		Restart struct {
			Command string `json:"cmd"`
		} `json:"restart"`
		Reason string `json:"restart_reason"`
	}
	out := csh(t, c, "drainctl agent --check")
	if err := json.Unmarshal([]byte(out), &check); err != nil || check.Restart.Command != "systemctl reload apache2.service" ||
		!strings.Contains(check.Reason, "systemd") {
		t.Fatalf("agent --check under systemd: %v\n%s", err, out)
	}

	apache := unitPID(t, c, "apache2")
	before := csh(t, c, fmt.Sprintf("pgrep -P %d", apache))
	begin := time.Now()
	csh(t, c, "drainctl restart --reason test")
	t.Logf("drainctl restart in %v", time.Since(begin).Round(time.Millisecond))
	if unitPID(t, c, "apache2") != apache {
		t.Fatal("the restart replaced Apache's main process: not a reload")
	}
	after := csh(t, c, fmt.Sprintf("pgrep -P %d", apache))
	renewed := false
	for _, p := range strings.Fields(after) {
		renewed = renewed || !strings.Contains(" "+strings.Join(strings.Fields(before), " ")+" ", " "+p+" ")
	}
	if !renewed {
		t.Fatalf("no new Apache child after the restart: before %q, after %q", before, after)
	}
	cgroups := csh(t, c, `for p in $(pgrep -x apache2); do echo "$p $(grep '^0::' /proc/$p/cgroup)"; done`)
	lines := strings.Split(strings.TrimSpace(cgroups), "\n")
	for _, l := range lines {
		if !strings.HasSuffix(l, " 0::/system.slice/apache2.service") {
			t.Errorf("an Apache process outside apache2.service: %s", l)
		}
	}
	if len(lines) < 2 {
		t.Fatalf("Apache's processes: %q", cgroups)
	}
	checkFullRootCommand(t, c)
}

// HAProxy (the host's) in a namespace of the test's, wired by veth to
// the container's, checks the agent's forward: status lists it, and
// maintenance enter and exit are confirmed by it; the metrics are served
// on the socket.
func TestSystemdLoadBalancers(t *testing.T) {
	t.Parallel()
	nstest.RequireCmd(t, "haproxy")
	deb, _ := buildPackages(t, "0.0.1")
	srv, lb := nstest.New(t, "sd-srv"), nstest.New(t, "sd-lb")
	nstest.Link(t, srv, lb, nstest.Srv4+"/24", nstest.Srv6+"/64", nstest.Cli4+"/24", nstest.Cli6+"/64")
	c, debs := bootWithDebs(t, nspawn.Options{NetNS: "/run/netns/" + srv.Name}, deb)
	installAndStart(t, c, debs[0])
	haproxyCfg := startHAProxy(t, lb, nstest.Srv4)

	// The agent sees HAProxy's checks of 81.
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, out := cstatus(t, c)
		if st.HealthChecks != nil && len(st.HealthChecks.LoadBalancers) == 1 &&
			st.HealthChecks.LoadBalancers[0].Addr.String() == nstest.Cli4 && st.HealthChecks.LoadBalancers[0].Accepted >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the load balancer is not in health_checks after 15 s:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}

	begin := time.Now()
	res := opResult(t, csh(t, c, "drainctl maintenance enter --reason test --json"))
	t.Logf("maintenance enter in %v", time.Since(begin).Round(time.Millisecond))
	if res.Phase != string(state.Held) || !confirmedBy(res.OutOfRotation, nstest.Cli4) {
		t.Fatalf("maintenance enter: %+v", res)
	}
	begin = time.Now()
	res = opResult(t, csh(t, c, "drainctl maintenance exit --json"))
	t.Logf("maintenance exit in %v", time.Since(begin).Round(time.Millisecond))
	if res.Phase != string(state.InService) || !confirmedBy(res.BackInRotation, nstest.Cli4) {
		t.Fatalf("maintenance exit: %+v", res)
	}

	metrics := csh(t, c, "curl -sSf --unix-socket /run/drainctl/drainctl.sock http://x/metrics")
	// The one load balancer checking, and the two operations counted.
	for _, want := range []string{`(?m)^drainctl_load_balancers_checking(\{[^}]*\})? 1$`, `(?m)^drainctl_operations_total\{[^}]*enter[^}]*\} 1$`,
		`(?m)^drainctl_operations_total\{[^}]*exit[^}]*\} 1$`} {
		if !regexp.MustCompile(want).MatchString(metrics) {
			t.Errorf("metrics lack %s:\n%s", want, metrics)
		}
	}

	doctorUnderSystemd(t, c, haproxyCfg)
}

// startHAProxy runs the host's HAProxy in ns with the recommended
// pattern's backend for one server at addr (checks of 81 every 200 ms,
// fall 2 rise 2; 80 as backup; one cookie), until the test ends. It
// returns its haproxy.cfg.
func startHAProxy(t *testing.T, ns *nstest.NS, addr string) (cfg string) {
	t.Helper()
	backend, err := haproxy.Backend(haproxy.Options{Servers: []haproxy.Server{{Name: "web1", Host: addr}}, Inter: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg = filepath.Join(dir, "haproxy.cfg")
	conf := fmt.Sprintf("global\n    stats socket %s mode 600 level admin\ndefaults\n    mode http\n"+
		"    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n"+
		"frontend www\n    bind 127.0.0.1:8000\n    default_backend app\n%s", filepath.Join(dir, "stats.sock"), backend)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ns.MustExec(t, "haproxy", "-c", "-q", "-f", cfg)
	cmd := ns.Command("haproxy", "-db", "-f", cfg)
	log, _ := os.Create(filepath.Join(dir, "haproxy.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// ip netns exec execs HAProxy itself: the PID is HAProxy's.
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cfg
}

// opOutcome is the result of an operation's --json output (its last
// line), what the tests check of it.
type opOutcome struct {
	Phase          string        `json:"phase"`
	Note           string        `json:"note"`
	OutOfRotation  *confirmation `json:"out_of_rotation"`
	BackInRotation *confirmation `json:"back_in_rotation"`
}

type confirmation struct {
	LoadBalancers []struct {
		Address   string `json:"address"`
		Confirmed bool   `json:"confirmed"`
	} `json:"load_balancers"`
}

func opResult(t *testing.T, out string) opOutcome {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var r struct {
		Result *opOutcome `json:"result"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil || r.Result == nil {
		t.Fatalf("no result in the --json output: %v\n%s", err, out)
	}
	return *r.Result
}

// confirmedBy tells whether c is 1/1: the one load balancer, at addr,
// confirmed.
func confirmedBy(c *confirmation, addr string) bool {
	return c != nil && len(c.LoadBalancers) == 1 && c.LoadBalancers[0].Address == addr && c.LoadBalancers[0].Confirmed
}

// An upgrade while a maintenance is held, as dpkg and systemd do it:
// the postinst's try-restart gives the agent a new process on the new
// binary, which resumes held with the same reason, and the forward
// stays withdrawn throughout.
func TestSystemdUpgradeHeld(t *testing.T) {
	t.Parallel()
	oldDeb, _ := buildPackages(t, "0.0.1")
	newDeb, _ := buildPackages(t, "0.0.2")
	c, debs := bootWithDebs(t, nspawn.Options{}, oldDeb, newDeb)
	oldPID := installAndStart(t, c, debs[0])
	csh(t, c, "drainctl maintenance enter --reason kernel")

	begin := time.Now()
	csh(t, c, "dpkg -i "+debs[1])
	t.Logf("dpkg -i (upgrade, try-restart) in %v", time.Since(begin).Round(time.Millisecond))
	csh(t, c, "systemctl is-active -q drainctl")
	newPID := unitPID(t, c, "drainctl")
	if newPID == oldPID {
		t.Fatalf("the agent was not restarted by the upgrade (MainPID %d)", newPID)
	}
	if out := csh(t, c, fmt.Sprintf("readlink /proc/%d/exe; drainctl --version", newPID)); !strings.HasPrefix(out, "/usr/bin/drainctl\ndrainctl 0.0.2\n") {
		t.Fatalf("after the upgrade:\n%s", out)
	}
	st, out := cstatus(t, c)
	if st.State.Phase != apitype.PhaseHeld || st.State.Holder == nil || st.State.Holder.Reason != "kernel" || !withdrawn(st) {
		t.Fatalf("after the upgrade the server must still be held and withdrawn:\n%s", out)
	}
	if rules := csh(t, c, "nft list ruleset"); !strings.Contains(rules, "table inet drainctl") || !strings.Contains(rules, "reject with tcp reset") {
		t.Fatalf("the withdraw rule is gone after the upgrade:\n%s", rules)
	}
}

// cdoctor is `drainctl doctor --json` in the container, with the
// packaged agent's configuration, and its report.
func cdoctor(t *testing.T, c *nspawn.Container, args ...string) doctorReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	begin := time.Now()
	out, err := c.Exec(ctx, append([]string{"drainctl", "doctor", "--json"}, args...)...)
	code, stderr := 0, ""
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code, stderr = ee.ExitCode(), err.Error()
	case err != nil:
		t.Fatal(err)
	}
	t.Logf("drainctl doctor in the container: exit %d in %v", code, time.Since(begin).Round(10*time.Millisecond))
	return parseDoctor(t, out, stderr, code)
}

// guarded is doctor's finding of a unit whose guard runs.
func guarded(name string) want {
	return want{id: "restarts.guard", severity: "ok",
		found: fmt.Sprintf("%s.service's stops and restarts are drained (drainctl-guard@%s.service active)", name, name)}
}

// doctorUnderSystemd runs doctor in a container whose packaged agent runs
// under drainctl.service, Apache under apache2.service, and HAProxy
// (haproxyCfg, a copy given to doctor) checks the forward: all ok. Then
// the unit's sandbox without AF_PACKET (the agent cannot watch the
// checks, and says so), the agent stopped, the unit disabled.
func doctorUnderSystemd(t *testing.T, c *nspawn.Container, haproxyCfg string) {
	t.Helper()
	b, err := os.ReadFile(haproxyCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "root", "haproxy.cfg"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	st, _ := cstatus(t, c)
	backend := st.Backend
	lb := want{id: "checks.forward-port", severity: "ok", found: nstest.Cli4 + " checks port 81 every 0.2"} // 0.2 s, or 0.21 on a loaded machine
	const nftablesService = "nftables.service: /etc/nftables.conf flushes the whole ruleset"
	webOK := []want{
		{id: "web.commands", severity: "ok", found: `restart "systemctl reload apache2.service" (`},
		{id: "web.configtest", severity: "ok", found: "passes"},
		{id: "web.ready", severity: "ok", found: "the readiness check GET http://127.0.0.1:80/ passes"},
		{id: "web.unit", severity: "ok", found: "systemd runs apache2.service (active), and the restart goes through it"},
	}
	base := []want{
		{id: "agent.state-file", severity: "ok", found: "/var/lib/drainctl/state.json: in-service"},
		{id: "pool.none", severity: "ok", found: "no pool"},
		lb,
	}
	agentUp := []want{
		{id: "firewall.backend", severity: "ok", found: "the agent keeps the forward in " + backend + " ("},
		{id: "firewall.software", severity: "ok", found: nftablesService},
		{id: "agent.running", severity: "ok", found: "the agent answers: in service, backend " + backend},
	}
	up := slices.Concat(agentUp, base, webOK)
	unitOK := want{id: "agent.unit", severity: "ok", found: "drainctl.service is active and enabled; its sandbox allows what the agent needs"}

	// As packaged: nothing to fix.
	r := cdoctor(t, c, "--listen", "1s", "--haproxy-config", "/root/haproxy.cfg")
	r.expect(t, nil, append(up, unitOK, guarded("apache2"), want{id: "haproxy.ok", severity: "ok", found: "/root/haproxy.cfg: withdrawing this server will not lose requests or sessions"})...)
	if r.Worst != "ok" {
		t.Fatalf("doctor under the packaged unit: worst %s, want ok\n%s", r.Worst, r)
	}

	// A drop-in that lists the families without AF_PACKET only adds to
	// the unit's list (systemd merges allow lists): AF_PACKET stays
	// allowed, and doctor reads systemd's merged value, not the file.
	dropIn := "/etc/systemd/system/drainctl.service.d/x.conf"
	csh(t, c, "mkdir -p /etc/systemd/system/drainctl.service.d && printf '[Service]\\nRestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6\\n' >"+dropIn+
		" && systemctl daemon-reload && systemctl restart drainctl")
	if fams := csh(t, c, "systemctl show -P RestrictAddressFamilies drainctl"); !strings.Contains(fams, "AF_PACKET") {
		t.Fatalf("a drop-in's allow list replaced the unit's: %q", fams)
	}
	r = cdoctor(t, c, "--listen", "1s")
	r.expect(t, nil, append(up, want{id: "agent.unit", severity: "ok", found: "(drop-ins: " + dropIn + ")"})...)

	// Reset first: now AF_PACKET is forbidden. The agent starts, cannot
	// open its packet socket, says so, and its status has no health
	// checks; doctor's own capture still sees HAProxy.
	csh(t, c, "printf '[Service]\\nRestrictAddressFamilies=\\nRestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6\\n' >"+dropIn+
		" && systemctl daemon-reload && systemctl restart drainctl")
	if fams := csh(t, c, "systemctl show -P RestrictAddressFamilies drainctl"); strings.Contains(fams, "AF_PACKET") || !strings.Contains(fams, "AF_NETLINK") {
		t.Fatalf("RestrictAddressFamilies after the reset: %q", fams)
	}
	if st, out := cstatus(t, c); st.HealthChecks != nil {
		t.Fatalf("the agent watches the checks without AF_PACKET:\n%s", out)
	}
	// The journal may lag behind the agent's start on a loaded machine:
	// a few seconds for the line.
	journal := csh(t, c, "for i in $(seq 50); do journalctl -q -u drainctl --no-pager -n 30 | grep -q 'cannot watch the load balancers' && break; sleep 0.2; done; journalctl -q -u drainctl --no-pager -n 30")
	if !strings.Contains(journal, "cannot watch the load balancers' health checks") || !strings.Contains(journal, "address family not supported") {
		t.Fatalf("the agent's log does not say it cannot watch:\n%s", journal)
	}
	r = cdoctor(t, c, "--listen", "1s")
	r.expect(t, nil, append(up,
		want{id: "agent.sandbox-packet", severity: "warning", found: ") forbids AF_PACKET (drop-ins: " + dropIn + ")"},
		want{id: "checks.agent-not-watching", severity: "warning", found: "the agent does not watch the load balancers' checks (health_checks.watch is on)"})...)
	if r.has("agent.unit") {
		t.Errorf("agent.unit ok beside the sandbox's warning:\n%s", r)
	}

	// The packaged unit again, and the agent stopped: nothing answers.
	// The forward stays (SIGTERM changes no rule): HAProxy's
	// checks still pass.
	csh(t, c, "rm -r /etc/systemd/system/drainctl.service.d && systemctl daemon-reload && systemctl restart drainctl && systemctl stop drainctl")
	r = cdoctor(t, c, "--listen", "1s")
	r.expect(t, nil, slices.Concat(base, webOK, []want{
		{id: "agent.down", severity: "fail", found: "no agent answers: "},
		{id: "firewall.backend", severity: "ok", found: "backend " + backend + " would be used: drainctl's state records its rules there"},
		// Debian's nftables package ships that /etc/nftables.conf with
		// its unit disabled (as here): nothing loads it, so its flush
		// is no warning even with the agent down.
		{id: "firewall.software", severity: "ok", found: nftablesService + " (flush ruleset) at every start and reload of nftables.service; but nftables.service is disabled and inactive: nothing loads it unless someone starts it"},
		{id: "agent.unit", severity: "ok", found: "drainctl.service is inactive and enabled; its sandbox allows what the agent needs"},
	})...)

	// Disabled, running: the next boot starts no agent.
	csh(t, c, "systemctl disable -q drainctl && systemctl start drainctl")
	r = cdoctor(t, c, "--listen", "1s")
	disabled := want{id: "agent.unit-disabled", severity: "warning", found: "drainctl.service is disabled"}
	r.expect(t, nil, append(up, disabled)...)
	if r.has("agent.unit") {
		t.Errorf("agent.unit ok beside agent.unit-disabled:\n%s", r)
	}

	// A php-fpm under systemd (a stand-in unit: the image has no PHP):
	// the package's generator gives it its guard at the daemon-reload.
	// With the generator's drop-in masked (an empty one of the same name
	// in /etc), undrained until it wants its guard; then drained, with
	// doctor's fix as written. Its guard is stopped first, and alone (its
	// hook sees no stop of php-fpm), or its stop would take the server
	// out.
	csh(t, c, "printf '[Service]\\nExecStart=/bin/sleep infinity\\n' >/etc/systemd/system/php8.2-fpm.service && systemctl daemon-reload && systemctl start php8.2-fpm")
	r = cdoctor(t, c, "--listen", "1s")
	r.expect(t, nil, append(up, disabled, guarded("apache2"), guarded("php8.2-fpm"))...)
	csh(t, c, "systemctl stop drainctl-guard@php8.2-fpm.service && mkdir -p /etc/systemd/system/php8.2-fpm.service.d && : >/etc/systemd/system/php8.2-fpm.service.d/drainctl.conf && systemctl daemon-reload")
	r = cdoctor(t, c, "--listen", "1s")
	r.expect(t, nil, append(up, disabled, guarded("apache2"),
		want{id: "restarts.guard", severity: "warning", found: "php8.2-fpm.service does not want drainctl-guard@php8.2-fpm.service"})...)
	csh(t, c, "mkdir -p /etc/systemd/system/php8.2-fpm.service.d && printf '[Unit]\\nWants=drainctl-guard@php8.2-fpm.service\\n' >/etc/systemd/system/php8.2-fpm.service.d/drainctl.conf"+
		" && systemctl daemon-reload && systemctl start drainctl-guard@php8.2-fpm.service")
	r = cdoctor(t, c, "--listen", "1s")
	r.expect(t, nil, append(up, disabled, guarded("apache2"), guarded("php8.2-fpm"))...)
	csh(t, c, "systemctl stop drainctl-guard@php8.2-fpm.service && systemctl stop php8.2-fpm && rm -r /etc/systemd/system/php8.2-fpm.service* && systemctl daemon-reload")

	// unattended-upgrades (a stand-in program: the image has none) on,
	// run by Debian's apt-daily-upgrade.timer (06:00 plus up to an hour):
	// outside the window; inside once doctor's fix is applied as written.
	csh(t, c, "touch /usr/bin/unattended-upgrade && printf 'APT::Periodic::Unattended-Upgrade \"1\";\\n' >/etc/apt/apt.conf.d/20auto-upgrades")
	const window = "01:00-02:00 UTC"
	r = cdoctor(t, c, "--listen", "1s", "--window", window)
	r.expect(t, nil, append(up, disabled, guarded("apache2"),
		want{id: "restarts.unattended", severity: "ok", found: `unattended-upgrades runs (APT::Periodic::Unattended-Upgrade "1" in /etc/apt/apt.conf.d/20auto-upgrades): dpkg restarts the web server when it upgrades it, drained by the guard`},
		want{id: "restarts.unattended-window", severity: "warning", found: "apt-daily-upgrade.timer (OnCalendar *-*-* 06:00:00) runs unattended-upgrades next at "},
		want{id: "restarts.unattended-window", severity: "warning", found: ", plus up to 1h0m0s at random"},
		want{id: "restarts.unattended-window", severity: "warning", found: ": outside the window " + window})...)
	csh(t, c, "mkdir -p /etc/systemd/system/apt-daily-upgrade.timer.d && printf '[Timer]\\nOnCalendar=\\nOnCalendar=01:00 UTC\\nRandomizedDelaySec=0\\n' >/etc/systemd/system/apt-daily-upgrade.timer.d/window.conf"+
		" && systemctl daemon-reload && systemctl restart apt-daily-upgrade.timer")
	r = cdoctor(t, c, "--listen", "1s", "--window", window)
	r.expect(t, nil, append(up, disabled, guarded("apache2"),
		want{id: "restarts.unattended-window", severity: "ok", found: ": inside the window " + window})...)
	csh(t, c, "rm -r /usr/bin/unattended-upgrade /etc/apt/apt.conf.d/20auto-upgrades /etc/systemd/system/apt-daily-upgrade.timer.d && systemctl daemon-reload")

	// Apache's guard stopped alone: Apache's stops are not drained until
	// it runs again.
	csh(t, c, "systemctl stop drainctl-guard@apache2.service")
	r = cdoctor(t, c, "--listen", "1s")
	r.expect(t, nil, append(up, disabled,
		want{id: "restarts.guard", severity: "warning", found: "apache2.service wants drainctl-guard@apache2.service, but the guard is inactive"})...)

	// Apache stopped (behind its stopped guard, which would take the
	// server out first): the readiness check fails, and HAProxy's checks
	// of 81 are refused while the agent says the forward is in service.
	// With a restart command that does not go through systemd the
	// inactive unit is no concern: the web server runs outside it.
	csh(t, c, "systemctl stop apache2")
	r = cdoctor(t, c, "--listen", "1s", "--restart-cmd", "true", "--ready-timeout", "1s")
	r.expect(t, nil, slices.Concat(agentUp, base, []want{disabled,
		{id: "web.not-ready", severity: "fail", found: "the readiness check GET http://127.0.0.1:80/ fails: "},
		{id: "checks.refused", severity: "fail", found: "checks of port 81 while the agent says the forward is in service"},
		{id: "web.unit", severity: "ok", found: "apache2.service but it is inactive: the web server runs outside it", not: "the restart goes through it"},
	})...)
	if r.has("web.ready") {
		t.Errorf("web.ready with Apache stopped:\n%s", r)
	}
}
