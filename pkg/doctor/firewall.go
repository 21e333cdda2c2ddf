package doctor

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/nftables"

	"github.com/drainctl/drainctl/pkg/forward"
)

// gatherFirewall probes netfilter as the agent's backend auto does, and
// finds the firewall software and the rules of others on the forward
// ports. recorded is the state file's backend; systemd says whether
// systemd runs the host; look finds the programs doctor runs.
func gatherFirewall(ctx context.Context, o Options, recorded string, systemd bool, look forward.LookPath) Firewall {
	var fw Firewall
	conn, err := nftables.New()
	if err != nil {
		fw.ProbeErr = fmt.Errorf("open netlink for nftables: %w", err)
		return fw
	}
	saves, _ := forward.LegacySaves(ctx, look)
	if fw.Rules, err = forward.ProbeSaves(conn, saves, look); err != nil {
		fw.ProbeErr = err
		return fw
	}
	rules := fw.Rules
	rules.Recorded = recorded
	fw.Choice, _ = forward.Choose(o.Settings.Backend, rules)

	ports := make([]uint16, 0, len(o.Settings.Forwards))
	for _, f := range o.Settings.Forwards {
		ports = append(ports, f.From)
	}
	r := readRulesets(ctx, saves, look)
	fw.PortRules = r.portRules(ports)
	backend := fw.Choice.Backend
	if recorded != "" {
		backend = recorded
	}
	variant := ""
	if ipt, err := look("iptables"); err == nil {
		variant, _ = forward.IptablesMode(ctx, ipt)
	}
	fw.Software = software(o.Root, r, backend, variant)
	// Debian ships /etc/nftables.conf with flush ruleset and the unit
	// disabled: then nothing loads it, unless someone starts it.
	if systemd {
		if u := showUnit(ctx, look, "nftables.service"); u != nil && u.UnitFileState != "enabled" && u.ActiveState != "active" {
			for i := range fw.Software {
				if fw.Software[i].Name == "nftables.service" {
					fw.Software[i].Removes = false
					fw.Software[i].Detail += fmt.Sprintf("; but nftables.service is %s and %s: nothing loads it unless someone starts it", cmp.Or(u.UnitFileState, u.LoadState), u.ActiveState)
				}
			}
		}
	}
	return fw
}

// rulesets are the host's rules as forward parses them: iptables-nft's
// and iptables-legacy's saves (each family), and nft's ruleset.
type rulesets struct {
	iptNft []*forward.SaveRules // [0] IPv4, [1] IPv6, nil where unread
	legacy []*forward.SaveRules
	nft    *forward.NftRuleset // nil where unread
}

// readRulesets reads iptables-nft's saves and nft's ruleset (legacy:
// iptables-legacy's, read already). What cannot be read is left out.
func readRulesets(ctx context.Context, legacy []*forward.SaveRules, look forward.LookPath) rulesets {
	r := rulesets{legacy: legacy, iptNft: make([]*forward.SaveRules, 2)}
	for i, cmd := range []string{"iptables-nft-save", "ip6tables-nft-save"} {
		if path, err := look(cmd); err == nil {
			r.iptNft[i], _ = forward.ReadSave(ctx, path)
		}
	}
	if path, err := look("nft"); err == nil {
		r.nft, _ = forward.ReadNftRuleset(ctx, path)
	}
	return r
}

// portRules finds other software's rules naming ports, in iptables-nft's
// and nft's rulesets and iptables-legacy's saves.
func (r rulesets) portRules(ports []uint16) []PortRule {
	// iptables-nft's own tables are read from its saves where it is
	// installed: nft shows their xt targets only by name (its JSON: "xt
	// target DNAT"; its text leaves DNAT off where it does not know it,
	// nft 1.0.6's "XT target DNAT not found"). The tables it says are
	// incompatible (native chains in "ip nat") are nft's to list.
	var out []PortRule
	iptNft := map[forward.NftTableName]bool{}
	for i, s := range r.iptNft {
		if s == nil {
			continue
		}
		out = append(out, savePortRules(s, "iptables-nft", ports)...)
		for _, t := range s.Order {
			if s.Listed(t) {
				iptNft[forward.NftTableName{Family: []string{"ip", "ip6"}[i], Name: t}] = true
			}
		}
	}
	if r.nft != nil {
		out = append(out, nftPortRules(r.nft, ports, iptNft)...)
	}
	for _, s := range r.legacy {
		out = append(out, savePortRules(s, "iptables-legacy", ports)...)
	}
	return out
}

