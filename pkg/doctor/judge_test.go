package doctor

import (
	"errors"
	"io/fs"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/bootinfo"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/haproxy"
	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/runner"
	"github.com/drainctl/drainctl/pkg/settings"
	"github.com/drainctl/drainctl/pkg/state"
	"github.com/drainctl/drainctl/pkg/window"
)

var (
	now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	lb1 = netip.MustParseAddr("10.0.0.2")
)

// healthy is a host where everything is as it should be: the agent in
// service under its unit, one load balancer checking port 81 every
// 0.5 s and answered, Apache under systemd.
func healthy() Facts {
	s := settings.Defaults()
	s.Restart.Line = "systemctl reload apache2.service"
	s.RestartReason = "systemd runs apache2.service"
	fwd := apitype.ForwardStatus{Forward: apitype.Forward{From: 81, To: 80}, Rules: 2, Want: 2, Applied: true}
	check := lbview.LB{Addr: lb1, Port: 81, Checks: 12, Accepted: 12, Interval: 500 * time.Millisecond, Last: now, Active: true}
	unit := &Unit{Name: UnitName, LoadState: "loaded", ActiveState: "active", UnitFileState: "enabled",
		Families: "AF_UNIX AF_NETLINK AF_INET AF_INET6 AF_PACKET", Caps: "cap_chown cap_net_admin cap_net_raw cap_sys_admin", CapsKnown: true}
	web := &Unit{Name: "apache2.service", LoadState: "loaded", ActiveState: "active", Wants: []string{"drainctl-guard@apache2.service"}}
	return Facts{
		Now:      now,
		AsRoot:   true,
		Settings: s,
		Firewall: Firewall{Choice: forward.Choice{Backend: "nftables", Reason: "default"}},
		Agent: Agent{Socket: "/run/drainctl/drainctl.sock", Systemd: true, Unit: unit, StateFile: "/var/lib/drainctl/state.json",
			Status: &apitype.Status{State: apitype.State{Version: state.Version, Phase: apitype.PhaseInService}, Backend: "nftables", Forwards: []apitype.ForwardStatus{fwd},
				HealthChecks: &apitype.HealthChecks{Ports: []uint16{81}, LoadBalancers: []apitype.LB{apitype.LB(check)}}}},
		Checks: Checks{Listened: 6 * time.Second, Seen: []lbview.LB{check}, Agent: []lbview.LB{check}, AgentWatching: true},
		Web: Web{Preset: runner.Presets["apache"], ConfigTest: s.ConfigTest, Restart: s.Restart.Line, RestartReason: s.RestartReason,
			ReadyURL: s.Ready.URL, Unit: web},
		Reboot: Reboot{Need: bootinfo.Need{Checked: []string{"/var/run/reboot-required"}}},
		// The package's drop-in in force, its guard running; no
		// needrestart, no unattended-upgrades.
		Restarts: Restarts{Guarded: []Guarded{{Unit: web, Web: true,
			Guard: &Unit{Name: "drainctl-guard@apache2.service", LoadState: "loaded", ActiveState: "active"}}}},
	}
}

// ids lists the findings' IDs of a severity.
func ids(fs []Finding, sev Severity) []string {
	var out []string
	for _, f := range fs {
		if f.Severity == sev {
			out = append(out, f.ID)
		}
	}
	return out
}

func find(fs []Finding, id string) *Finding {
	for i := range fs {
		if fs[i].ID == id {
			return &fs[i]
		}
	}
	return nil
}

func TestHealthyHostIsAllOK(t *testing.T) {
	fs := Judge(healthy())
	if w := Worst(fs); w != OK {
		t.Fatalf("worst %s; warnings %v, failures %v", w, ids(fs, Warning), ids(fs, Fail))
	}
	for _, id := range []string{"firewall.backend", "checks.forward-port", "web.commands", "web.configtest", "web.ready", "web.unit", "agent.running", "agent.unit", "agent.state-file", "pool.none", "reboot.not-required",
		"restarts.guard", "restarts.needrestart", "restarts.unattended"} {
		if find(fs, id) == nil {
			t.Errorf("no %s finding in %v", id, ids(fs, OK))
		}
	}
	if f := find(fs, "checks.forward-port"); f != nil && !strings.Contains(f.Found, "10.0.0.2 checks port 81 every 0.5 s") {
		t.Errorf("checks.forward-port: %q", f.Found)
	}
}

