package forward

// The nftables ruleset of every program, as nft itself reads it: `nft -j
// list ruleset` (libnftables-json(5)). The backends read and write only
// drainctl's own table, over netlink, in bytecode they wrote themselves;
// judging other programs' rules needs what the bytecode means ("tcp
// dport { 81, 8081 }", "dnat to ...") and the words a person knows
// them by, which nft's decompiler gives and netlink does not.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// NftRuleset is the nftables ruleset: its tables, chains and rules, in
// the order nft lists them.
type NftRuleset struct {
	Tables []NftTableName
	Chains []NftChain
	Rules  []NftRule
}

// NftTableName names a table: its family ("ip", "ip6", "inet"...) and
// name.
type NftTableName struct{ Family, Name string }

// String is the table as nft names it: "ip nat".
func (t NftTableName) String() string { return t.Family + " " + t.Name }

// NftChain is one chain.
type NftChain struct {
	Table NftTableName
	Name  string
	// Type, Hook and Prio are a base chain's ("nat", "prerouting",
	// -100); Type is "" for a regular chain.
	Type, Hook string
	Prio       int
	Policy     string
}

// NftRule is one rule: where it is, and its expressions as nft's JSON
// has them.
type NftRule struct {
	Table   NftTableName
	Chain   string
	Handle  uint64
	Comment string
	Exprs   []NftExpr
}

// NftExpr is one expression of a rule: {"match": {...}}, {"counter":
// {...}}, {"accept": null}...
type NftExpr struct {
	Kind  string
	Value json.RawMessage
}

// ReadNftRuleset runs nft (a name or path) -j list ruleset and parses
// its output.
func ReadNftRuleset(ctx context.Context, nft string) (*NftRuleset, error) {
	out, err := exec.CommandContext(ctx, nft, "-j", "list", "ruleset").Output()
	if err != nil {
		return nil, fmt.Errorf("%s -j list ruleset: %w", nft, err)
	}
	r, err := ParseNftJSON(out)
	if err != nil {
		return nil, fmt.Errorf("%s -j list ruleset: %w", nft, err)
	}
	return r, nil
}

// ParseNftJSON reads `nft -j list ruleset` output. Objects other than
// tables, chains and rules (sets, maps, flowtables) are skipped.
func ParseNftJSON(b []byte) (*NftRuleset, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("nftables JSON: %w", err)
	}
	r := &NftRuleset{}
	for _, obj := range doc.Nftables {
		for kind, raw := range obj { // one key each
			if kind != "table" && kind != "chain" && kind != "rule" {
				continue
			}
			var v nftObject
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, fmt.Errorf("nftables JSON: %s: %w", kind, err)
			}
			r.add(kind, v)
		}
	}
	return r, nil
}

// nftObject is a table, chain or rule of nft's JSON: the fields read of
// each (the names match the JSON's, as encoding/json matches them).
type nftObject struct {
	Family, Table, Name, Chain, Type, Hook, Policy, Comment string
	Prio                                                    int
	Handle                                                  uint64
	Expr                                                    []map[string]json.RawMessage
}

// add adds a table, chain or rule (kind) to the ruleset.
func (r *NftRuleset) add(kind string, v nftObject) {
	switch kind {
	case "table":
		r.Tables = append(r.Tables, NftTableName{v.Family, v.Name})
	case "chain":
		r.Chains = append(r.Chains, NftChain{NftTableName{v.Family, v.Table}, v.Name, v.Type, v.Hook, v.Prio, v.Policy})
	case "rule":
		rule := NftRule{Table: NftTableName{v.Family, v.Table}, Chain: v.Chain, Handle: v.Handle, Comment: v.Comment}
		for _, e := range v.Expr {
			for k, val := range e { // one key each
				rule.Exprs = append(rule.Exprs, NftExpr{k, val})
			}
		}
		r.Rules = append(r.Rules, rule)
	}
}

// Drainctl says whether the rule is drainctl's own: in its table (inet
// NftTable), commented with CommentPrefix, in or jumping to a chain named
// with ChainPrefix (iptables-nft's).
func (r NftRule) Drainctl() bool {
	if r.Table == (NftTableName{"inet", NftTable}) || strings.HasPrefix(r.Comment, CommentPrefix) || ownChain(r.Chain) {
		return true
	}
	for _, e := range r.Exprs {
		if e.Kind == "jump" || e.Kind == "goto" {
			var v struct{ Target string }
			if json.Unmarshal(e.Value, &v) == nil && ownChain(v.Target) {
				return true
			}
		}
	}
	return false
}

