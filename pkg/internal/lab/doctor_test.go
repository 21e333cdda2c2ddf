package lab

// drainctl doctor on the lab's app servers, run in each server's
// namespace with its agent's own settings flags (Web.Doctor): each
// finding asserted on a real set-up — real HAProxy checking real Apache
// or nginx, real agents, a real etcd — rather than on facts made by hand
// (pkg/doctor's unit tests). Two labs: a healthy one whose subtests break
// one thing at a time and put it back, and a broken haproxy.cfg.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/doctor"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// Doctor's exit statuses (cmd/drainctl: exitDoctorWarning, exitDoctorFail).
const (
	doctorOK      = 0
	doctorWarning = 15
	doctorFail    = 16
)

// hostEnv is what doctor reads of the machine itself rather than of the
// lab: the namespaces share the host's files, its systemd and its
// reboot flag. On a bare test machine (no systemd, no reboot owed) none
// of it makes a warning; where it does, the finding is the one doctor
// owes any app server on that machine, so the tests expect it too.
type hostEnv struct {
	// nftFlush: /etc/nftables.conf flushes the whole ruleset (Debian's
	// default): nftables.service's reload would remove drainctl's rules.
	nftFlush bool
	// systemd runs the machine (and so no drainctl.service runs the lab's
	// agents); webUnitActive: it runs the preset's unit (apache2.service,
	// nginx.service), whose reload the lab's own command goes around.
	systemd       bool
	webUnitActive map[WebServer]bool
	// rebootFlag: /var/run/reboot-required exists; needrestart, if
	// installed, may say a reboot is owed (or fail to tell).
	rebootFlag, needrestart bool
}

func readHost(t *testing.T) hostEnv {
	t.Helper()
	var h hostEnv
	if b, err := os.ReadFile("/etc/nftables.conf"); err == nil {
		h.nftFlush = regexp.MustCompile(`(?m)^\s*flush\s+ruleset`).Match(b)
	}
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		h.systemd = true
	}
	h.webUnitActive = map[WebServer]bool{}
	for ws, unit := range map[WebServer]string{Apache: "apache2.service", Nginx: "nginx.service"} {
		if h.systemd {
			out, _ := exec.Command("systemctl", "show", unit, "-p", "LoadState,ActiveState").Output()
			h.webUnitActive[ws] = strings.Contains(string(out), "LoadState=loaded") && strings.Contains(string(out), "ActiveState=active")
		}
	}
	_, err := os.Stat("/var/run/reboot-required")
	h.rebootFlag = err == nil
	_, err = exec.LookPath("needrestart")
	h.needrestart = err == nil
	t.Logf("host: nftables.conf flushes %v, systemd %v, web units active %v, reboot flag %v, needrestart %v",
		h.nftFlush, h.systemd, h.webUnitActive, h.rebootFlag, h.needrestart)
	return h
}

// findings are the warnings and fails doctor makes of the machine for an
// app server of ws whose agent is up or not.
func (h hostEnv) findings(ws WebServer, agentUp bool) (warns, fails []string) {
	if h.nftFlush && !agentUp {
		// Nothing would put the forward back after the reload.
		warns = append(warns, "firewall.software-removes")
	}
	if h.systemd {
		// The lab's agent runs outside drainctl.service (up: warning;
		// down: no unit starts one at boot, a fail).
		if agentUp {
			warns = append(warns, "agent.no-unit")
		} else {
			fails = append(fails, "agent.no-unit")
		}
		if h.webUnitActive[ws] {
			warns = append(warns, "web.bypasses-systemd")
		}
	}
	if h.rebootFlag {
		warns = append(warns, "reboot.required")
	}
	return warns, fails
}

// expect says what doctor must report on w beyond the set-up's own
// findings: the exact warnings and fails (set-up's and host's), and the
// exit status that follows.
type expect struct {
	warns, fails []string
}

func (h hostEnv) expect(ws WebServer, agentUp bool, warns, fails []string) expect {
	hw, hf := h.findings(ws, agentUp)
	e := expect{warns: append(slices.Clone(warns), hw...), fails: append(slices.Clone(fails), hf...)}
	slices.Sort(e.warns)
	slices.Sort(e.fails)
	return e
}

func (e expect) exit() int {
	switch {
	case len(e.fails) > 0:
		return doctorFail
	case len(e.warns) > 0:
		return doctorWarning
	}
	return doctorOK
}

