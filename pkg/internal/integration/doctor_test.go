package integration

// drainctl doctor on the hosts the other tests build: the agent under
// each firewall of firewall_test.go on the backends that matter, other
// programs' rules on the forward port, no load balancer and one, a
// stopped agent, a web server that does not answer, bad usage. Each
// test runs the real `drainctl doctor --json` in the server namespace
// with the agent's own settings and checks the findings by their stable
// ids: the ones it must report, and no warning or failure beyond them.
// The systemd tier's (the packaged agent under drainctl.service) are in
// systemd_test.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// doctorReport is `drainctl doctor --json`'s output, field by field as
// scripts read it (not pkg/doctor's types: these tests pin the JSON).
type doctorReport struct {
	Worst    string          `json:"worst"`
	Findings []doctorFinding `json:"findings"`
}

type doctorFinding struct {
	Area     string `json:"area"`
	Severity string `json:"severity"`
	ID       string `json:"id"`
	Found    string `json:"found"`
	Impact   string `json:"impact"`
	Fix      string `json:"fix"`
}

// String lists the findings one a line, for failure messages.
func (r doctorReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "worst %s:\n", r.Worst)
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "  %-8s %-28s %s\n", f.Severity, f.ID, f.Found)
	}
	return b.String()
}

var doctorSeverities = []string{"ok", "warning", "fail"}

// parseDoctor reads doctor's --json output and checks what every report
// must be: each finding with an id, an area, a known severity, and an
// impact and a fix unless it is ok; worst the findings' worst; the exit
// status worst's (0, 15, 16).
func parseDoctor(t *testing.T, out, stderr string, code int) doctorReport {
	t.Helper()
	var r doctorReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("doctor --json: exit %d, %v:\n%s%s", code, err, out, stderr)
	}
	worst := 0
	for _, f := range r.Findings {
		sev := slices.Index(doctorSeverities, f.Severity)
		if sev < 0 || f.ID == "" || f.Area == "" || f.Found == "" {
			t.Errorf("doctor: a malformed finding %+v", f)
		}
		if sev > 0 && (f.Impact == "" || f.Fix == "") {
			t.Errorf("doctor: a %s without its impact or fix: %+v", f.Severity, f)
		}
		worst = max(worst, sev)
	}
	wantCode := []int{exitOK, exitDoctorWarning, exitDoctorFail}[worst]
	if r.Worst != doctorSeverities[worst] || code != wantCode {
		t.Fatalf("doctor: worst %q and exit %d, want %q and exit %d\n%s%s", r.Worst, code, doctorSeverities[worst], wantCode, r, stderr)
	}
	return r
}

// want is a finding doctor must report: its id, its severity, a part of
// what it found, and optionally a part it must not say.
type want struct {
	id, severity, found string
	not                 string
}

// hostFindings are warnings the host that runs the tests may add to a
// report in a namespace: a reboot it owes.
var hostFindings = []string{"reboot.required", "reboot.unknown"}

// expect checks that r has every finding of wants, and no warning or
// failure beyond them but allowed's.
func (r doctorReport) expect(t *testing.T, allowed []string, wants ...want) {
	t.Helper()
	for _, w := range wants {
		var got []string
		match := slices.ContainsFunc(r.Findings, func(f doctorFinding) bool {
			if f.ID == w.id {
				got = append(got, f.Severity+" "+f.Found)
			}
			return f.ID == w.id && f.Severity == w.severity && strings.Contains(f.Found, w.found) &&
				(w.not == "" || !strings.Contains(f.Found, w.not))
		})
		if !match {
			t.Errorf("doctor: want %s %s with %q (not %q); got %q\n%s", w.severity, w.id, w.found, w.not, got, r)
		}
	}
	for _, f := range r.Findings {
		if f.Severity == "ok" || slices.Contains(allowed, f.ID) {
			continue
		}
		if !slices.ContainsFunc(wants, func(w want) bool { return w.id == f.ID && w.severity == f.Severity }) {
			t.Errorf("doctor: unexpected %s %s: %s\n%s", f.Severity, f.ID, f.Found, r)
		}
	}
}

