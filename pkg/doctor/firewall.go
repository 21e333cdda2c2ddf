package doctor

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"

	"github.com/drainctl/drainctl/pkg/forward"
)

// gatherFirewall probes netfilter as the agent's backend auto does, and
// finds the firewall software and the rules of others on the forward
// ports. recorded is the state file's backend; systemd says whether
// systemd runs the host.
func gatherFirewall(ctx context.Context, o Options, recorded string, systemd bool) Firewall {
	var fw Firewall
	conn, err := nftables.New()
	if err != nil {
		fw.ProbeErr = fmt.Errorf("open netlink for nftables: %w", err)
		return fw
	}
	saves, _ := forward.LegacySaves(ctx)
	if fw.Rules, err = forward.ProbeSaves(conn, saves); err != nil {
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
	var nftText string
	fw.PortRules, nftText = portRules(ctx, ports, saves)
	backend := fw.Choice.Backend
	if recorded != "" {
		backend = recorded
	}
	variant, _ := forward.IptablesMode(ctx, "iptables")
	fw.Software = software(o.Root, nftText, saves, backend, variant)
	// Debian ships /etc/nftables.conf with flush ruleset and the unit
	// disabled: then nothing loads it, unless someone starts it.
	if systemd {
		if u := showUnit(ctx, "nftables.service"); u != nil && u.UnitFileState != "enabled" && u.ActiveState != "active" {
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

// portRules finds other software's rules naming ports, in iptables-nft's
// and nft's rulesets and iptables-legacy's saves, and returns nft's text.
func portRules(ctx context.Context, ports []uint16, legacy []string) (rules []PortRule, nftText string) {
	// iptables-nft's own tables are read with its save command where it
	// is installed: nft prints their xt targets only when it knows them
	// (nft 1.0.6 leaves DNAT off, "XT target DNAT not found"). The
	// tables it says are incompatible (native chains in "ip nat") are
	// nft's to list.
	iptNft := map[string]bool{}
	for i, cmd := range []string{"iptables-nft-save", "ip6tables-nft-save"} {
		out, err := exec.CommandContext(ctx, cmd).Output()
		if err != nil {
			continue
		}
		rules = append(rules, savePortRules(string(out), "iptables-nft", ports)...)
		for t := range saveTables(string(out)) {
			iptNft[[]string{"ip ", "ip6 "}[i]+t] = true
		}
	}
	if out, err := exec.CommandContext(ctx, "nft", "list", "ruleset").Output(); err == nil {
		nftText = string(out)
		rules = append(rules, nftPortRules(nftText, ports, iptNft)...)
	}
	for _, s := range legacy {
		rules = append(rules, savePortRules(s, "iptables-legacy", ports)...)
	}
	return rules, nftText
}

// saveTables are the tables an iptables-save output lists whole: its
// "*nat" lines, but not those it says contain chains it cannot show.
func saveTables(text string) map[string]bool {
	ts := map[string]bool{}
	var incompatible []string
	for _, l := range strings.Split(text, "\n") {
		if t, ok := strings.CutPrefix(l, "*"); ok {
			ts[strings.TrimSpace(t)] = true
		}
		if rest, ok := strings.CutPrefix(l, "# Table `"); ok && strings.Contains(rest, "incompatible") {
			name, _, _ := strings.Cut(rest, "'")
			incompatible = append(incompatible, name)
		}
	}
	for _, t := range incompatible {
		delete(ts, t)
	}
	return ts
}

// software names the firewall tools whose rules or files are on the host.
// backend is where drainctl's rules are: what a tool's reload removes
// depends on it.
func software(root, nftText string, saves []string, backend, restoreVariant string) []Software {
	var out []Software
	all := nftText + strings.Join(saves, "\n")
	if strings.Contains(all, "ufw-before-input") || strings.Contains(all, "ufw6-before-input") {
		out = append(out, Software{Name: "ufw", Detail: "its chains are loaded (ufw-before-input...); it changes only its own chains"})
	}
	if regexp.MustCompile(`(?m)^table (inet|ip|ip6) firewalld `).MatchString(nftText) {
		out = append(out, Software{Name: "firewalld", Detail: "its table is loaded; a reload replaces only its own table"})
	}
	if strings.Contains(all, "chain DOCKER") || strings.Contains(all, ":DOCKER ") {
		out = append(out, Software{Name: "docker", Detail: "its DOCKER chains are loaded (nat PREROUTING jumps to DOCKER for local addresses; a container published on a forward port would take its checks)"})
	}
	if b, err := os.ReadFile(filepath.Join(root, "/etc/nftables.conf")); err == nil && regexp.MustCompile(`(?m)^\s*flush\s+ruleset`).Match(b) {
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

// portRE finds a destination port match in nft's text and in
// iptables-save's: "dport 81", "dport { 80, 81 }", "--dport 81",
// "--dports 80,81", "dport 80-90".
var portRE = regexp.MustCompile(`(?:\bdport|--dports?)\s+(\{[^}]*\}|\S+)`)

// namesPort says whether a rule's text matches one of ports by
// destination port, and which.
func namesPort(rule string, ports []uint16) (uint16, bool) {
	for _, m := range portRE.FindAllStringSubmatch(rule, -1) {
		for _, tok := range strings.FieldsFunc(m[1], func(r rune) bool { return r == '{' || r == '}' || r == ',' || r == ' ' }) {
			lo, hi, isRange := strings.Cut(strings.ReplaceAll(tok, ":", "-"), "-")
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil {
				continue
			}
			if !isRange || err2 != nil {
				b = a
			}
			for _, p := range ports {
				if int(p) >= a && int(p) <= b {
					return p, true
				}
			}
		}
	}
	return 0, false
}

// ours says whether a rule or chain is drainctl's own.
func ours(line string) bool {
	return strings.Contains(line, "drainctl:") || strings.Contains(line, "DRAINCTL-")
}

// nftPortRules lists the rules of `nft list ruleset` outside drainctl's
// table that name one of ports, but for the tables in skip ("ip nat":
// read from iptables-nft's save command instead).
func nftPortRules(text string, ports []uint16, skip map[string]bool) []PortRule {
	var out []PortRule
	table, chain := "", ""
	for _, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case strings.HasPrefix(line, "table "):
			table = strings.TrimSuffix(strings.TrimSpace(strings.TrimPrefix(line, "table ")), "{")
			table = strings.TrimSpace(table)
			chain = ""
			continue
		case strings.HasPrefix(line, "chain "):
			chain = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "chain "), "{"))
			continue
		}
		if table == "inet "+forward.NftTable || chain == "" || ours(line) || ours(chain) || skip[table] {
			continue
		}
		if p, ok := namesPort(line, ports); ok {
			out = append(out, PortRule{Where: fmt.Sprintf("nftables table %s, chain %s", table, chain), Rule: line, Port: p})
		}
	}
	return out
}

// savePortRules lists the rules of an iptables-save output that name one
// of ports.
func savePortRules(text, what string, ports []uint16) []PortRule {
	var out []PortRule
	table := ""
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			table = strings.TrimPrefix(line, "*")
		case strings.HasPrefix(line, "-A ") && !ours(line):
			if p, ok := namesPort(line, ports); ok {
				out = append(out, PortRule{Where: fmt.Sprintf("%s table %s", what, table), Rule: line, Port: p})
			}
		}
	}
	return slices.Clip(out)
}