// check fails the test unless r has exactly e's warnings and fails and
// the exit status follows them. needrestart's verdict on the machine is
// not the lab's to know: with it installed, reboot.required and
// reboot.unknown may come or not.
func (e expect) check(t *testing.T, h hostEnv, d doctorRun) {
	t.Helper()
	warns := d.IDs(doctor.Warning)
	if h.needrestart && !h.rebootFlag {
		warns = slices.DeleteFunc(warns, func(id string) bool { return id == "reboot.required" || id == "reboot.unknown" })
	}
	if !slices.Equal(warns, e.warns) {
		t.Errorf("%s: warnings %v, want %v\n%s", d.w.Name, warns, e.warns, d.Report)
	}
	if fails := d.IDs(doctor.Fail); !slices.Equal(fails, e.fails) {
		t.Errorf("%s: fails %v, want %v\n%s", d.w.Name, fails, e.fails, d.Report)
	}
	want := e.exit()
	if h.needrestart && want == doctorOK && d.code == doctorWarning {
		want = doctorWarning
	}
	if d.code != want || d.Worst.String() != map[int]string{doctorOK: "ok", doctorWarning: "warning", doctorFail: "fail"}[want] {
		t.Errorf("%s: exit %d, worst %s; want exit %d\n%s", d.w.Name, d.code, d.Worst, want, d.Report)
	}
}

// doctorRun is one doctor run's report, exit status and server.
type doctorRun struct {
	Report
	code int
	w    *Web
}

// runDoctor runs doctor on each of ws at once (each in its own
// namespace, capturing its own checks) and returns their reports.
func runDoctor(t *testing.T, ws []*Web, extra ...string) []doctorRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	runs := make([]doctorRun, len(ws))
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	start := time.Now()
	for i, w := range ws {
		wg.Go(func() {
			runs[i].w = w
			runs[i].Report, runs[i].code, errs[i] = w.Doctor(ctx, extra...)
		})
	}
	wg.Wait()
	for i, d := range runs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		t.Logf("doctor on %s %v: exit %d in %v\n%s", d.w.Name, extra, d.code, time.Since(start).Round(time.Millisecond), d.Report)
	}
	return runs
}

// one is runDoctor on a single server.
func one(t *testing.T, w *Web, extra ...string) doctorRun {
	t.Helper()
	return runDoctor(t, []*Web{w}, extra...)[0]
}

// finding returns the only finding with id, failing the test unless
// there is exactly one, of severity sev, whose Found has every want.
func (d doctorRun) finding(t *testing.T, id string, sev doctor.Severity, want ...string) doctor.Finding {
	t.Helper()
	fs := d.Find(id)
	if len(fs) != 1 {
		t.Fatalf("%s: %d findings %s, want 1\n%s", d.w.Name, len(fs), id, d.Report)
	}
	f := fs[0]
	if f.Severity != sev {
		t.Errorf("%s: %s is %s, want %s: %s", d.w.Name, id, f.Severity, sev, f.Found)
	}
	for _, s := range want {
		if !strings.Contains(f.Found, s) {
			t.Errorf("%s: %s says %q, want it to say %q", d.w.Name, id, f.Found, s)
		}
	}
	if sev != doctor.OK && (f.Impact == "" || f.Fix == "") {
		t.Errorf("%s: %s %s without impact or fix: %+v", d.w.Name, sev, id, f)
	}
	return f
}

// none fails the test if r has a finding of any of ids.
func (d doctorRun) none(t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if fs := d.Find(id); len(fs) > 0 {
			t.Errorf("%s: finding %s %q, want none", d.w.Name, id, fs[0].Found)
		}
	}
}

// checksRE reads a checks.forward-port finding (lbview's Describe:
// "198.18.1.1 checks port 81 every 0.5 s, last 0.05 s ago (4 checks, 0
// refused)").
var checksRE = regexp.MustCompile(`^(\S+) checks port 81 every ([0-9.]+) s, .*\((\d+) checks, (\d+) refused\)`)