// software is the names of the firewall software r reports.
func (r doctorReport) software() []string {
	var names []string
	for _, f := range r.Findings {
		if f.ID == "firewall.software" || f.ID == "firewall.software-removes" {
			name, _, _ := strings.Cut(f.Found, ":")
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// has says whether r reports a finding of id.
func (r doctorReport) has(id string) bool {
	return slices.ContainsFunc(r.Findings, func(f doctorFinding) bool { return f.ID == id })
}

// systemdFinding is what doctor says of drainctl.service in a namespace
// of the test host: nothing to say without systemd; on a host that runs
// systemd, that it has no unit (the test's agent, up or not, runs
// outside any).
func systemdFinding(agentUp bool) want {
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return want{id: "agent.no-systemd", severity: "ok", found: "systemd does not run this host"}
	}
	if agentUp {
		return want{id: "agent.no-unit", severity: "warning", found: "the agent runs, but not as drainctl.service"}
	}
	return want{id: "agent.no-unit", severity: "fail", found: "systemd has no drainctl.service"}
}

// doctor runs `drainctl doctor --json` in the server namespace with the
// agent's settings (flags, as h.agent gives them), then args, and reads
// its report. The firewall files it reads from /etc are the test's: etc
// maps /etc/nftables.conf, /etc/iptables/rules.v4 and rules.v6 to the
// file to show there, and the others are absent. That /etc is an
// overlay on the host's in the command's own mount namespace (ip netns
// exec makes one, a slave of the host's), its changes in a tmpfs: the
// host's /etc is never written, whatever it holds.
func (h *host) doctor(t *testing.T, etc map[string]string, settings []string, args ...string) doctorReport {
	t.Helper()
	out, stderr, code := h.doctorRun(t, etc, append(append([]string{"doctor", "--json"}, settings...), args...)...)
	return parseDoctor(t, out, stderr, code)
}

// doctorRun runs drainctl with args in the server namespace, with the
// firewall files of etc in /etc (see doctor), bounded by cliTimeout.
func (h *host) doctorRun(t *testing.T, etc map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	d, err := os.MkdirTemp(h.dir, "etc-")
	if err != nil {
		t.Fatal(err)
	}
	script := []string{"set -e",
		"mount -t tmpfs tmpfs " + d, "mkdir " + d + "/upper " + d + "/work",
		"mount -t overlay overlay -o lowerdir=/etc,upperdir=" + d + "/upper,workdir=" + d + "/work /etc",
		"rm -rf /etc/nftables.conf /etc/iptables", "mkdir /etc/iptables"}
	for dst, src := range etc {
		if !slices.Contains([]string{"/etc/nftables.conf", "/etc/iptables/rules.v4", "/etc/iptables/rules.v6"}, dst) {
			t.Fatalf("doctor's /etc: %s is not one of its firewall files", dst)
		}
		abs, err := filepath.Abs(src)
		if err != nil {
			t.Fatal(err)
		}
		script = append(script, fmt.Sprintf("cp '%s' '%s'", abs, dst))
	}
	script = append(script, `exec "$@"`)
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.ns.Name, "sh", "-c", strings.Join(script, "\n"), "sh", binary}, args...)...)
	cmd.Env = testEnv
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	begin := time.Now()
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("drainctl %s: still running after %v", strings.Join(args, " "), cliTimeout)
	}
	t.Logf("drainctl %s: exit %d in %v", args[0], exitCodeOf(t, err), time.Since(begin).Round(10*time.Millisecond))
	return o.String(), e.String(), exitCodeOf(t, err)
}

// running are the findings of a host whose agent runs on backend, in
// service, with a web server that answers, no pool and no load balancer.
func running(backend string) []want {
	return []want{
		{id: "firewall.backend", severity: "ok", found: "the agent keeps the forward in " + backend + " ("},
		{id: "checks.none", severity: "warning", found: "no load balancer health-checks port 81"},
		{id: "web.configtest", severity: "ok", found: `the config test "true" passes`},
		{id: "web.ready", severity: "ok", found: "the readiness check GET http://127.0.0.1:80/ passes"},
		{id: "agent.running", severity: "ok", found: "the agent answers: in service, backend " + backend},
		{id: "agent.state-file", severity: "ok", found: "in-service"},
		{id: "pool.none", severity: "ok", found: "no pool"},
		systemdFinding(true),
	}
}

