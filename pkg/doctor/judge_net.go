package doctor

// The network's judges: the firewall, and the load balancers' checks.

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/settings"
)

// agentUp says whether the agent answered.
func (f Facts) agentUp() bool { return f.Agent.Status != nil }

// forwardPorts and servicePorts are the settings' forwards' two ends.
func (f Facts) forwardPorts() []uint16 {
	var ps []uint16
	for _, fw := range f.Settings.Forwards {
		ps = append(ps, fw.From)
	}
	return ps
}

func (f Facts) servicePorts() []uint16 {
	var ps []uint16
	for _, fw := range f.Settings.Forwards {
		ps = append(ps, fw.To)
	}
	return ps
}

func judgeFirewall(f Facts) []Finding {
	fw := f.Firewall
	if fw.ProbeErr != nil && !f.AsRoot {
		return []Finding{warn(AreaFirewall, "firewall.unseen", "doctor cannot read netfilter as this user: "+fw.ProbeErr.Error(),
			"the firewall is not judged", "run drainctl doctor as root")}
	}
	if fw.ProbeErr != nil {
		return []Finding{fail(AreaFirewall, "firewall.unreadable", "cannot read this host's netfilter rules: "+fw.ProbeErr.Error(),
			"the agent will not be able to read or change the forward either", "run drainctl doctor as root, on the app server itself")}
	}
	r := fw.Rules
	counts := fmt.Sprintf("rules of other software: iptables-legacy %d, iptables-nft %d, native nftables %d", r.Legacy, r.IptablesNft, r.Native)
	var out []Finding
	if st := f.Agent.Status; st != nil {
		out = append(out, ok(AreaFirewall, "firewall.backend", fmt.Sprintf("the agent keeps the forward in %s (%s); backend %s: %s", st.Backend, counts, f.Settings.Backend, fw.Choice.Reason)))
	} else {
		out = append(out, ok(AreaFirewall, "firewall.backend", fmt.Sprintf("backend %s would be used: %s", fw.Choice.Backend, fw.Choice.Reason)))
	}
	if len(r.Drainctl) > 1 {
		out = append(out, warn(AreaFirewall, "firewall.rules-twice", "drainctl's rules are in several backends: "+strings.Join(r.Drainctl, ", "),
			"the kernel applies all of them: a withdraw in one leaves the other redirecting",
			"let the agent move them (it does at its next change), or remove the stale ones with drainctl forward remove --backend NAME"))
	}
	for _, s := range fw.Software {
		found := s.Name + ": " + s.Detail
		switch {
		case !s.Removes:
			out = append(out, ok(AreaFirewall, "firewall.software", found))
		case f.agentUp():
			out = append(out, ok(AreaFirewall, "firewall.software", found+"; its reload removes drainctl's rules, and the running agent puts them back"))
		default:
			out = append(out, warn(AreaFirewall, "firewall.software-removes", found+"; its reload removes drainctl's rules",
				"with no agent running nothing puts the forward back: the load balancers take the server out for new users",
				"run the agent (systemctl enable --now drainctl.service): it watches the ruleset and repairs the forward"))
		}
	}
	for _, pr := range fw.PortRules {
		x := warn(AreaFirewall, "firewall.port-rule",
			fmt.Sprintf("another program's rule names port %d (%s): %s", pr.Port, pr.Where, pr.Rule),
			fmt.Sprintf("netfilter evaluates it as well as drainctl's: it may redirect, accept or drop the load balancers' checks of port %d before drainctl's rules see them, so a withdraw may not take the server out, or the forward may not work", pr.Port),
			"remove the rule, or give drainctl a forward port nothing else uses (forwards: in the config, and the load balancers' check port)")
		if takesPort(pr) {
			x.Severity = Fail
			x.Impact = fmt.Sprintf("it redirects or drops the checks of port %d before they reach the service: withdrawing drainctl's forward changes nothing the load balancers see, or the server is never in service", pr.Port)
		}
		out = append(out, x)
	}
	return out
}

// takesPort says whether another program's rule takes the forward
// port's packets before drainctl's filter rules could: a NAT of them (a
// container published on the port), or a drop in raw or mangle. A rule
// in filter's INPUT does not: the checks arrive there redirected, on
// the service port.
func takesPort(pr PortRule) bool {
	switch {
	case pr.Table == "nat":
		return pr.NATs
	case strings.Contains(pr.Table+" "+pr.Chain, "raw") || strings.Contains(pr.Table+" "+pr.Chain, "mangle"):
		return pr.Drops
	}
	return false
}

// sourcesOn splits load balancers by the ports they were seen on.
func sourcesOn(lbs []lbview.LB, ports []uint16) []lbview.LB {
	var out []lbview.LB
	for _, l := range lbs {
		if slices.Contains(ports, l.Port) {
			out = append(out, l)
		}
	}
	return out
}

