package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/settings"
)

func judgeWeb(f Facts) []Finding {
	w := f.Web
	s := f.Settings
	var out []Finding
	name := s.WebServer
	out = append(out, ok(AreaWeb, "web.commands", fmt.Sprintf("web server %s: config test %q, restart %q (%s)", name, w.ConfigTest.Line, w.Restart, w.RestartReason)))
	for _, key := range slices.Sorted(maps.Keys(w.Missing)) {
		impact := map[string]string{
			"configtest": "drainctl restart will refuse every restart (exit 6; the server is put back)",
			"restart":    "drainctl restart will fail after the drain (exit 9) and leave the server held out",
			"reboot":     "maintenance reboot will fail (exit 14) and leave the server held out",
		}[key]
		setting := map[string]string{"configtest": settings.KeyConfigTestCmd, "restart": settings.KeyRestartCmd, "reboot": settings.KeyRebootCmd}[key]
		out = append(out, fail(AreaWeb, "web.command-missing", fmt.Sprintf("the %s command's program %q is not installed", key, w.Missing[key]),
			impact, fmt.Sprintf("install it, or set %s in the config", setting)))
	}
	switch {
	case w.ConfigTestErr != nil:
		out = append(out, fail(AreaWeb, "web.configtest-fails", "the config test fails: "+w.ConfigTestErr.Error(),
			"drainctl restart will refuse (exit 6, nothing restarted); a reboot or a plain restart of the web server would not bring it back",
			fmt.Sprintf("fix the configuration; run %s to see the error", w.ConfigTest.Line)))
	case w.Missing["configtest"] == "":
		out = append(out, ok(AreaWeb, "web.configtest", fmt.Sprintf("the config test %q passes", w.ConfigTest.Line)))
	}
	switch e := w.ReadyErr; {
	case e != nil && w.ReadyTimeout < s.Ready.Timeout && !answered(e):
		// No answer within doctor's few seconds: the agent waits longer.
		out = append(out, warn(AreaWeb, "web.slow", fmt.Sprintf("the readiness check GET %s got no answer within doctor's %s: %v", w.ReadyURL, w.ReadyTimeout, e),
			fmt.Sprintf("if the web server does not answer within %s (%s) either, every restart and maintenance exit will hold the server out (exit 7)", s.Ready.Timeout, settings.KeyReadyTimeout),
			"check that the web server answers "+w.ReadyURL))
	case e != nil:
		out = append(out, fail(AreaWeb, "web.not-ready", fmt.Sprintf("the readiness check GET %s fails: %v", w.ReadyURL, e),
			"every restart and maintenance exit will hold the server out (exit 7), and after a reboot it stays out",
			fmt.Sprintf("start the web server, or set %s, %s and %s to what this server answers", settings.KeyReadyURL, settings.KeyReadyHost, settings.KeyReadyStatus)))
	default:
		out = append(out, ok(AreaWeb, "web.ready", fmt.Sprintf("the readiness check GET %s passes", w.ReadyURL)))
	}
	out = append(out, judgeWebUnit(f)...)
	return out
}

// judgeWebUnit checks that the restart goes through systemd exactly when
// systemd runs the web server.
func judgeWebUnit(f Facts) []Finding {
	w := f.Web
	u := w.Unit
	if u == nil || w.Preset.Name == "" {
		return nil
	}
	viaSystemctl := strings.HasPrefix(strings.TrimSpace(w.Restart), "systemctl ")
	switch {
	case u.LoadState != "loaded":
		if viaSystemctl {
			return []Finding{fail(AreaWeb, "web.unit-missing", fmt.Sprintf("the restart runs systemctl, but systemd does not know %s", u.Name),
				"drainctl restart will fail after the drain (exit 9) and leave the server held out",
				fmt.Sprintf("%s: auto chooses %s's own reload here", settings.KeyRestartCmd, w.Preset.Name))}
		}
		return []Finding{ok(AreaWeb, "web.unit", fmt.Sprintf("systemd does not run %s: its own reload is used", w.Preset.Name))}
	case u.ActiveState != "active" && viaSystemctl:
		return []Finding{fail(AreaWeb, "web.unit-inactive", fmt.Sprintf("%s is %s", u.Name, u.ActiveState),
			"systemctl reload of an inactive unit fails: drainctl restart will exit 9 and hold the server out",
			fmt.Sprintf("start the web server under systemd: systemctl enable --now %s", u.Name))}
	case !viaSystemctl && u.ActiveState != "active":
		return []Finding{ok(AreaWeb, "web.unit", fmt.Sprintf("systemd knows %s but it is %s: the web server runs outside it, and its own reload is used", u.Name, u.ActiveState))}
	case !viaSystemctl:
		return []Finding{warn(AreaWeb, "web.bypasses-systemd", fmt.Sprintf("systemd runs %s, but the restart %q goes around it", u.Name, w.Restart),
			"the reloaded web server's processes can end up outside its unit: systemctl stop or restart of the unit then misses them",
			fmt.Sprintf("%s: auto (systemctl reload %s)", settings.KeyRestartCmd, u.Name))}
	}
	return []Finding{ok(AreaWeb, "web.unit", fmt.Sprintf("systemd runs %s (%s), and the restart goes through it", u.Name, u.ActiveState))}
}

