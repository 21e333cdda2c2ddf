package forward

// The one reader of iptables-save's format in drainctl: the iptables
// backend, Probe and drainctl doctor all read saves through ParseSave
// (as kubernetes' pkg/util/iptables reads them in one place), so that a
// quirk of the format is handled once.

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// SaveRules is one iptables-save output, as ParseSave reads it: every
// table of one IP family.
type SaveRules struct {
	// Tables are the tables listed, by name ("nat", "filter", "raw"...).
	Tables map[string]*SaveTable
	// Order is the tables' names in the order listed.
	Order []string
	// Incompatible names the tables iptables-nft-save says hold chains
	// it cannot show ("# Table `nat' contains incompatible base-chains"):
	// native nftables chains in a table named like its own, which only
	// nft lists whole.
	Incompatible []string
}

// SaveTable is one table of an iptables-save output.
type SaveTable struct {
	Name string
	// Chains are the chains declared (":CHAIN POLICY [counters]"), in
	// order.
	Chains []string
	// Rules are each chain's rules, in order.
	Rules map[string][]SaveRule
}

// SaveRule is one "-A CHAIN ..." line of iptables-save.
type SaveRule struct {
	Chain    string
	Counters string // "[packets:bytes]", or "" when saved without counters
	Spec     string // everything after "-A CHAIN "
}

// ParseSave reads iptables-save output. Lines it does not understand are
// an error: acting on a misread ruleset could undo a withdraw.
func ParseSave(text string) (*SaveRules, error) {
	s := &SaveRules{Tables: map[string]*SaveTable{}}
	var cur *SaveTable
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "# Table `"):
			if name, _, _ := strings.Cut(strings.TrimPrefix(line, "# Table `"), "'"); strings.Contains(line, "incompatible") {
				s.Incompatible = append(s.Incompatible, name)
			}
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			cur = newSaveTable(line[1:])
			if s.Tables[cur.Name] == nil {
				s.Order = append(s.Order, cur.Name)
			}
			s.Tables[cur.Name] = cur
		case cur == nil:
			return nil, fmt.Errorf("iptables-save line %d: %q outside a table", n+1, line)
		case line == "COMMIT":
			cur = nil
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			cur.declare(name)
		default:
			var r SaveRule
			if strings.HasPrefix(line, "[") {
				c, rest, ok := strings.Cut(line, " ")
				if !ok {
					return nil, fmt.Errorf("iptables-save line %d: %q", n+1, line)
				}
				r.Counters, line = c, rest
			}
			rest, ok := strings.CutPrefix(line, "-A ")
			if !ok {
				return nil, fmt.Errorf("iptables-save line %d: unexpected %q", n+1, line)
			}
			r.Chain, r.Spec, _ = strings.Cut(rest, " ")
			cur.Rules[r.Chain] = append(cur.Rules[r.Chain], r)
		}
	}
	return s, nil
}

// ReadSave runs an iptables-save command (cmd: a name or path, e.g.
// iptables-nft-save) without counters, and parses its output.
func ReadSave(ctx context.Context, cmd string) (*SaveRules, error) {
	out, err := exec.CommandContext(ctx, cmd).Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	s, err := ParseSave(string(out))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return s, nil
}

// Listed says whether the save lists table whole: it names the table,
// and does not call it incompatible.
func (s *SaveRules) Listed(table string) bool {
	return s.Tables[table] != nil && !slices.Contains(s.Incompatible, table)
}

// All lists every rule of the save, in the order of the output.
func (s *SaveRules) All() []SaveRule {
	var out []SaveRule
	for _, name := range s.Order {
		out = append(out, s.Tables[name].All()...)
	}
	return out
}

// HasChain says whether some table of the save declares a chain that
// match accepts.
func (s *SaveRules) HasChain(match func(chain string) bool) bool {
	for _, t := range s.Tables {
		if slices.ContainsFunc(t.Chains, match) {
			return true
		}
	}
	return false
}

func newSaveTable(name string) *SaveTable {
	return &SaveTable{Name: name, Rules: map[string][]SaveRule{}}
}

// HasChain says whether the table declares chain c.
func (t *SaveTable) HasChain(c string) bool { return slices.Contains(t.Chains, c) }

// declare adds chain c to the table's chains, if not there yet.
func (t *SaveTable) declare(c string) {
	if !t.HasChain(c) {
		t.Chains = append(t.Chains, c)
	}
}

// All lists the table's rules chain by chain, in the order declared (the
// order iptables-save prints them), then those of chains never declared.
func (t *SaveTable) All() []SaveRule {
	var out []SaveRule
	for _, c := range t.Chains {
		out = append(out, t.Rules[c]...)
	}
	for _, c := range slices.Sorted(maps.Keys(t.Rules)) {
		if !t.HasChain(c) {
			out = append(out, t.Rules[c]...)
		}
	}
	return out
}