// TestEachRule changes one fact of a healthy host and expects one
// finding, of one severity, with what goes wrong and the fix.
func TestEachRule(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(f *Facts)
		id     string
		sev    Severity
		says   string // in Found
	}{
		{"netfilter unreadable", func(f *Facts) { f.Firewall.ProbeErr = errors.New("operation not permitted") }, "firewall.unreadable", Fail, "operation not permitted"},
		{"rules in two backends", func(f *Facts) { f.Firewall.Rules.Drainctl = []string{"nftables", "iptables-legacy"} }, "firewall.rules-twice", Warning, "nftables, iptables-legacy"},
		{"flush ruleset, no agent", func(f *Facts) {
			f.Agent.Status, f.Agent.Err = nil, api.ErrUnreachable
			f.Firewall.Software = []Software{{Name: "nftables.service", Detail: "flushes", Removes: true}}
		}, "firewall.software-removes", Warning, "nftables.service"},
		{"another rule on port 81", func(f *Facts) {
			f.Firewall.PortRules = []PortRule{{Where: "iptables-legacy table nat", Rule: "-A DOCKER -p tcp --dport 81 -j DNAT", Port: 81, Table: "nat", Chain: "DOCKER", NATs: true}}
		}, "firewall.port-rule", Fail, "-A DOCKER"},
		{"another rule accepting port 81", func(f *Facts) {
			f.Firewall.PortRules = []PortRule{{Where: "nftables table inet filter, chain input", Rule: "tcp dport 81 accept", Port: 81, Table: "filter", Chain: "input"}}
		}, "firewall.port-rule", Warning, "tcp dport 81 accept"},
		{"not root", func(f *Facts) { f.AsRoot, f.Firewall.ProbeErr = false, errors.New("operation not permitted") }, "firewall.unseen", Warning, "as this user"},
		{"checks on the service port", func(f *Facts) {
			c := f.Checks.Seen[0]
			c.Port = 80
			f.Checks.Seen, f.Checks.Agent = []lbview.LB{c}, nil
			f.Agent.Status.HealthChecks.LoadBalancers = nil
		}, "checks.service-port", Fail, "10.0.0.2 connects to port 80 every 0.5 s"},
		{"a few connections to the service port", func(f *Facts) {
			c := f.Checks.Seen[0]
			c.Port, c.Checks, c.Interval = 80, 2, 0
			f.Checks.Seen, f.Checks.Agent = []lbview.LB{c}, nil
		}, "checks.service-port", Warning, "10.0.0.2 connects to port 80 (2 connections"},
		{"capture failed, the agent watches", func(f *Facts) { f.Checks.CaptureErr = errors.New("packet socket: permission denied") }, "checks.capture-failed", Warning, "permission denied"},
		{"agent cannot watch, min-wait short", func(f *Facts) {
			f.Checks.AgentWatching, f.Checks.Agent = false, nil
			f.Checks.Seen[0].Interval = 2 * time.Second
		}, "checks.min-wait-short", Fail, "every 2 s"},
		{"no load balancer", func(f *Facts) { f.Checks.Seen, f.Checks.Agent = nil, nil }, "checks.none", Warning, "no load balancer health-checks port 81"},
		{"checks unanswered", func(f *Facts) { f.Checks.Seen[0].Accepted = 0 }, "checks.unanswered", Fail, "answered none of 10.0.0.2's 12 checks"},
		{"checks refused in service", func(f *Facts) { f.Checks.Seen[0].Accepted, f.Checks.Seen[0].Refused = 0, 12 }, "checks.refused", Fail, "refused all 12"},
		{"watch off, min-wait short", func(f *Facts) {
			f.Settings.Checks.Watch, f.Checks.AgentWatching = false, false
			f.Checks.Seen[0].Interval = 2 * time.Second
			f.Settings.Checks.Fall = 3
		}, "checks.min-wait-short", Fail, "waits only min-wait 2 s"},
		{"slow checks", func(f *Facts) { f.Checks.Seen[0].Interval = 30 * time.Second }, "checks.slow", Warning, "every 30 s"},
		{"agent not watching", func(f *Facts) { f.Checks.AgentWatching, f.Checks.Agent = false, nil }, "checks.agent-not-watching", Warning, "does not watch"},
		{"cannot capture", func(f *Facts) {
			f.Checks.AgentWatching, f.Checks.CaptureErr = false, errors.New("packet socket (needs CAP_NET_RAW)")
		}, "checks.unseen", Warning, "CAP_NET_RAW"},
		{"interval differs from haproxy.cfg", func(f *Facts) {
			f.HAProxy = &HAProxy{File: "haproxy.cfg", Mine: []haproxy.Entry{{Name: "web1", Line: 20, CheckPort: 81, Inter: 2 * time.Second}}}
		}, "checks.interval-differs", Warning, "haproxy.cfg:20: web1's entry says inter 2 s"},
		{"config test fails", func(f *Facts) {
			f.Web.ConfigTestErr = errors.New(`"apache2ctl -t" failed (exit status 1): Syntax error on line 3`)
		}, "web.configtest-fails", Fail, "Syntax error on line 3"},
		{"restart program missing", func(f *Facts) { f.Web.Missing = map[string]string{"restart": "nginx"} }, "web.command-missing", Fail, `"nginx" is not installed`},
		{"not ready", func(f *Facts) { f.Web.ReadyErr = errors.New("connection refused") }, "web.not-ready", Fail, "connection refused"},
		{"slow to answer", func(f *Facts) {
			f.Web.ReadyTimeout, f.Web.ReadyErr = 3*time.Second, errors.New("context deadline exceeded")
		}, "web.slow", Warning, "no answer within doctor's 3s"},
		{"reload through systemctl, unit inactive", func(f *Facts) { f.Web.Unit.ActiveState = "inactive" }, "web.unit-inactive", Fail, "apache2.service is inactive"},
		{"reload through systemctl, no unit", func(f *Facts) { f.Web.Unit.LoadState = "not-found" }, "web.unit-missing", Fail, "does not know apache2.service"},
		{"inactive unit, own reload", func(f *Facts) { f.Web.Unit.ActiveState, f.Web.Restart = "inactive", "apache2ctl -k graceful" }, "web.unit", OK, "runs outside it"},
		{"no answer, no error", func(f *Facts) { f.Agent.Status = nil }, "agent.down", Fail, "no answer"},
		{"reload around systemd", func(f *Facts) { f.Web.Restart = "apache2ctl -k graceful" }, "web.bypasses-systemd", Warning, "goes around it"},
		{"agent down", func(f *Facts) { f.Agent.Status, f.Agent.Err = nil, api.ErrUnreachable }, "agent.down", Fail, "not running"},
		{"socket refuses", func(f *Facts) { f.Agent.Status, f.Agent.Err = nil, api.ErrPermission }, "agent.permission", Warning, "refused this user"},
		{"role refuses", func(f *Facts) {
			f.Agent.Status, f.Agent.Err = nil, &apitype.Error{Code: apitype.CodeForbidden, Msg: "GET /v1/status needs the read role"}
		}, "agent.permission", Warning, "refused this user"},
		{"held", func(f *Facts) {
			f.Agent.Status.State.Phase = apitype.PhaseHeld
			f.Agent.Status.State.Holder = &apitype.Holder{Who: "uid 0", Reason: "kernel", Since: now}
		}, "agent.held", Warning, "held by uid 0"},
		{"forward absent in service", func(f *Facts) { f.Agent.Status.Forwards[0].Rules = 0 }, "agent.forward-not-in-service", Fail, "is absent"},
		{"forward problem", func(f *Facts) { f.Agent.Status.Forwards[0].Problems = []string{"the jump is missing"} }, "agent.forward-problem", Fail, "the jump is missing"},
		{"state file damaged", func(f *Facts) { f.Agent.StateErr = errors.New("unexpected end of JSON input") }, "agent.state-unreadable", Fail, "unexpected end"},
		{"no unit", func(f *Facts) { f.Agent.Unit.LoadState = "not-found" }, "agent.no-unit", Warning, "not as drainctl.service"},
		{"unit disabled", func(f *Facts) { f.Agent.Unit.UnitFileState = "disabled" }, "agent.unit-disabled", Warning, "disabled"},
		{"sandbox without AF_PACKET", func(f *Facts) { f.Agent.Unit.Families = "AF_UNIX AF_NETLINK AF_INET AF_INET6" }, "agent.sandbox-packet", Warning, "forbids AF_PACKET"},
		{"sandbox denies AF_NETLINK", func(f *Facts) { f.Agent.Unit.Families = "~AF_NETLINK" }, "agent.sandbox-family", Fail, "forbids AF_NETLINK"},
		{"no cap_net_admin", func(f *Facts) { f.Agent.Unit.Caps = "cap_net_raw" }, "agent.sandbox-cap", Fail, "lacks cap_net_admin"},
		{"no capabilities at all", func(f *Facts) { f.Agent.Unit.Caps = "" }, "agent.sandbox-cap", Fail, `CapabilityBoundingSet ""`},
		{"another user without ambient capabilities", func(f *Facts) { f.Agent.Unit.User = "drainctl" }, "agent.sandbox-cap", Fail, `User "drainctl"`},
		{"state file unreadable to this user", func(f *Facts) { f.AsRoot, f.Agent.StateErr = false, fs.ErrPermission }, "agent.state-unseen", Warning, "as this user"},
		{"agent runs other forwards", func(f *Facts) { f.Agent.Status.Forwards[0].Forward.From = 8081 }, "agent.other-settings", Warning, "8081→80"},
		{"no cap_net_raw", func(f *Facts) { f.Agent.Unit.Caps = "cap_net_admin" }, "agent.sandbox-cap-raw", Warning, "lacks cap_net_raw"},
		{"etcd down", func(f *Facts) {
			f.Settings.Pool.Etcd = []string{"http://10.0.0.9:2379"}
			f.Pool = Pool{Configured: true, Err: errors.New("context deadline exceeded")}
		}, "pool.unavailable", Fail, "http://10.0.0.9:2379"},
		{"pool full and paused", func(f *Facts) {
			f.Pool = Pool{Configured: true, Status: &apitype.PoolStatus{ID: "web1", MaxUnavailable: "1", Allowed: 1,
				Name: "app", Members: []apitype.PoolMember{{ID: "web1", Live: true}, {ID: "web2", Live: true}},
				Holders: []apitype.Claim{{ID: "web2", Op: "reboot", Since: now}}, Paused: &apitype.Pause{By: "ops", Reason: "incident"}}}
		}, "pool.full", Warning, "1/1 unavailable: web2: holds a slot (reboot) since"},
		{"pool's budget used by a gone host, no slot held", func(f *Facts) {
			f.Pool = Pool{Configured: true, Status: &apitype.PoolStatus{ID: "web1", MaxUnavailable: "1", Allowed: 1,
				Name: "app", Members: []apitype.PoolMember{{ID: "web1", Live: true}, {ID: "web3", LastSeen: now}},
				Unavailable: []apitype.Unavailable{{ID: "web3", Why: "agent gone", Since: now}}}}
		}, "pool.full", Warning, "1/1 unavailable: web3: agent gone since"},
		{"the pool's status names who is out", func(f *Facts) {
			f.Pool = Pool{Configured: true, Status: &apitype.PoolStatus{ID: "web1", MaxUnavailable: "2", Allowed: 2,
				Name: "app", Members: []apitype.PoolMember{{ID: "web1", Live: true}, {ID: "web2", Live: true}, {ID: "web3", Live: true}},
				Unavailable: []apitype.Unavailable{{ID: "web3", Why: "web server not answering", Since: now}}}}
		}, "pool.status", OK, "allows 2 out; 1 unavailable now (web3: web server not answering since"},
		{"not a member", func(f *Facts) {
			f.Pool = Pool{Configured: true, Status: &apitype.PoolStatus{ID: "web9", MaxUnavailable: "1", Allowed: 1,
				Name: "app", Members: []apitype.PoolMember{{ID: "web1", Live: true}}}}
		}, "pool.not-member", Warning, "web9"},
		{"host's limit differs from the pool's", func(f *Facts) {
			f.Pool = Pool{Configured: true, Status: &apitype.PoolStatus{ID: "web1", MaxUnavailable: "1", ConfiguredMaxUnavailable: "3", Allowed: 1,
				Name: "app", Members: []apitype.PoolMember{{ID: "web1", Live: true}}}}
		}, "pool.limit-differs", Warning, "this host's file says max_unavailable 3, the pool's is 1: the pool's decides"},
		{"pool settings of an unknown layout", func(f *Facts) {
			f.Pool = Pool{Configured: true, Status: &apitype.PoolStatus{ID: "web1", ConfiguredMaxUnavailable: "3",
				SettingsError: "pool settings of layout version 2, this drainctl knows 1 only",
				Name:          "app", Members: []apitype.PoolMember{{ID: "web1", Live: true}}}}
		}, "pool.settings", Fail, "cannot be used: pool settings of layout version 2"},
		{"etcd out of space", func(f *Facts) {
			f.Pool = poolWithStorage(pool.Storage{Endpoint: "http://10.0.0.9:2379", DBSize: 2 << 30, Revision: 9_000_000, Alarms: []string{"NOSPACE"}})
		}, "pool.etcd-storage", Fail, "alarm NOSPACE raised"},
		{"etcd near its quota", func(f *Facts) {
			f.Pool = poolWithStorage(pool.Storage{Endpoint: "http://10.0.0.9:2379", DBSize: 1800 << 20, Revision: 900, Compacted: true})
		}, "pool.etcd-storage", Warning, "database 1887.4 MB"},
		{"etcd never compacted", func(f *Facts) {
			f.Pool = poolWithStorage(pool.Storage{Endpoint: "http://10.0.0.9:2379", DBSize: 30 << 20, Revision: 250_000})
		}, "pool.etcd-storage", Warning, "nothing ever compacted"},
		{"etcd's storage unreadable", func(f *Facts) {
			f.Pool = poolWithStorage(pool.Storage{})
			f.Pool.Storage, f.Pool.StorageErr = nil, errors.New("permission denied")
		}, "pool.etcd-storage", Warning, "permission denied"},
		{"reboot required", func(f *Facts) {
			f.Reboot.Need = bootinfo.Need{Required: true, Reasons: []string{"linux-image-6.1.0-28-amd64"}}
		}, "reboot.required", Warning, "linux-image"},
		{"haproxy.cfg finding", func(f *Facts) {
			f.HAProxy = &HAProxy{File: "lb.cfg", Findings: []haproxy.Finding{{Backend: "app", Server: "web1", Line: 12, Problem: "checks port 80", Fix: "check port 81"}}}
		}, "haproxy.finding", Fail, "lb.cfg:12: backend app, server web1"},
		{"haproxy.cfg without this host", func(f *Facts) {
			f.HAProxy = &HAProxy{File: "lb.cfg", NotMine: true, Findings: []haproxy.Finding{{Backend: "app", Server: "web1", Line: 12, Problem: "p", Fix: "f"}}}
		}, "haproxy.not-mine", Warning, "no server entry with this host's"},
		{"haproxy.cfg: other apps' findings", func(f *Facts) {
			f.HAProxy = &HAProxy{File: "lb.cfg", Others: 3, Mine: []haproxy.Entry{{Backend: "app", Name: "web1"}}}
		}, "haproxy.ok", OK, "3 finding(s) in backends without this host left out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := healthy()
			tc.change(&f)
			fs := Judge(f)
			got := find(fs, tc.id)
			if got == nil {
				t.Fatalf("no %s finding; got ok %v, warnings %v, failures %v", tc.id, ids(fs, OK), ids(fs, Warning), ids(fs, Fail))
			}
			if got.Severity != tc.sev {
				t.Errorf("%s is %s, want %s", tc.id, got.Severity, tc.sev)
			}
			if !strings.Contains(got.Found, tc.says) {
				t.Errorf("%s says %q, want it to say %q", tc.id, got.Found, tc.says)
			}
			if got.Severity != OK && (got.Impact == "" || got.Fix == "") {
				t.Errorf("%s: a %s needs what goes wrong and the fix: %+v", tc.id, got.Severity, got)
			}
			if Worst(fs) < tc.sev {
				t.Errorf("worst %s below the finding's %s", Worst(fs), tc.sev)
			}
		})
	}
}