func judgeAgent(f Facts) []Finding {
	a := f.Agent
	var out []Finding
	switch {
	case errors.Is(a.Err, api.ErrPermission) || api.IsForbidden(a.Err): // the socket's refusal, or the role's
		out = append(out, warn(AreaAgent, "agent.permission", "the agent's socket "+a.Socket+" refused this user",
			"doctor cannot read the agent's state, the load balancers it sees, or the pool", "run drainctl doctor as root"))
	case a.Err != nil || a.Status == nil:
		if a.Err == nil {
			a.Err = errors.New("no answer")
		}
		out = append(out, fail(AreaAgent, "agent.down", "no agent answers: "+a.Err.Error(),
			"nothing keeps the forward: a firewall reload removes it for good, and drainctl's commands exit 4",
			"start it: systemctl enable --now drainctl.service (or drainctl agent)"))
	default:
		out = append(out, judgeAgentState(f)...)
	}
	out = append(out, judgeUnit(f)...)
	switch {
	case a.StateErr != nil && errors.Is(a.StateErr, fs.ErrPermission) && !f.AsRoot:
		out = append(out, warn(AreaAgent, "agent.state-unseen", "doctor cannot read the state file as this user: "+a.StateErr.Error(),
			"the state file is not judged", "run drainctl doctor as root"))
	case a.StateErr != nil:
		out = append(out, fail(AreaAgent, "agent.state-unreadable", fmt.Sprintf("the state file %s cannot be read: %v", a.StateFile, a.StateErr),
			"the agent will not start on it: it cannot know whether the server was held",
			"look at the file; if it is damaged, move it aside, start the agent, and check drainctl status"))
	case a.State == nil:
		out = append(out, ok(AreaAgent, "agent.state-file", "no state file yet at "+a.StateFile+" (a new host: the agent starts in service)"))
	default:
		out = append(out, ok(AreaAgent, "agent.state-file", fmt.Sprintf("the state file %s: %s", a.StateFile, a.State.Phase)))
	}
	return out
}