func (t *SaveTable) clone() *SaveTable {
	c := &SaveTable{Name: t.Name, Chains: slices.Clone(t.Chains), Rules: make(map[string][]SaveRule, len(t.Rules))}
	for k, v := range t.Rules {
		c.Rules[k] = slices.Clone(v)
	}
	return c
}

// Line is the rule as iptables-save prints it, without counters.
func (r SaveRule) Line() string { return "-A " + r.Chain + " " + r.Spec }

// Packets is the rule's packet counter (0 when saved without counters).
func (r SaveRule) Packets() uint64 {
	p, _, _ := strings.Cut(strings.Trim(r.Counters, "[]"), ":")
	n, _ := strconv.ParseUint(p, 10, 64)
	return n
}

// Args are the rule's words, unquoted as a shell would: iptables-save
// quotes a value with spaces or quotes in it, escaping \ and ".
func (r SaveRule) Args() []string {
	var args []string
	var w strings.Builder
	inWord, quoted, escaped := false, false, false
	for _, c := range r.Spec {
		switch {
		case escaped:
			w.WriteRune(c)
			escaped = false
		case c == '\\' && quoted:
			escaped = true
		case c == '"':
			quoted, inWord = !quoted, true
		case c == ' ' && !quoted:
			if inWord {
				args = append(args, w.String())
				w.Reset()
			}
			inWord = false
		default:
			w.WriteRune(c)
			inWord = true
		}
	}
	if inWord {
		args = append(args, w.String())
	}
	return args
}

// value is the word after the first of flags in the rule, or "".
func (r SaveRule) value(flags ...string) string {
	args := r.Args()
	for i, a := range args[:max(len(args)-1, 0)] {
		if slices.Contains(flags, a) {
			return args[i+1]
		}
	}
	return ""
}

// Comment is the rule's --comment, or "".
func (r SaveRule) Comment() string { return r.value("--comment") }

// Target is what the rule jumps (-j) or goes (-g) to: a chain, or a
// target such as ACCEPT, DNAT, REDIRECT; "" for none.
func (r SaveRule) Target() string { return r.value("-j", "--jump", "-g", "--goto") }

// Drainctl says whether the rule is drainctl's own: commented with
// CommentPrefix, or in or jumping to a chain named with ChainPrefix.
func (r SaveRule) Drainctl() bool {
	return strings.HasPrefix(r.Comment(), CommentPrefix) || ownChain(r.Chain) || ownChain(r.Target())
}

// NATs says whether the rule rewrites the destination of what it
// matches (DNAT, REDIRECT).
func (r SaveRule) NATs() bool { t := r.Target(); return t == "DNAT" || t == "REDIRECT" }

// Drops says whether the rule drops or refuses what it matches.
func (r SaveRule) Drops() bool { t := r.Target(); return t == "DROP" || t == "REJECT" }

// DestPorts are the destination ports the rule matches on (--dport,
// --dports): with a "!" before the option, every port but those, since
// `! --dport 81 -j DROP` drops everything except 81.
func (r SaveRule) DestPorts() []PortRange {
	var out []PortRange
	args := r.Args()
	for i, a := range args[:max(len(args)-1, 0)] {
		switch a {
		case "--dport", "--dports", "--destination-port", "--destination-ports":
			var named []PortRange
			for _, p := range strings.Split(args[i+1], ",") {
				if pr, ok := parsePortRange(p, ":"); ok {
					named = append(named, pr)
				}
			}
			if i > 0 && args[i-1] == "!" {
				named = complement(named)
			}
			out = append(out, named...)
		}
	}
	return out
}

// PortRange is the ports Lo to Hi, both included.
type PortRange struct{ Lo, Hi uint16 }

// Contains says whether p is in the range.
func (r PortRange) Contains(p uint16) bool { return r.Lo <= p && p <= r.Hi }

// complement is every port (0-65535) in none of rs.
func complement(rs []PortRange) []PortRange {
	var out []PortRange
	next := 0 // the lowest port not yet covered or excluded
	for _, r := range slices.SortedFunc(slices.Values(rs), func(a, b PortRange) int { return int(a.Lo) - int(b.Lo) }) {
		if int(r.Lo) > next {
			out = append(out, PortRange{uint16(next), r.Lo - 1})
		}
		next = max(next, int(r.Hi)+1)
	}
	if next <= 65535 {
		out = append(out, PortRange{uint16(next), 65535})
	}
	return out
}

// parsePortRange reads "81" or "80" sep "90".
func parsePortRange(s, sep string) (PortRange, bool) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), sep)
	a, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return PortRange{}, false
	}
	b, err := strconv.ParseUint(hi, 10, 16)
	if !isRange || err != nil {
		b = a
	}
	return PortRange{uint16(a), uint16(b)}, true
}