func TestWindowOpenAndClosed(t *testing.T) {
	w, err := window.Parse("Mon-Fri 02:00-05:00 UTC")
	if err != nil {
		t.Fatal(err)
	}
	f := healthy()
	f.Reboot.Window = w
	f.Now = time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC) // a Tuesday
	if got := find(Judge(f), "reboot.window"); got == nil || !strings.Contains(got.Found, "open now, until 2026-12-01 05:00:00") {
		t.Errorf("open window: %+v", got)
	}
	f.Now = time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC) // a Saturday
	if got := find(Judge(f), "reboot.window"); got == nil || !strings.Contains(got.Found, "closed now; it opens 2026-12-07 02:00:00") {
		t.Errorf("closed window: %+v", got)
	}
}

// A held server's refused checks are what the withdraw is for.
func TestHeldServerRefusedChecksAreExpected(t *testing.T) {
	f := healthy()
	f.Agent.Status.State.Phase = apitype.PhaseHeld
	f.Agent.Status.State.Holder = &apitype.Holder{Who: "uid 0", Since: now}
	f.Agent.Status.Forwards[0].Withdrawn = true
	f.Checks.Seen[0].Accepted, f.Checks.Seen[0].Refused = 0, 12
	fs := Judge(f)
	if find(fs, "checks.refused") != nil || find(fs, "agent.forward-not-in-service") != nil {
		t.Errorf("held server judged broken: %v", ids(fs, Fail))
	}
}