func judgeAgentState(f Facts) []Finding {
	st := f.Agent.Status
	s := st.State
	var out []Finding
	switch {
	case s.Phase == apitype.PhaseInService:
		out = append(out, ok(AreaAgent, "agent.running", fmt.Sprintf("the agent answers: in service, backend %s", st.Backend)))
	case s.Holder != nil:
		out = append(out, warn(AreaAgent, "agent.held", fmt.Sprintf("the server is %s, held by %s since %s: %s", s.Phase, s.Holder.Who, s.Holder.Since.Format(time.DateTime), s.Holder.Reason),
			"it takes no new users until the hold ends", "drainctl maintenance exit, once the work is done"))
	default:
		out = append(out, warn(AreaAgent, "agent.busy", fmt.Sprintf("the server is %s (%s in progress)", s.Phase, s.Op),
			"an operation runs: doctor's view of the load balancers reflects it", "run doctor again once drainctl status says in service"))
	}
	if s.LastError != "" {
		out = append(out, warn(AreaAgent, "agent.last-error", "the last operation failed: "+s.LastError,
			"the server is where that failure left it", "see drainctl status and drainctl history"))
	}
	running := make([]forward.Forward, len(st.Forwards))
	for i, fw := range st.Forwards {
		running[i] = forward.Forward(fw.Forward)
	}
	if got, want := forwardsText(running), forwardsText(f.Settings.Forwards); got != want {
		out = append(out, warn(AreaAgent, "agent.other-settings", fmt.Sprintf("the agent runs the forwards %s, doctor's settings say %s", got, want),
			"doctor judged other ports than the agent's: its load balancer findings may be wrong", "run drainctl doctor with the agent's --config and flags"))
	}
	for _, fw := range st.Forwards {
		for _, p := range fw.Problems {
			out = append(out, fail(AreaAgent, "agent.forward-problem", fmt.Sprintf("forward %d→%d: %s", fw.Forward.From, fw.Forward.To, p),
				"the kernel may do other than drainctl's rules say: a withdraw may not take the server out", "see drainctl forward status"))
		}
		if s.Phase == apitype.PhaseInService && !st.Running && api.ForwardState(fw) != "in-service" && len(fw.Problems) == 0 {
			out = append(out, fail(AreaAgent, "agent.forward-not-in-service", fmt.Sprintf("forward %d→%d is %s although the server is in service", fw.Forward.From, fw.Forward.To, api.ForwardState(fw)),
				"the load balancers take the server out: it gets no new users", "restart the agent; if it persists, see its log (journalctl -u drainctl)"))
		}
	}
	return out
}

// needFamilies are the socket families the agent uses: the control
// socket, netfilter and sock_diag, the readiness check and etcd. The
// packet socket (AF_PACKET) is judged apart: only the view needs it.
var needFamilies = []string{"AF_UNIX", "AF_NETLINK", "AF_INET", "AF_INET6"}

// allows says whether RestrictAddressFamilies lets family through.
func allows(families, family string) bool {
	fs := strings.Fields(families)
	if len(fs) == 0 {
		return true
	}
	if deny, isDeny := strings.CutPrefix(families, "~"); isDeny {
		return !slices.Contains(strings.Fields(deny), family)
	}
	return slices.Contains(fs, family)
}

// hasCap says whether a capability list has c.
func hasCap(caps, c string) bool {
	return slices.Contains(strings.Fields(caps), c)
}

// unitHas says whether the unit's agent has capability c: within the
// bounding set (an empty one, printed, is none at all), and as another
// user than root only if ambient.
func unitHas(u *Unit, c string) bool {
	if u.CapsKnown && !hasCap(u.Caps, c) {
		return false
	}
	if u.User != "" && u.User != "root" && u.User != "0" {
		return hasCap(u.Ambient, c)
	}
	return true
}