// NATs says whether the rule rewrites the destination of what it
// matches: dnat, redirect, or iptables-nft's DNAT and REDIRECT targets.
func (r NftRule) NATs() bool {
	return r.has("dnat", "redirect") || r.hasXT("DNAT", "REDIRECT")
}

// Drops says whether the rule drops or refuses what it matches.
func (r NftRule) Drops() bool {
	return r.has("drop", "reject") || r.hasXT("DROP", "REJECT")
}

func (r NftRule) has(kinds ...string) bool {
	for _, e := range r.Exprs {
		for _, k := range kinds {
			if e.Kind == k {
				return true
			}
		}
	}
	return false
}

func (r NftRule) hasXT(names ...string) bool {
	for _, e := range r.Exprs {
		var v struct{ Type, Name string }
		if e.Kind != "xt" || json.Unmarshal(e.Value, &v) != nil || v.Type != "target" {
			continue
		}
		for _, n := range names {
			if v.Name == n {
				return true
			}
		}
	}
	return false
}

// nftMatch is a match expression: left op right.
type nftMatch struct {
	Op    string          `json:"op"`
	Left  json.RawMessage `json:"left"`
	Right json.RawMessage `json:"right"`
}

// DestPorts are the destination ports the rule matches on ("tcp dport
// 81", "th dport { 80-90, 443 }"; "tcp dport != 81": every port but 81;
// "tcp dport < 1024": 0-1023). A named set (@ports) is not looked into.
func (r NftRule) DestPorts() []PortRange {
	var out []PortRange
	for _, e := range r.Exprs {
		var m nftMatch
		if e.Kind != "match" || json.Unmarshal(e.Value, &m) != nil {
			continue
		}
		var left struct {
			Payload *struct{ Field string } `json:"payload"`
		}
		if json.Unmarshal(m.Left, &left) != nil || left.Payload == nil || left.Payload.Field != "dport" {
			continue
		}
		out = append(out, matchedPorts(m.Op, nftPorts(m.Right))...)
	}
	return out
}

// matchedPorts are the ports a match of op against named matches.
func matchedPorts(op string, named []PortRange) []PortRange {
	if len(named) != 1 || named[0].Lo != named[0].Hi {
		if op == "!=" {
			return complement(named)
		}
		return named // ==, in: a set or a range
	}
	p := named[0].Lo
	switch {
	case op == "!=":
		return complement(named)
	case op == "<" && p > 0:
		return []PortRange{{0, p - 1}}
	case op == "<=":
		return []PortRange{{0, p}}
	case op == ">" && p < 65535:
		return []PortRange{{p + 1, 65535}}
	case op == ">=":
		return []PortRange{{p, 65535}}
	case op == "<" || op == ">":
		return nil
	}
	return named
}

// nftPorts reads a port, a range [lo, hi], or a set of them.
func nftPorts(v json.RawMessage) []PortRange {
	var n uint16
	if json.Unmarshal(v, &n) == nil {
		return []PortRange{{n, n}}
	}
	var obj struct {
		Range []uint16                       `json:"range"`
		Set   []json.RawMessage              `json:"set"`
		Elem  *struct{ Val json.RawMessage } `json:"elem"`
	}
	if json.Unmarshal(v, &obj) != nil {
		return nil
	}
	var out []PortRange
	if len(obj.Range) == 2 {
		out = append(out, PortRange{obj.Range[0], obj.Range[1]})
	}
	for _, e := range obj.Set {
		out = append(out, nftPorts(e)...)
	}
	if obj.Elem != nil {
		out = append(out, nftPorts(obj.Elem.Val)...)
	}
	return out
}

// Text is the rule as nft lists it, for the common expressions
// ("tcp dport { 81, 8081 } counter packets 0 bytes 0 accept"); an
// expression it does not know is shown as its JSON.
func (r NftRule) Text() string {
	words := make([]string, 0, len(r.Exprs)+1)
	for _, e := range r.Exprs {
		words = append(words, e.text())
	}
	if r.Comment != "" {
		words = append(words, "comment "+strconv.Quote(r.Comment))
	}
	return strings.Join(words, " ")
}