// software names the firewall tools whose rules or files are on the host.
// backend is where drainctl's rules are: what a tool's reload removes
// depends on it.
func software(root string, r rulesets, backend, restoreVariant string) []Software {
	var out []Software
	if r.hasChain("ufw-before-input", "ufw6-before-input") {
		out = append(out, Software{Name: "ufw", Detail: "its chains are loaded (ufw-before-input...); it changes only its own chains"})
	}
	if r.nft != nil && slices.ContainsFunc(r.nft.Tables, func(t forward.NftTableName) bool {
		return t.Name == "firewalld" && (t.Family == "inet" || t.Family == "ip" || t.Family == "ip6")
	}) {
		out = append(out, Software{Name: "firewalld", Detail: "its table is loaded; a reload replaces only its own table"})
	}
	if r.hasChain("DOCKER") {
		out = append(out, Software{Name: "docker", Detail: "its DOCKER chains are loaded (nat PREROUTING jumps to DOCKER for local addresses; a container published on a forward port would take its checks)"})
	}
	if b, err := os.ReadFile(filepath.Join(root, "/etc/nftables.conf")); err == nil && flushesRuleset(string(b)) {
		// flush ruleset empties every nftables table, iptables-nft's
		// too, and leaves iptables-legacy's alone.
		out = append(out, Software{Name: "nftables.service", Detail: "/etc/nftables.conf flushes the whole ruleset (flush ruleset) at every start and reload of nftables.service",
			Removes: backend == forward.BackendNftables || backend == forward.BackendIptablesNft || backend == forward.BackendIptables && restoreVariant == "nft"})
	}
	for _, f := range []string{"/etc/iptables/rules.v4", "/etc/iptables/rules.v6"} {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			// iptables-restore replaces the tables the file names, on
			// its own side of netfilter (nft or legacy): drainctl's
			// rules go only if they are on that side.
			out = append(out, Software{Name: "netfilter-persistent",
				Detail:  fmt.Sprintf("%s is restored with iptables-restore at boot and reload (iptables-restore is %s)", f, cmp.Or("iptables-"+restoreVariant, "of an unknown side")),
				Removes: backend == forward.BackendIptables || restoreVariant != "" && backend == "iptables-"+restoreVariant})
			break
		}
	}
	return out
}

// hasChain says whether a chain of one of names is loaded: in nft's
// ruleset (iptables-nft's tables included) or iptables-legacy's.
func (r rulesets) hasChain(names ...string) bool {
	if r.nft != nil && slices.ContainsFunc(r.nft.Chains, func(c forward.NftChain) bool { return slices.Contains(names, c.Name) }) {
		return true
	}
	return slices.ContainsFunc(r.legacy, func(s *forward.SaveRules) bool {
		return s.HasChain(func(c string) bool { return slices.Contains(names, c) })
	})
}

// flushesRuleset says whether an nft script (nftables.service's
// /etc/nftables.conf) has a line "flush ruleset".
func flushesRuleset(script string) bool {
	for _, l := range strings.Split(script, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "flush" && strings.HasPrefix(f[1], "ruleset") {
			return true
		}
	}
	return false
}

// namesPort says whether one of ranges (a rule's destination ports)
// holds one of ports, and which: the first range's first.
func namesPort(ranges []forward.PortRange, ports []uint16) (uint16, bool) {
	for _, r := range ranges {
		for _, p := range ports {
			if r.Contains(p) {
				return p, true
			}
		}
	}
	return 0, false
}

// nftPortRules lists the rules of nft's ruleset outside drainctl's that
// name one of ports, but for the tables in skip (iptables-nft's: read
// from its saves instead).
func nftPortRules(r *forward.NftRuleset, ports []uint16, skip map[forward.NftTableName]bool) []PortRule {
	var out []PortRule
	for _, rule := range r.Rules {
		if rule.Drainctl() || skip[rule.Table] {
			continue
		}
		if p, ok := namesPort(rule.DestPorts(), ports); ok {
			out = append(out, PortRule{Where: fmt.Sprintf("nftables table %s, chain %s", rule.Table, rule.Chain), Rule: rule.Text(), Port: p,
				Table: rule.Table.Name, Chain: rule.Chain, NATs: rule.NATs(), Drops: rule.Drops()})
		}
	}
	return out
}

// savePortRules lists the rules of an iptables save (what: whose) that
// name one of ports.
func savePortRules(s *forward.SaveRules, what string, ports []uint16) []PortRule {
	var out []PortRule
	for _, t := range s.Order {
		for _, rule := range s.Tables[t].All() {
			if rule.Drainctl() {
				continue
			}
			if p, ok := namesPort(rule.DestPorts(), ports); ok {
				out = append(out, PortRule{Where: fmt.Sprintf("%s table %s", what, t), Rule: rule.Line(), Port: p,
					Table: t, Chain: rule.Chain, NATs: rule.NATs(), Drops: rule.Drops()})
			}
		}
	}
	return out
}