func judgeUnit(f Facts) []Finding {
	a := f.Agent
	u := a.Unit
	if !a.Systemd {
		return []Finding{ok(AreaAgent, "agent.no-systemd", "systemd does not run this host: start the agent by other means at boot, before any maintenance")}
	}
	if u == nil || u.LoadState != "loaded" {
		if f.agentUp() {
			return []Finding{warn(AreaAgent, "agent.no-unit", "the agent runs, but not as drainctl.service",
				"nothing restarts it after a crash or starts it at boot: a reboot leaves the forward to nobody", "install the package's drainctl.service and run the agent under it")}
		}
		return []Finding{fail(AreaAgent, "agent.no-unit", "systemd has no drainctl.service",
			"no agent starts at boot", "install the package (it brings drainctl.service), then systemctl enable --now drainctl.service")}
	}
	var out []Finding
	dropins := ""
	if len(u.DropIns) > 0 {
		dropins = " (drop-ins: " + strings.Join(u.DropIns, ", ") + ")"
	}
	if u.UnitFileState != "enabled" {
		out = append(out, warn(AreaAgent, "agent.unit-disabled", fmt.Sprintf("%s is %s", u.Name, u.UnitFileState),
			"after a reboot no agent runs: the forward is not put back and the server stays out", "systemctl enable "+u.Name))
	}
	for _, fam := range needFamilies {
		if !allows(u.Families, fam) {
			out = append(out, fail(AreaAgent, "agent.sandbox-family", fmt.Sprintf("%s's RestrictAddressFamilies (%s) forbids %s%s", u.Name, u.Families, fam, dropins),
				"the agent cannot open its control socket, netfilter or the readiness check: it fails to start or to act",
				"remove the restriction from the drop-in: the package's unit allows AF_UNIX AF_NETLINK AF_INET AF_INET6 AF_PACKET"))
		}
	}
	if f.Settings.Checks.Watch && !allows(u.Families, "AF_PACKET") {
		out = append(out, warn(AreaAgent, "agent.sandbox-packet", fmt.Sprintf("%s's RestrictAddressFamilies (%s) forbids AF_PACKET%s", u.Name, u.Families, dropins),
			"the agent cannot watch the load balancers' checks: withdraws wait min-wait and confirm nothing",
			"allow AF_PACKET in the unit, or set health_checks.watch: false to say so"))
	}
	if !unitHas(u, "cap_net_admin") {
		out = append(out, fail(AreaAgent, "agent.sandbox-cap", fmt.Sprintf("%s's agent lacks cap_net_admin (CapabilityBoundingSet %q, User %q, AmbientCapabilities %q)%s", u.Name, u.Caps, u.User, u.Ambient, dropins),
			"the agent cannot change netfilter: every withdraw and restore fails", "give the unit CAP_NET_ADMIN"))
	}
	if f.Settings.Checks.Watch && !unitHas(u, "cap_net_raw") {
		out = append(out, warn(AreaAgent, "agent.sandbox-cap-raw", fmt.Sprintf("%s's agent lacks cap_net_raw (CapabilityBoundingSet %q, User %q, AmbientCapabilities %q)%s", u.Name, u.Caps, u.User, u.Ambient, dropins),
			"the agent cannot watch the load balancers' checks: withdraws wait min-wait and confirm nothing", "give the unit CAP_NET_RAW"))
	}
	if len(out) == 0 {
		out = append(out, ok(AreaAgent, "agent.unit", fmt.Sprintf("%s is %s and %s; its sandbox allows what the agent needs%s", u.Name, u.ActiveState, u.UnitFileState, dropins)))
	} else if u.ActiveState != "active" && f.agentUp() {
		out = append(out, ok(AreaAgent, "agent.unit", fmt.Sprintf("%s is %s: the agent that answers runs outside it", u.Name, u.ActiveState)))
	}
	return out
}

func judgePool(f Facts) []Finding {
	p := f.Pool
	s := f.Settings.Pool
	if !p.Configured {
		return []Finding{ok(AreaPool, "pool.none", "no pool: this host decides alone, and nothing stops the other servers going out at the same time (pool.etcd in the config coordinates them)")}
	}
	switch {
	case p.Err != nil:
		return []Finding{fail(AreaPool, "pool.unavailable", fmt.Sprintf("pool %s on %s: %v", s.Name, strings.Join(s.Etcd, ", "), p.Err),
			"every operation that takes the server out will refuse (exit 12): nothing is taken out without a slot",
			"check etcd's endpoints and health (etcdctl endpoint health), and the agent's pool settings")}
	case p.Status == nil:
		return nil // Gather sets one of the two
	}
	ps := p.Status
	out := judgeStorage(p)
	live := 0
	member := false
	for _, m := range ps.Members {
		if m.Live {
			live++
		}
		member = member || m.ID == ps.ID
	}
	limit := "the pool's max_unavailable " + ps.MaxUnavailable
	if ps.MaxUnavailable == "" {
		limit = "no readable settings yet (this host's max_unavailable " + ps.ConfiguredMaxUnavailable + " seeds a new pool)"
	}
	outs := api.PoolUnavailable(*ps)
	now := fmt.Sprintf("%d unavailable now", len(outs))
	if len(outs) > 0 {
		now += " (" + unavailableText(outs) + ")"
	}
	out = append(out, ok(AreaPool, "pool.status", fmt.Sprintf("pool %s: %d members (%d live), %s allows %d out; %s, %d waiting; this host is %s",
		ps.Name, len(ps.Members), live, limit, ps.Allowed, now, len(ps.Waiters), ps.ID)))
	switch d := api.PoolLimitDiffers(*ps); {
	case ps.SettingsError != "":
		out = append(out, fail(AreaPool, "pool.settings", "the pool's settings cannot be used: "+ps.SettingsError,
			"no slot is granted to any member: every operation that takes a server out waits --pool-wait, then exits 11",
			"drainctl pool set max-unavailable N rewrites them (settings of a newer layout: set them with the newer drainctl, or upgrade this one)"))
	case d != "":
		out = append(out, warn(AreaPool, "pool.limit-differs", d,
			"this host obeys the pool's limit, not its file's: the file misleads whoever reads it",
			"make pool.max_unavailable in the config file say "+ps.MaxUnavailable+", or drainctl pool set max-unavailable "+ps.ConfiguredMaxUnavailable+" if the file is right"))
	}
	if !member && f.agentUp() { // a stopped agent is no member: agent.down says so
		out = append(out, warn(AreaPool, "pool.not-member", fmt.Sprintf("this host (%s) is not among the pool's members", ps.ID),
			"the pool does not count it: a percentage limit is computed without it", "check that the agent registered (its log), and pool.id"))
	}
	if ps.Paused != nil {
		out = append(out, warn(AreaPool, "pool.paused", fmt.Sprintf("the pool is paused by %s: %s", ps.Paused.By, ps.Paused.Reason),
			"no operation gets a slot: they wait --pool-wait, then exit 11", "drainctl pool resume, when it should go on"))
	}
	// This host's own trouble (its web server down, its checks refused)
	// is its own findings' to report, and would not make it wait: it
	// takes its slot at once. The pool is full for it when the others,
	// or a slot it holds, use the budget.
	others := slices.DeleteFunc(slices.Clone(outs), func(o apitype.Unavailable) bool { return o.ID == ps.ID && !o.Slot })
	if len(others) >= ps.Allowed && ps.Allowed > 0 {
		// The budget counts every member out, not only the slots: a
		// gone host uses it until it is back or forgotten, and freeing
		// its slot (pool release) would not give it back.
		out = append(out, warn(AreaPool, "pool.full", fmt.Sprintf("the pool's budget is used: %d/%d unavailable: %s", len(outs), ps.Allowed, unavailableText(outs)),
			"an operation that takes a server in service out now waits (a server already counted out still takes its slot at once)",
			"wait for them to be back in service; drainctl pool forget ID for a host removed for good"))
	}
	return out
}