// checkers merges the agent's view with doctor's own capture: the
// agent's knows longer histories, the capture is now.
func (f Facts) checkers() []lbview.LB {
	byKey := map[lbview.Key]lbview.LB{}
	for _, l := range f.Checks.Agent {
		if l.Active {
			byKey[l.Key()] = l
		}
	}
	flooded, watching := f.flooded(), f.Checks.AgentWatching
	for _, l := range sourcesOn(f.Checks.Seen, f.forwardPorts()) {
		a, ok := byKey[l.Key()]
		if flooded && watching && !ok {
			continue // the flood's: judgeLearned says it, once
		}
		if ok && a.Interval > 0 && l.Interval == 0 {
			l.Interval = a.Interval
		}
		byKey[l.Key()] = l
	}
	out := make([]lbview.LB, 0, len(byKey))
	for _, l := range byKey {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b lbview.LB) int {
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c
		}
		return int(a.Port) - int(b.Port)
	})
	return out
}

// inService says whether the agent says the forward takes new users.
func (f Facts) inService() bool {
	st := f.Agent.Status
	if st == nil || st.State.Phase != apitype.PhaseInService || st.Running {
		return false
	}
	for _, fw := range st.Forwards {
		if api.ForwardState(fw) != "in-service" {
			return false
		}
	}
	return true
}

func judgeChecks(f Facts) []Finding {
	c := f.Checks
	s := f.Settings
	fwd := lbview.PortsText(f.forwardPorts())
	watched := fmt.Sprintf("watched for %s", c.Listened.Round(100*time.Millisecond))
	if c.AgentWatching {
		watched += " and by the agent since it started"
	}
	if c.CaptureErr != nil && !c.AgentWatching {
		return []Finding{warn(AreaChecks, "checks.unseen", "cannot see the load balancers' checks: "+c.CaptureErr.Error(),
			"doctor cannot tell whether withdrawing the forward takes this server out of any rotation",
			"run drainctl doctor as root (it needs CAP_NET_RAW), or with the agent running")}
	}
	var out []Finding
	switch {
	case c.Skipped:
		out = append(out, ok(AreaChecks, "checks.not-captured", "doctor did not capture (--listen 0): the load balancers below are the agent's, and the service port is not looked at"))
	case c.CaptureErr != nil:
		out = append(out, warn(AreaChecks, "checks.capture-failed", "doctor's own capture failed: "+c.CaptureErr.Error()+"; the load balancers below are the agent's",
			"checks of the service port (the wrong port) and the host's answers are not judged", "run drainctl doctor as root, with --listen"))
	}
	checkers := f.checkers()
	now := f.Now
	out = append(out, judgeLearned(f)...)
	for _, l := range checkers {
		out = append(out, ok(AreaChecks, "checks.forward-port", l.Describe(now)))
		out = append(out, judgeAnswers(f, l)...)
		out = append(out, judgeTimings(f, l)...)
	}
	// Sources on the service port that never check the forward port:
	// their health checks do not see a withdraw.
	checking := map[netip.Addr]bool{}
	for _, l := range checkers {
		checking[l.Addr] = true
	}
	for _, l := range sourcesOn(c.Seen, f.servicePorts()) {
		if checking[l.Addr] || slices.ContainsFunc(s.Policy.Ignore, func(p netip.Prefix) bool { return p.Contains(l.Addr) }) {
			continue // its backup entry's checks, traffic through it, or monitoring
		}
		every := ""
		if l.Interval > 0 {
			every = " every " + lbview.Seconds(l.Interval)
		}
		// Steady connections are a load balancer's checks; a couple may
		// be anyone's (a client, a probe): said, not failed.
		judge := fail
		if l.Interval <= 0 || l.Checks < 3 {
			judge = warn
		}
		out = append(out, judge(AreaChecks, "checks.service-port",
			fmt.Sprintf("%s connects to port %d%s (%d connections, %s) but never checks %s", l.Addr, l.Port, every, l.Checks, watched, fwd),
			fmt.Sprintf("if these are its health checks (a check \"port %d\" on the server line, or the server listed on port %d only), withdrawing the forward does not take this server out: it keeps sending new users through a restart, and a maintenance waits for a confirmation that never comes (if it is monitoring, add it to %s)", l.Port, l.Port, settings.KeyIgnore),
			fmt.Sprintf("on %s, check the forward port: server NAME %s:%d cookie NAME check port %d, and a backup entry on %d (drainctl haproxy-config writes the pattern; drainctl haproxy-check FILE finds the line)", l.Addr, addrOr(l.Local, "ADDRESS"), l.Port, forwardTo(f, l.Port), l.Port)))
	}
	if len(checkers) == 0 && !slices.ContainsFunc(out, func(x Finding) bool { return x.ID == "checks.service-port" && x.Severity == Fail }) {
		out = append(out, warn(AreaChecks, "checks.none", fmt.Sprintf("no load balancer health-checks %s (%s)", fwd, watched),
			"withdrawing takes this server out of no rotation: if a load balancer sends it users, they keep coming through a restart",
			fmt.Sprintf("point the primary entries' checks at %s (drainctl haproxy-config); on a host not yet behind a load balancer, nothing to do", fwd)))
	}
	if s.Checks.Watch && f.agentUp() && !c.AgentWatching {
		out = append(out, warn(AreaChecks, "checks.agent-not-watching", "the agent does not watch the load balancers' checks (health_checks.watch is on)",
			"withdraws wait min-wait and confirm nothing: \"out of rotation\" is a guess, and a restart of a busy server takes longer",
			"give the agent CAP_NET_RAW and AF_PACKET (see the agent findings); its log says why at start"))
	}
	return out
}