// forwardChecks asserts d's one checks.forward-port finding: the load
// balancer lb checks port 81 about every 500 ms (the median of the gaps
// doctor saw: 0.49 or 0.51 s on a busy machine). It returns the checks
// and refusals it counts.
func (d doctorRun) forwardChecks(t *testing.T, lb string) (checks, refused int) {
	t.Helper()
	f := d.finding(t, "checks.forward-port", doctor.OK)
	m := checksRE.FindStringSubmatch(f.Found)
	if m == nil {
		t.Fatalf("%s: checks.forward-port %q: want ADDR checks port 81 every N s, ... (N checks, N refused)", d.w.Name, f.Found)
	}
	if m[1] != lb {
		t.Errorf("%s: checks.forward-port names %s, want %s (the load balancer on its link): %q", d.w.Name, m[1], lb, f.Found)
	}
	if every, _ := strconv.ParseFloat(m[2], 64); every < 0.4 || every > 0.6 {
		t.Errorf("%s: checks.forward-port says every %s s, want about 0.5 (HAProxy's inter 500ms): %q", d.w.Name, m[2], f.Found)
	}
	checks, _ = strconv.Atoi(m[3])
	refused, _ = strconv.Atoi(m[4])
	return checks, refused
}

// TestDoctorLab runs doctor on a healthy lab (the recommended pattern on
// nftables, Apache, two servers in a pool on a one-member etcd), then
// breaks one thing at a time and puts it back, in this order:
//
//   - healthy: on each server, its load balancer checks port 81 (the
//     address on its own link: each doctor captures in its own
//     namespace), every check accepted; the agent answers in service,
//     the config test and the readiness check pass, the pool has both
//     servers; no warning, no fail, exit 0 (on a machine without systemd
//     or a reboot owed; hostEnv says what such a machine adds);
//   - --haproxy-config with the lab's haproxy.cfg: haproxy.ok, the
//     intervals agree; with a copy whose web1 entry says inter 3s:
//     checks.interval-differs on web1 (naming the file's line), not on
//     web2, exit 15;
//   - web1's apache2.conf broken: web.configtest-fails, the readiness
//     check still passes (Apache runs its loaded config), exit 16;
//   - web1 held (maintenance enter): agent.held, and pool.full (its
//     one slot is web1's); HAProxy's checks all refused but no
//     checks.refused (expected while held), exit 15;
//   - web1's Apache stopped: web.not-ready, and checks.refused (the agent
//     says in service, the host refuses every check), exit 16;
//   - another program's nftables table on web1 that names port 81 and
//     drops port 80 from the load balancer's link: firewall.port-rule,
//     and checks.unanswered (the redirected checks dropped), exit 16;
//   - web1's agent killed: agent.down; the load balancer still found,
//     by doctor's own capture (a few checks, not the agent's history),
//     the backend as it would be chosen, the pool read from etcd
//     directly, exit 16;
//   - etcd killed: pool.unavailable, exit 16.
func TestDoctorLab(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireCmd(t, "etcd", "etcdctl")
	h := readHost(t)
	start := time.Now()
	l := startLabWith(t, Options{Backend: "nftables", Pool: &PoolOptions{Members: 1}})
	t.Logf("lab up in %v", time.Since(start).Round(time.Millisecond))
	for _, c := range []struct {
		name string
		run  func(*testing.T, *Lab, hostEnv)
	}{
		{"healthy", doctorHealthy},
		{"haproxy-config", doctorHAProxyConfig},
		{"broken-config", doctorBrokenConfig},
		{"held", doctorHeld},
		{"web-down", doctorWebDown},
		{"firewall", doctorFirewall},
		{"agent-down", doctorAgentDown},
		{"etcd-down", doctorEtcdDown},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, l, h) })
	}
}

func doctorHealthy(t *testing.T, l *Lab, h hostEnv) {
	for i, d := range runDoctor(t, l.Webs) {
		w := d.w
		h.expect(Apache, true, nil, nil).check(t, h, d)
		if checks, refused := d.forwardChecks(t, ActiveLB4(i+1)); checks < 3 || refused != 0 {
			t.Errorf("%s: %d checks, %d refused; want 3 or more (2 s at 500 ms), none refused", w.Name, checks, refused)
		}
		d.none(t, "checks.service-port", "checks.none", "checks.unanswered", "checks.refused", "checks.interval-differs", "checks.agent-not-watching")
		d.finding(t, "firewall.backend", doctor.OK, "the agent keeps the forward in nftables")
		d.finding(t, "agent.running", doctor.OK, "in service, backend nftables")
		d.finding(t, "agent.state-file", doctor.OK, "state.json: in-service")
		d.finding(t, "web.commands", doctor.OK, "web server apache", strings.Join(w.configTestCmd(), " "), w.ReloadCommand())
		d.finding(t, "web.configtest", doctor.OK, w.ConfigFile())
		d.finding(t, "web.ready", doctor.OK, "http://127.0.0.1:80/")
		d.finding(t, "pool.status", doctor.OK, "pool web: 2 members (2 live)", "0 unavailable now", "this host is "+w.Name)
		if h.systemd {
			d.none(t, "agent.no-systemd")
		} else {
			d.finding(t, "agent.no-systemd", doctor.OK)
		}
	}
}