// Traffic of a load balancer that also checks the forward port (its
// backup entries) is no check of the service port.
func TestServicePortTrafficOfACheckerIsFine(t *testing.T) {
	f := healthy()
	c := f.Checks.Seen[0]
	c.Port = 80
	f.Checks.Seen = append(f.Checks.Seen, c)
	if got := find(Judge(f), "checks.service-port"); got != nil {
		t.Errorf("%+v", got)
	}
}

func TestSeverityJSON(t *testing.T) {
	for _, s := range []Severity{OK, Warning, Fail} {
		b, _ := s.MarshalText()
		var back Severity
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Errorf("%s: %q back %s %v", s, b, back, err)
		}
	}
	var s Severity
	if err := s.UnmarshalText([]byte("bad")); err == nil {
		t.Error("bad severity accepted")
	}
}

// poolWithStorage is a healthy pool of two whose etcd reports st.
func poolWithStorage(st pool.Storage) Pool {
	return Pool{Configured: true, Storage: &st, Status: &apitype.PoolStatus{ID: "web1", MaxUnavailable: "1", ConfiguredMaxUnavailable: "1", Allowed: 1,
		Name: "app", Members: []apitype.PoolMember{{ID: "web1", Live: true}, {ID: "web2", Live: true}}}}
}

// A healthy etcd: an OK finding that says its size and revision.
func TestEtcdStorageOK(t *testing.T) {
	f := healthy()
	f.Pool = poolWithStorage(pool.Storage{Endpoint: "http://10.0.0.9:2379", DBSize: 25 << 20, DBSizeInUse: 1 << 20, Revision: 5000})
	got := find(Judge(f), "pool.etcd-storage")
	if got == nil || got.Severity != OK || !strings.Contains(got.Found, "database 26.2 MB (1.0 MB in use) of the default 2147.5 MB quota, revision 5000, not compacted yet") {
		t.Fatalf("pool.etcd-storage: %+v", got)
	}
}

// The pool is not full for a host whose own trouble uses the budget: it
// takes its slot at once, and its trouble is its own findings' to say;
// a slot it holds, or another member out, does fill it.
func TestPoolFullIsTheOthers(t *testing.T) {
	now := time.Now()
	f := healthy()
	f.Pool = Pool{Configured: true, Status: &apitype.PoolStatus{ID: "web1", MaxUnavailable: "1", Allowed: 1,
		Name: "app", Members: []apitype.PoolMember{{ID: "web1", Live: true}, {ID: "web2", Live: true}},
		Unavailable: []apitype.Unavailable{{ID: "web1", Why: "web server not answering", Since: now}}}}
	if got := find(Judge(f), "pool.full"); got != nil {
		t.Errorf("pool.full for this host's own trouble: %+v", got)
	}
	f.Pool.Status.Unavailable[0].Slot = true
	if got := find(Judge(f), "pool.full"); got == nil {
		t.Error("no pool.full while this host holds the pool's one slot")
	}
}