func firewallByName(t *testing.T, name string) firewall {
	t.Helper()
	i := slices.IndexFunc(firewalls, func(f firewall) bool { return f.name == name })
	if i < 0 {
		t.Fatalf("no firewall %q in firewalls", name)
	}
	return firewalls[i]
}

// doctorUnderFirewall is one host doctor is run on: a firewall of
// firewalls (load), and rules of other programs' (rules, commands run in
// the server namespace after it).
type doctorUnderFirewall struct {
	name     string
	firewall string   // of firewalls; "" for none
	rules    []string // sh scripts run in the server namespace after it
	backends []string
	etc      map[string]string // doctor's firewall files (see host.doctor)
	software []string          // the firewall software doctor must name
	// wants are the findings beyond running's, for a backend.
	wants func(backend string) []want
}

// noOtherIptablesNft is firewall.backend's count of other software's
// rules on a host where only drainctl's are iptables-nft's (native:
// the count of the nftables tables'): drainctl's own jumps in
// iptables-nft's chains are not other software's.
func noOtherIptablesNft(_, native string) want {
	return want{id: "firewall.backend", severity: "ok", found: "rules of other software: iptables-legacy 0, iptables-nft 0, " + native + ")"}
}

// dnatTo81 is a rule of another program's that takes the forward port:
// a DNAT of 81 elsewhere in PREROUTING.
const dnatTo81 = "-t nat -A PREROUTING -p tcp --dport 81 -j DNAT --to-destination 198.18.0.1:8081"

var doctorFirewalls = []doctorUnderFirewall{
	{name: "ufw", firewall: "ufw-enable-and-reload", backends: []string{"nftables", "iptables-nft"}, software: []string{"ufw"},
		wants: func(string) []want {
			return []want{{id: "firewall.software", severity: "ok", found: "ufw: its chains are loaded"}}
		}},
	{name: "firewalld", firewall: "firewalld-ruleset", backends: []string{"nftables", "iptables-nft"}, software: []string{"firewalld"},
		wants: func(backend string) []want {
			return []want{{id: "firewall.software", severity: "ok", found: "firewalld: its table is loaded"}, noOtherIptablesNft(backend, "native nftables 93")}
		}},
	{name: "nftables.service", firewall: "nftables.service-flush-ruleset", backends: []string{"nftables", "iptables-nft"},
		etc:      map[string]string{"/etc/nftables.conf": testdataFile("nftables-webserver.conf")},
		software: []string{"nftables.service"},
		wants: func(backend string) []want {
			return []want{{id: "firewall.software", severity: "ok",
				found: "nftables.service: /etc/nftables.conf flushes the whole ruleset (flush ruleset) at every start and reload of nftables.service; its reload removes drainctl's rules, and the running agent puts them back"},
				noOtherIptablesNft(backend, "native nftables 5")}
		}},
	{name: "netfilter-persistent", firewall: "netfilter-persistent-reload", backends: []string{"nftables", "iptables-nft", "iptables-legacy"},
		etc:      map[string]string{"/etc/iptables/rules.v4": testdataFile("rules.v4"), "/etc/iptables/rules.v6": testdataFile("rules.v6")},
		software: []string{"netfilter-persistent"},
		wants: func(backend string) []want {
			const found = "netfilter-persistent: /etc/iptables/rules.v4 is restored with iptables-restore at boot and reload"
			const removes = "its reload removes drainctl's rules, and the running agent puts them back"
			// Debian's iptables-restore is iptables-nft's: its reload
			// flushes the tables it names there, and leaves
			// iptables-legacy's (TestAgentUnderFirewalls: 0 repairs).
			if backend == "iptables-nft" {
				return []want{{id: "firewall.software", severity: "ok", found: found + " (iptables-restore is iptables-nft); " + removes}}
			}
			return []want{{id: "firewall.software", severity: "ok", found: found, not: "removes"}}
		}},
	{name: "docker", firewall: "docker-rules", backends: []string{"nftables", "iptables-nft"}, software: []string{"docker"},
		wants: func(string) []want {
			return []want{{id: "firewall.software", severity: "ok", found: "docker: its DOCKER chains are loaded"}}
		}},
	// Other programs' rules on the forward port, in each place doctor
	// reads: iptables-nft's (iptables-nft-save), iptables-legacy's
	// (iptables-legacy-save) and native nftables (a table of its own).
	{name: "docker-publishes-81", firewall: "docker-rules", backends: []string{"nftables", "iptables-nft"}, software: []string{"docker"},
		// docker run -p 81:80: the container takes the checks.
		rules: []string{"iptables-nft -t nat -A DOCKER ! -i docker0 -p tcp -m tcp --dport 81 -j DNAT --to-destination 172.17.0.2:80"},
		wants: func(string) []want {
			// Read from iptables-nft-save, whole: nft 1.0.6 cannot print
			// the xtables target of an iptables-nft rule once ip6 tables
			// of iptables-nft's exist ("XT target DNAT not found").
			return []want{
				{id: "firewall.software", severity: "ok", found: "docker: its DOCKER chains are loaded"},
				// A NAT of the forward port takes the checks: a failure.
				{id: "firewall.port-rule", severity: "fail",
					found: "another program's rule names port 81 (iptables-nft table nat): -A DOCKER ! -i docker0 -p tcp -m tcp --dport 81 -j DNAT --to-destination 172.17.0.2:80"},
			}
		}},
	{name: "iptables-legacy-dnat-81", backends: []string{"nftables", "iptables-nft"},
		rules: []string{"iptables-legacy " + dnatTo81},
		wants: func(string) []want {
			return []want{{id: "firewall.port-rule", severity: "fail",
				found: "another program's rule names port 81 (iptables-legacy table nat): -A PREROUTING -p tcp -m tcp --dport 81 -j DNAT --to-destination 198.18.0.1:8081"}}
		}},
	// A native table named like iptables-nft's: iptables-nft-save calls
	// it incompatible, so nft's text is read.
	{name: "native-ip-nat-redirects-81", backends: []string{"nftables"},
		rules: []string{`nft 'add table ip nat; add chain ip nat pre { type nat hook prerouting priority -100; }; add rule ip nat pre tcp dport 81 redirect to :8080'`},
		wants: func(string) []want {
			return []want{{id: "firewall.port-rule", severity: "fail",
				found: "another program's rule names port 81 (nftables table ip nat, chain pre): tcp dport 81 redirect to :8080"}}
		}},
	{name: "nft-table-names-81", backends: []string{"nftables", "iptables-legacy"},
		rules: []string{`nft 'add table inet other; add chain inet other input { type filter hook input priority 0; policy accept; }; add rule inet other input tcp dport { 81, 8081 } counter accept'`},
		wants: func(string) []want {
			return []want{{id: "firewall.port-rule", severity: "warning",
				found: "another program's rule names port 81 (nftables table inet other, chain input): tcp dport { 81, 8081 } counter packets 0 bytes 0 accept"}}
		}},
}