// entryLine finds server's primary entry in a haproxy.cfg: its line
// number and text.
func entryLine(t *testing.T, cfg, server string) (int, string) {
	t.Helper()
	for i, line := range strings.Split(cfg, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "server "+server+" ") {
			return i + 1, line
		}
	}
	t.Fatalf("no entry for %s in haproxy.cfg:\n%s", server, cfg)
	return 0, ""
}

func doctorHAProxyConfig(t *testing.T, l *Lab, h hostEnv) {
	file := l.HAProxyConfigFile()
	for _, d := range runDoctor(t, l.Webs, "--haproxy-config", file) {
		h.expect(Apache, true, nil, nil).check(t, h, d)
		d.finding(t, "haproxy.ok", doctor.OK, file)
		d.none(t, "haproxy.finding", "checks.interval-differs")
	}

	// A copy whose web1 entry says inter 3s: HAProxy checks every 500 ms.
	cfg := l.HAProxyConfig()
	n, line := entryLine(t, cfg, "web1")
	if !strings.Contains(line, " inter 500ms ") {
		t.Fatalf("web1's entry %q: no inter 500ms", line)
	}
	edited := strings.Replace(cfg, line, strings.Replace(line, " inter 500ms ", " inter 3s ", 1), 1)
	copyFile := l.o.Dir + "/haproxy-edited.cfg"
	if err := os.WriteFile(copyFile, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	runs := runDoctor(t, l.Webs, "--haproxy-config", copyFile)
	web1, web2 := runs[0], runs[1]
	h.expect(Apache, true, []string{"checks.interval-differs"}, nil).check(t, h, web1)
	web1.finding(t, "checks.interval-differs", doctor.Warning, fmt.Sprintf("%s:%d:", copyFile, n), "web1's entry says inter 3 s", "but "+ActiveLB4(1)+" checks every 0.5 s")
	// Inter 3s is no haproxy-check finding: fall 2 × 3 s is slow, not lossy.
	web1.finding(t, "haproxy.ok", doctor.OK, copyFile)
	// web2's entry is as HAProxy runs it.
	h.expect(Apache, true, nil, nil).check(t, h, web2)
	web2.none(t, "checks.interval-differs")
}

func doctorBrokenConfig(t *testing.T, l *Lab, h hostEnv) {
	w := l.Webs[0]
	conf := w.ConfigFile()
	orig, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(conf, orig, 0o644); err != nil {
			t.Errorf("restore %s: %v", conf, err)
		}
	})
	if err := os.WriteFile(conf, append(slices.Clone(orig), "\nNoSuchDirective on\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	d := one(t, w)
	h.expect(Apache, true, nil, []string{"web.configtest-fails"}).check(t, h, d)
	d.finding(t, "web.configtest-fails", doctor.Fail, "the config test fails", "NoSuchDirective")
	d.none(t, "web.configtest")
	// Apache runs the config it loaded: it answers.
	d.finding(t, "web.ready", doctor.OK)
	d.forwardChecks(t, ActiveLB4(1))
}

func doctorHeld(t *testing.T, l *Lab, h hostEnv) {
	ctx := context.Background()
	w := l.Webs[0]
	if out, code, err := w.Drainctl(ctx, "maintenance", "enter", "--reason", "doctor lab hold"); err != nil || code != 0 {
		t.Fatalf("maintenance enter: exit %d %v\n%s", code, err, out)
	}
	t.Cleanup(func() {
		if out, code, err := w.Drainctl(ctx, "maintenance", "exit"); err != nil || code != 0 {
			t.Errorf("maintenance exit: exit %d %v\n%s", code, err, out)
		}
		if _, err := l.WaitStatus(ctx, w.Name, "UP", 10*time.Second); err != nil {
			t.Error(err)
		}
	})
	d := one(t, w)
	// pool.full is the truth: max_unavailable 1, and web1 holds the slot.
	h.expect(Apache, true, []string{"agent.held", "pool.full"}, nil).check(t, h, d)
	d.finding(t, "agent.held", doctor.Warning, "held", "doctor lab hold")
	d.finding(t, "pool.full", doctor.Warning, "web1: holds a slot (enter")
	d.finding(t, "pool.status", doctor.OK, "1 unavailable now")
	d.finding(t, "agent.state-file", doctor.OK, "state.json: held")
	d.none(t, "agent.running", "checks.refused", "checks.unanswered")
	// The withdrawn forward refuses every check: the load balancer is
	// still found, and the refusals are no finding.
	if checks, refused := d.forwardChecks(t, ActiveLB4(1)); checks < 3 || refused != checks {
		t.Errorf("held: %d checks, %d refused; want 3 or more, all refused", checks, refused)
	}
	d.finding(t, "web.configtest", doctor.OK) // the broken config was put back
}

func doctorWebDown(t *testing.T, l *Lab, h hostEnv) {
	ctx := context.Background()
	w := l.Webs[0]
	// -k stop returns before Apache is gone: wait (bounded) for its pid file.
	if out, err := w.ns.Exec("apache2", "-f", w.conf, "-k", "stop"); err != nil {
		t.Fatalf("apache2 -k stop: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := w.ns.Exec("apache2", "-f", w.conf, "-k", "start"); err != nil {
			t.Errorf("apache2 -k start: %v %s", err, out)
		}
		if _, err := l.WaitStatus(ctx, w.Name, "UP", 10*time.Second); err != nil {
			t.Error(err)
		}
	})
	if !waitFor(func() bool { _, err := os.Stat(w.pidFile()); return os.IsNotExist(err) }) {
		t.Fatalf("%s's Apache did not stop", w.Name)
	}
	d := one(t, w)
	h.expect(Apache, true, nil, []string{"checks.refused", "web.not-ready"}).check(t, h, d)
	d.finding(t, "web.not-ready", doctor.Fail, "http://127.0.0.1:80/")
	// The agent says in service, the kernel refuses every check: the
	// load balancer sees the server DOWN.
	d.finding(t, "checks.refused", doctor.Fail, "refused all", ActiveLB4(1)+"'s checks of port 81")
	if checks, refused := d.forwardChecks(t, ActiveLB4(1)); refused == 0 || refused > checks {
		t.Errorf("web down: %d checks, %d refused; want them refused", checks, refused)
	}
	d.finding(t, "agent.running", doctor.OK)
	d.finding(t, "web.configtest", doctor.OK) // the config is fine: Apache is just not running
}