// unavailableText names the members that use the budget, as a waiter is
// told of them: "web2: holds a slot (reboot) since 03:01:00, web3: agent
// gone since 02:58:00".
func unavailableText(outs []apitype.Unavailable) string {
	var who []string
	for _, o := range outs {
		who = append(who, pool.Out(o).Text())
	}
	return strings.Join(who, ", ")
}

// storageWarn is how full etcd's database may grow, of the default
// quota, before doctor warns; storageRevisions how many revisions an
// etcd may keep uncompacted before it says compaction is off.
const (
	storageWarn      = 0.8
	storageRevisions = 100_000
)

// judgeStorage says whether etcd's storage will keep the pool (and every
// other user of that etcd) going: out of space (NOSPACE: every write
// refused, so every operation fails closed), near its quota, or keeping
// every revision for want of compaction.
func judgeStorage(p Pool) []Finding {
	st := p.Storage
	if st == nil {
		if p.StorageErr == nil {
			return nil
		}
		return []Finding{warn(AreaPool, "pool.etcd-storage", fmt.Sprintf("etcd's storage could not be read: %v", p.StorageErr),
			"doctor cannot say whether etcd is near its quota", "etcdctl endpoint status -w table; etcdctl alarm list")}
	}
	mb := func(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
	size := fmt.Sprintf("etcd at %s: database %s (%s in use) of the default %s quota, revision %d", st.Endpoint, mb(st.DBSize), mb(st.DBSizeInUse), mb(pool.DefaultQuota), st.Revision)
	fix := "compact and defragment (etcdctl compact REV; etcdctl defrag), then etcdctl alarm disarm; and turn auto-compaction on (etcd --auto-compaction-retention=1h: ETCD_AUTO_COMPACTION_RETENTION in /etc/default/etcd)"
	switch {
	case slices.Contains(st.Alarms, "NOSPACE"):
		return []Finding{fail(AreaPool, "pool.etcd-storage", size+"; alarm NOSPACE raised",
			"etcd refuses every write: no slot is granted or released, every operation that takes a server out fails (exit 12), and every other user of this etcd fails too", fix)}
	case len(st.Alarms) > 0:
		return []Finding{fail(AreaPool, "pool.etcd-storage", size+"; alarms raised: "+strings.Join(st.Alarms, ", "),
			"etcd is not healthy: its answers cannot be trusted", "etcdctl alarm list; etcd's log")}
	case float64(st.DBSize) >= storageWarn*pool.DefaultQuota:
		return []Finding{warn(AreaPool, "pool.etcd-storage", size,
			"near etcd's default quota: at the quota etcd raises NOSPACE and refuses every write (if its quota is raised, --quota-backend-bytes, judge by that)", fix)}
	case !st.Compacted && st.Revision > storageRevisions:
		return []Finding{warn(AreaPool, "pool.etcd-storage", size+"; nothing ever compacted",
			"etcd keeps every revision until it is compacted, and this one never was: it grows with every write until its quota, then refuses them all (NOSPACE)",
			"turn auto-compaction on: etcd --auto-compaction-retention=1h (ETCD_AUTO_COMPACTION_RETENTION in /etc/default/etcd), or compact from a timer")}
	}
	compacted := "compacted"
	if !st.Compacted {
		compacted = "not compacted yet"
	}
	return []Finding{ok(AreaPool, "pool.etcd-storage", size+", "+compacted)}
}

func judgeReboot(f Facts) []Finding {
	r := f.Reboot
	var out []Finding
	switch {
	case r.Err != nil:
		out = append(out, warn(AreaReboot, "reboot.unknown", "cannot tell whether a reboot is required: "+r.Err.Error(),
			"maintenance reboot --if-required will fail the same way", "see the error; needrestart -b -k runs the same check"))
	case r.Need.Required:
		out = append(out, warn(AreaReboot, "reboot.required", r.Need.String(),
			"the host runs an old kernel or libraries until it reboots", "drainctl maintenance reboot --if-required (within your window)"))
	default:
		out = append(out, ok(AreaReboot, "reboot.not-required", r.Need.String()))
	}
	if !r.Window.IsZero() {
		now := f.Now
		if r.Window.Contains(now) {
			out = append(out, ok(AreaReboot, "reboot.window", fmt.Sprintf("the window %s is open now, until %s", r.Window, r.Window.End(now).Format(time.DateTime))))
		} else {
			out = append(out, ok(AreaReboot, "reboot.window", fmt.Sprintf("the window %s is closed now; it opens %s", r.Window, r.Window.Next(now).Format(time.DateTime))))
		}
	}
	return out
}

func judgeHAProxy(f Facts) []Finding {
	h := f.HAProxy
	if h == nil {
		return nil
	}
	var out []Finding
	for _, x := range h.Findings {
		who := "backend " + x.Backend
		if x.Server != "" {
			who += ", server " + x.Server
		}
		out = append(out, fail(AreaHAProxy, "haproxy.finding", fmt.Sprintf("%s:%d: %s", h.File, x.Line, who), x.Problem, x.Fix))
	}
	if h.NotMine {
		// Not this host's file, or it names the host otherwise (a DNS
		// name): its findings may be other servers'.
		for i := range out {
			out[i].Severity = Warning
		}
		out = append(out, warn(AreaHAProxy, "haproxy.not-mine", h.File+" has no server entry with this host's addresses or name",
			"its findings below may be other servers'; and if it is this pool's file, the load balancers reach this host under another name", "check the file is the load balancer's for this host"))
	}
	others := ""
	if h.Others > 0 {
		others = fmt.Sprintf(" (%d finding(s) in backends without this host left out)", h.Others)
	}
	if len(h.Findings) == 0 {
		out = append(out, ok(AreaHAProxy, "haproxy.ok", h.File+": withdrawing this server will not lose requests or sessions"+others))
	} else if others != "" {
		out = append(out, ok(AreaHAProxy, "haproxy.others", h.File+":"+others))
	}
	return out
}

// forwardsText says forwards in order ("81→80, 8081→8080"), to compare
// the agent's with the settings'.
func forwardsText(fwds []forward.Forward) string {
	fs := make([]string, len(fwds))
	for i, fw := range fwds {
		fs[i] = fmt.Sprintf("%d→%d", fw.From, fw.To)
	}
	slices.Sort(fs)
	return strings.Join(fs, ", ")
}

// answered says whether a readiness failure came from the web server
// (a refused connection, a status) rather than no answer in time.
func answered(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connection refused") || strings.Contains(s, "status ")
}