// Doctor on a host with the agent running under each firewall: the
// backend the agent uses, the firewall software by name, other
// programs' rules on the forward port, and nothing else to warn of but
// that no load balancer checks it.
func TestDoctorUnderFirewalls(t *testing.T) {
	for _, c := range doctorFirewalls {
		for _, backend := range c.backends {
			t.Run(c.name+"/"+backend, func(t *testing.T) {
				t.Parallel()
				nstest.RequireCmd(t, "nft", "iptables-legacy", "iptables-nft")
				var fw *firewall
				if c.firewall != "" {
					f := firewallByName(t, c.firewall)
					nstest.RequireCmd(t, f.cmds...)
					fw = &f
				}
				h := newHost(t)
				settings := h.settings("--backend", backend)
				h.agent(t, settings...)
				h.settle(t, "started", "served", false)
				if fw != nil {
					fw.load(t, h)
					// The agent puts back what the load removed.
					h.settle(t, "after "+fw.name, "served", false)
				}
				for _, r := range c.rules {
					h.ns.MustExec(t, "sh", "-c", r)
				}
				r := h.doctor(t, c.etc, settings, "--listen", "0")
				r.expect(t, hostFindings, append(running(backend), c.wants(backend)...)...)
				if got := r.software(); !slices.Equal(got, c.software) {
					t.Errorf("firewall software %q, want %q\n%s", got, c.software, r)
				}
			})
		}
	}
}