// text is one expression as nft lists it.
func (e NftExpr) text() string {
	var v map[string]json.RawMessage
	_ = json.Unmarshal(e.Value, &v) // null for accept, drop...
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(v[k], &s)
		return s
	}
	switch e.Kind {
	case "match":
		var m nftMatch
		if json.Unmarshal(e.Value, &m) == nil {
			return matchText(m)
		}
	case "accept", "drop", "return", "continue":
		return e.Kind
	case "jump", "goto":
		return e.Kind + " " + str("target")
	case "counter":
		if v != nil {
			return "counter packets " + string(v["packets"]) + " bytes " + string(v["bytes"])
		}
		return "counter"
	case "redirect":
		return strings.TrimSpace("redirect " + valueIf("to :", string(v["port"])))
	case "dnat", "snat":
		s := e.Kind
		if f := str("family"); f != "" {
			s += " " + f
		}
		s += " to " + str("addr")
		if v["port"] != nil {
			s += ":" + string(v["port"])
		}
		return s
	case "masquerade":
		return "masquerade"
	case "reject":
		return rejectText(v != nil, str("type"), str("expr"))
	case "log":
		return strings.TrimSpace("log " + valueIf("prefix ", str("prefix")))
	case "xt":
		return "xt " + str("type") + " " + str("name")
	}
	return e.Kind + " " + compactJSON(e.Value)
}

// valueIf is prefix and v (quoted where prefix names a string), or ""
// without v.
func valueIf(prefix, v string) string {
	switch {
	case v == "":
		return ""
	case prefix == "prefix ":
		return prefix + strconv.Quote(v)
	}
	return prefix + v
}

// rejectText is a reject as nft lists it: "reject" for its default (an
// ICMP port unreachable), else "reject with tcp reset"...
func rejectText(given bool, typ, code string) string {
	switch {
	case !given || typ == "icmpx" && code == "port-unreachable":
		return "reject"
	case code == "":
		return "reject with " + typ
	}
	return "reject with " + typ + " " + code
}

// unqualifiedMeta are the meta keys nft lists without "meta".
var unqualifiedMeta = map[string]bool{"iif": true, "oif": true, "iifname": true, "oifname": true, "iiftype": true, "oiftype": true,
	"skuid": true, "skgid": true, "pkttype": true, "cpu": true, "iifgroup": true, "oifgroup": true, "cgroup": true, "nftrace": true, "rtclassid": true}

// matchText is a match as nft lists it: "tcp dport 81",
// `iifname != "docker0"`, "ct state established,related".
func matchText(m nftMatch) string {
	var left struct {
		Payload *struct{ Protocol, Field string } `json:"payload"`
		Meta    *struct{ Key string }             `json:"meta"`
		Ct      *struct{ Key, Dir string }        `json:"ct"`
	}
	l, quote := "", false
	if json.Unmarshal(m.Left, &left) == nil {
		switch {
		case left.Payload != nil && left.Payload.Protocol != "":
			l = left.Payload.Protocol + " " + left.Payload.Field
		case left.Meta != nil:
			l, quote = "meta "+left.Meta.Key, strings.HasSuffix(left.Meta.Key, "name")
			if unqualifiedMeta[left.Meta.Key] {
				l = left.Meta.Key
			}
		case left.Ct != nil:
			l = strings.Join(strings.Fields("ct "+left.Ct.Dir+" "+left.Ct.Key), " ")
		}
	}
	if l == "" {
		l = compactJSON(m.Left)
	}
	op := ""
	if m.Op != "==" && m.Op != "in" {
		op = m.Op + " "
	}
	return l + " " + op + valueText(m.Right, quote)
}

// valueText is a value as nft lists it: 81, "docker0", { 81, 8081 },
// 80-90, 10.0.0.0/8, established,related.
func valueText(v json.RawMessage, quote bool) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		if quote {
			return strconv.Quote(s)
		}
		return s
	}
	var list []json.RawMessage
	if json.Unmarshal(v, &list) == nil {
		words := make([]string, len(list))
		for i, x := range list {
			words[i] = valueText(x, quote)
		}
		return strings.Join(words, ",")
	}
	var obj struct {
		Set    []json.RawMessage `json:"set"`
		Range  []json.RawMessage `json:"range"`
		Prefix *struct {
			Addr string `json:"addr"`
			Len  int    `json:"len"`
		} `json:"prefix"`
	}
	if json.Unmarshal(v, &obj) == nil {
		switch {
		case obj.Set != nil:
			words := make([]string, len(obj.Set))
			for i, x := range obj.Set {
				words[i] = valueText(x, quote)
			}
			return "{ " + strings.Join(words, ", ") + " }"
		case len(obj.Range) == 2:
			return valueText(obj.Range[0], quote) + "-" + valueText(obj.Range[1], quote)
		case obj.Prefix != nil:
			return obj.Prefix.Addr + "/" + strconv.Itoa(obj.Prefix.Len)
		}
	}
	return compactJSON(v)
}

func compactJSON(v json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		return string(v)
	}
	return b.String()
}