// doctorFirewall adds another program's nftables table to web1: a rule
// that names the forward port (harmless: it counts) and one that drops
// the service port from the load balancer's link. The redirected checks
// arrive on port 80 and are dropped: nobody answers them.
func doctorFirewall(t *testing.T, l *Lab, h hostEnv) {
	ctx := context.Background()
	w := l.Webs[0]
	rules := "table inet doctorlab {\n" +
		"\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n" +
		"\t\ttcp dport 81 counter\n" +
		"\t\tiifname \"eth0\" tcp dport 80 drop\n\t}\n}\n"
	nft := func(args ...string) error {
		cmd := exec.Command("ip", append([]string{"netns", "exec", w.ns.Name, "nft"}, args...)...)
		if args[0] == "-f" {
			cmd.Stdin = strings.NewReader(rules)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("nft %v: %w: %s", args, err, out)
		}
		return nil
	}
	if err := nft("-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nft("delete", "table", "inet", "doctorlab"); err != nil {
			t.Error(err)
		}
		if _, err := l.WaitStatus(ctx, w.Name, "UP", 10*time.Second); err != nil {
			t.Error(err)
		}
	})
	// HAProxy sends its next check only when the last one timed out
	// (timeout connect 2s): a SYN and its retransmit 1 s later, every
	// 2.5 s. A 2 s capture holds two of them or only one, depending on
	// where it falls: doctor judges a source from two SYNs, so the short
	// run may or may not say checks.unanswered (logged); the default 6 s
	// always holds enough, and is asserted.
	short := one(t, w)
	t.Logf("--listen 2s: checks.unanswered found: %v", len(short.Find("checks.unanswered")) > 0)
	// Doctor's default capture, 6 s, sees enough.
	d := one(t, w, "--listen", "6s")
	h.expect(Apache, true, []string{"firewall.port-rule"}, []string{"checks.unanswered"}).check(t, h, d)
	d.finding(t, "firewall.port-rule", doctor.Warning, "port 81", "doctorlab")
	d.finding(t, "checks.unanswered", doctor.Fail, "answered none of", ActiveLB4(1)+"'s", "port 81")
	d.none(t, "checks.refused")
	d.finding(t, "web.ready", doctor.OK) // from loopback: not dropped
}