// addrOr is a, or what to say when it is not known.
func addrOr(a netip.Addr, unknown string) string {
	if a.IsValid() {
		return a.String()
	}
	return unknown
}

// forwardTo is the forward port of the forward to service port svc.
func forwardTo(f Facts, svc uint16) uint16 {
	for _, fw := range f.Settings.Forwards {
		if fw.To == svc {
			return fw.From
		}
	}
	return f.forwardPorts()[0]
}

// judgeAnswers reads the host's answers to one load balancer's checks in
// doctor's capture: the kernel's own word on the forward.
func judgeAnswers(f Facts, l lbview.LB) []Finding {
	var seen *lbview.LB
	for _, s := range f.Checks.Seen {
		if s.Key() == l.Key() {
			seen = &s
			break
		}
	}
	if seen == nil || seen.Checks < captureMinChecks {
		return nil
	}
	switch {
	case seen.Accepted == 0 && seen.Refused == 0:
		return []Finding{fail(AreaChecks, "checks.unanswered",
			fmt.Sprintf("the host answered none of %s's %d checks of port %d", l.Addr, seen.Checks, l.Port),
			"a rule drops them before or after drainctl's redirect (a firewall's default deny of the service port?): the load balancer sees this server DOWN, withdrawn or not",
			"allow the service port in the firewall (ufw allow 80/tcp, firewall-cmd --add-service=http): after the redirect, the checks arrive on the service port")}
	case f.inService() && seen.Accepted == 0:
		return []Finding{fail(AreaChecks, "checks.refused",
			fmt.Sprintf("the host refused all %d of %s's checks of port %d while the agent says the forward is in service", seen.Checks, l.Addr, l.Port),
			"the load balancer sees this server DOWN: it takes no new users",
			"see the firewall findings: another rule comes before drainctl's redirect, or the web server does not listen on the service port")}
	}
	return nil
}

// judgeTimings compares one load balancer's check interval with what
// the agent waits.
func judgeTimings(f Facts, l lbview.LB) []Finding {
	s := f.Settings
	if l.Interval <= 0 {
		return nil
	}
	var out []Finding
	// Without the view (off, or the agent cannot watch) a withdraw
	// waits min-wait and confirms nothing.
	blind := !s.Checks.Watch || f.agentUp() && !f.Checks.AgentWatching
	out2 := time.Duration(s.Checks.Fall) * l.Interval
	if blind && s.Policy.MinWait < out2 {
		out = append(out, fail(AreaChecks, "checks.min-wait-short",
			fmt.Sprintf("%s checks every %s: with fall %d it takes the server out about %s after a withdraw, but the agent confirms nothing (it does not watch the checks) and waits only min-wait %s",
				l.Addr, lbview.Seconds(l.Interval), s.Checks.Fall, lbview.Seconds(out2), lbview.Seconds(s.Policy.MinWait)),
			"the drain can end while the load balancer still sends new users, and they reach a web server being restarted",
			fmt.Sprintf("set %s to at least %s, or let the agent watch the checks (%s)", settings.KeyMinWait, out2+time.Second, settings.KeyWatch)))
	}
	if !blind && !lbview.Confirmable(max(s.Checks.Fall, s.Checks.Rise), l.Interval) {
		out = append(out, warn(AreaChecks, "checks.slow",
			fmt.Sprintf("%s checks only every %s: fall %d and rise %d take longer than the minute the agent waits for a confirmation", l.Addr, lbview.Seconds(l.Interval), s.Checks.Fall, s.Checks.Rise),
			"withdraws and restores end \"not confirmed\" by this load balancer; the server is out of its rotation for minutes",
			"check the primary entries more often (inter 500ms to 2s)"))
	}
	if h := f.HAProxy; h != nil {
		for _, e := range h.Mine {
			if e.CheckPort != int(l.Port) || e.Inter <= 0 {
				continue
			}
			if r := float64(l.Interval) / float64(e.Inter); r < 0.5 || r > 2 {
				out = append(out, warn(AreaChecks, "checks.interval-differs",
					fmt.Sprintf("%s:%d: %s's entry says inter %s, but %s checks every %s", h.File, e.Line, e.Name, lbview.Seconds(e.Inter), l.Addr, lbview.Seconds(l.Interval)),
					"the file is not what this load balancer runs (or another one checks too): its fall and rise may not be the agent's either",
					"compare with the load balancer's running haproxy.cfg"))
			}
		}
	}
	return out
}