// No load balancer checks the forward port: checks.none, from doctor's
// own capture and the agent's view; with one (the client namespace
// playing HAProxy's TCP check of 81 every 200 ms), it is named, with its
// interval, and the warning goes.
func TestDoctorLoadBalancers(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	settings := h.settings()
	h.agent(t, settings...)
	r := h.doctor(t, nil, settings, "--listen", "1s")
	r.expect(t, hostFindings, running("nftables")...)
	r.expect(t, hostFindings, want{id: "checks.none", severity: "warning",
		found: "no load balancer health-checks port 81 (watched for 1s and by the agent since it started)"})

	h.balancer(t, 200*time.Millisecond)
	r = h.doctor(t, nil, settings, "--listen", "1500ms")
	wants := slices.DeleteFunc(running("nftables"), func(w want) bool { return w.id == "checks.none" })
	r.expect(t, hostFindings, append(wants, want{id: "checks.forward-port", severity: "ok", found: nstest.Cli4 + " checks port 81 every 0.2 s"})...)
	if r.has("checks.none") {
		t.Errorf("checks.none with a load balancer checking:\n%s", r)
	}
}

// A stopped agent (SIGTERM, as systemctl stop): agent.down, exit 16.
// doctor then says which backend the agent would use (the state file's)
// and that nftables.service's flush ruleset would now remove the forward
// for good.
func TestDoctorAgentDown(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	settings := h.settings()
	a := h.agent(t, settings...)
	h.settle(t, "started", "served", false)
	stop(t, a)
	r := h.doctor(t, map[string]string{"/etc/nftables.conf": testdataFile("nftables-webserver.conf")}, settings, "--listen", "1s")
	r.expect(t, hostFindings,
		want{id: "agent.down", severity: "fail", found: "no agent answers: the drainctl agent is not running (nothing answers on " + h.sock + ")"},
		want{id: "firewall.backend", severity: "ok", found: "backend nftables would be used: drainctl's state records its rules there"},
		want{id: "firewall.software-removes", severity: "warning", found: "nftables.service: /etc/nftables.conf flushes the whole ruleset"},
		want{id: "checks.none", severity: "warning", found: "no load balancer health-checks port 81 (watched for 1s)"},
		want{id: "web.ready", severity: "ok", found: "passes"},
		want{id: "agent.state-file", severity: "ok", found: "in-service"},
		systemdFinding(false),
	)
	if r.Worst != "fail" {
		t.Fatalf("worst %s, want fail", r.Worst)
	}
}

// A web server that is not running: the readiness check fails, and
// every restart would hold the server out.
func TestDoctorWebServerDown(t *testing.T) {
	t.Parallel()
	h := newBareHost(t)
	settings := h.settings("--ready-timeout", "1s")
	h.agent(t, settings...)
	r := h.doctor(t, nil, settings, "--listen", "0")
	wants := slices.DeleteFunc(running("nftables"), func(w want) bool { return w.id == "web.ready" })
	r.expect(t, hostFindings, append(wants, want{id: "web.not-ready", severity: "fail",
		found: "the readiness check GET http://127.0.0.1:80/ fails: "})...)
	if r.Worst != "fail" || r.has("web.ready") {
		t.Fatalf("want web.not-ready alone, and worst fail:\n%s", r)
	}
}

// Bad usage exits 2 with the reason, before anything is read.
func TestDoctorBadUsage(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--window", "Mon-Fri 25:00-26:00"}, "--window: "},
		{[]string{"--haproxy-config", "/nonexistent/haproxy.cfg"}, "--haproxy-config: open /nonexistent/haproxy.cfg: no such file or directory"},
		{[]string{"--listen", "-1s"}, "--listen must not be negative"},
		{[]string{"--backend", "pf"}, `backend "pf"`},
		{[]string{"now"}, `unexpected argument "now"`},
	} {
		args := append([]string{"doctor", "--json"}, h.settings(tc.args...)...)
		out, stderr, code := h.doctorRun(t, nil, args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) || out != "" {
			t.Errorf("doctor %s: exit %d, stdout %q, stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, out, stderr, exitUsage, tc.want)
		}
	}
	// The window's error says what is wrong with it.
	_, stderr, _ := h.doctorRun(t, nil, append([]string{"doctor"}, h.settings("--window", "Mon-Fri 25:00-26:00")...)...)
	t.Logf("--window \"Mon-Fri 25:00-26:00\": %s", strings.TrimSpace(stderr))
	if !strings.Contains(stderr, "25:00") {
		t.Errorf("--window's error does not name the bad time: %q", stderr)
	}
}