func doctorAgentDown(t *testing.T, l *Lab, h hostEnv) {
	w := l.Webs[0]
	w.KillAgent()
	t.Cleanup(func() {
		if err := l.StartAgent(w); err != nil {
			t.Errorf("start the agent again: %v", err)
		}
	})
	d := one(t, w)
	h.expect(Apache, false, nil, []string{"agent.down"}).check(t, h, d)
	d.finding(t, "agent.down", doctor.Fail, "no agent answers", w.Socket)
	d.none(t, "agent.running")
	// Doctor's own capture: 2 s at 500 ms, not the agent's minutes of
	// history (the agent is gone; it counted hundreds).
	if checks, refused := d.forwardChecks(t, ActiveLB4(1)); checks < 3 || checks > 8 || refused != 0 {
		t.Errorf("agent down: %d checks, %d refused; want 3 to 8 (doctor's 2 s capture), none refused", checks, refused)
	}
	d.finding(t, "firewall.backend", doctor.OK, "backend nftables would be used")
	d.finding(t, "agent.state-file", doctor.OK, "state.json: in-service")
	// No agent to ask: doctor asks etcd, as the agent would.
	d.finding(t, "pool.status", doctor.OK, "pool web: 2 members", "this host is web1")
	if h.nftFlush {
		d.finding(t, "firewall.software-removes", doctor.Warning, "nftables.service")
	}
}

func doctorEtcdDown(t *testing.T, l *Lab, h hostEnv) {
	l.KillEtcd(0)
	t.Cleanup(func() {
		if err := l.StartEtcd(0); err != nil {
			t.Errorf("start etcd again: %v", err)
		} else if err := l.WaitEtcd(context.Background()); err != nil {
			t.Error(err)
		}
	})
	d := one(t, l.Webs[0])
	h.expect(Apache, true, nil, []string{"pool.unavailable"}).check(t, h, d)
	d.finding(t, "pool.unavailable", doctor.Fail, "pool web on "+l.EtcdEndpoints())
	d.finding(t, "agent.running", doctor.OK)
	d.forwardChecks(t, ActiveLB4(1))
}

// TestDoctorServicePort runs doctor on nginx app servers behind a broken
// haproxy.cfg: the primary entries check the service port (Options.
// CheckPort 80), so withdrawing the forward takes nobody out.
// checks.service-port names HAProxy's address, there is no
// checks.forward-port (nobody checks 81) nor checks.none (doctor found
// who checks, on the wrong port); with --haproxy-config the file's
// entry is a haproxy.finding; the nginx commands are the agent's and
// their config test passes. Exit 16.
func TestDoctorServicePort(t *testing.T) {
	h := readHost(t)
	start := time.Now()
	l := startLabWith(t, Options{Backend: "nftables", WebServer: Nginx, Servers: 1, CheckPort: 80})
	t.Logf("lab up in %v", time.Since(start).Round(time.Millisecond))
	w := l.Webs[0]
	d := one(t, w, "--haproxy-config", l.HAProxyConfigFile())
	h.expect(Nginx, true, nil, []string{"checks.service-port", "haproxy.finding"}).check(t, h, d)
	f := d.finding(t, "checks.service-port", doctor.Fail, ActiveLB4(1)+" connects to port 80", "never checks port 81")
	// The fix is the recommended entry: the service port, checked on the
	// forward port, at the address the load balancer's checks go to
	// (this server's), never the load balancer's own.
	if strings.Contains(f.Fix, ActiveLB4(1)+":") || !strings.Contains(f.Fix, w.Addr+":80 cookie NAME check port 81") {
		t.Errorf("checks.service-port's fix %q: want the recommended entry, not the load balancer's address", f.Fix)
	}
	d.none(t, "checks.forward-port", "checks.none", "haproxy.ok")
	hf := d.finding(t, "haproxy.finding", doctor.Fail, l.HAProxyConfigFile()+":", "server web1")
	if !strings.Contains(hf.Impact, "forward port 81") {
		t.Errorf("haproxy.finding's impact %q: want the forward port named", hf.Impact)
	}
	d.finding(t, "web.commands", doctor.OK, "web server nginx", `config test "nginx -c `+w.ConfigFile()+` -t"`, `restart "`+w.ReloadCommand()+`"`)
	d.finding(t, "web.configtest", doctor.OK, "nginx -c "+w.ConfigFile()+" -t")
	d.finding(t, "web.ready", doctor.OK)
	d.finding(t, "agent.running", doctor.OK)
	d.finding(t, "pool.none", doctor.OK)
}
