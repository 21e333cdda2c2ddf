package forward

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// holdFake is a test's iptables backend on two fake families, with
// what the hold tests ask of it.
type holdFake struct {
	t      *testing.T
	v4, v6 *fakeXT
	b      *iptForwarder
}

func newHoldFake(t *testing.T) *holdFake {
	v4, v6 := seeded(), seeded()
	return &holdFake{t: t, v4: v4, v6: v6, b: fakeBackend(v4, v6)}
}

func (h *holdFake) must(what string, err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatalf("%s: %v", what, err)
	}
}

func (h *holdFake) status(f Forward) Status {
	h.t.Helper()
	st, err := h.b.Status(context.Background())
	h.must("status", err)
	for _, s := range st {
		if s.Forward == f {
			return s
		}
	}
	return Status{Forward: f}
}

// holdRules are the hold rules of one family, in order.
func holdRules(x *fakeXT) []SaveRule {
	return slices.DeleteFunc(slices.Clone(x.tables["filter"].Rules[iptChainInput]), func(r SaveRule) bool {
		_, k, _ := parseComment(r.Comment())
		return k != kindHold && k != kindHoldListening
	})
}

// commands runs op and says how many iptables commands it ran.
func (h *holdFake) commands(what string, op func() error) int {
	h.t.Helper()
	calls := h.v4.calls + h.v6.calls
	h.must(what, op())
	return h.v4.calls + h.v6.calls - calls
}

// On the iptables backend, against the fake iptables: Hold installs the
// forward and adds one DROP per family in drainctl's filter chain;
// Release deletes it and nothing else; both are idempotent, and Release
// of a forward not installed installs nothing.
func TestIptablesFakeHoldAndRelease(t *testing.T) {
	h := newHoldFake(t)
	before := h.v4.dump()
	ctx := context.Background()
	f := Forward{81, 80}

	h.must("release of a forward not installed", h.b.Release(ctx, f))
	if h.v4.dump() != before {
		t.Fatalf("release of a forward not installed changed the rules:\n%s", h.v4.dump())
	}
	h.must("hold", h.b.Hold(ctx, f))
	for _, x := range []*fakeXT{h.v4, h.v6} {
		if hs := holdRules(x); len(hs) != 2 || !sameSpec(hs[0].Spec, iptSpec(f, kindHoldListening)) || !sameSpec(hs[1].Spec, iptSpec(f, kindHold)) {
			t.Fatalf("hold rules %+v, want, in this order:\n%s\n%s", hs, iptSpec(f, kindHoldListening), iptSpec(f, kindHold))
		}
	}
	if s := h.status(f); !s.Applied || !s.Held || s.Withdrawn || s.Rules != 8 || s.Want != 8 || s.State() != "in-service, held" {
		t.Fatalf("held: status = %+v, want applied, held, in service, 8/8 rules", s)
	}
	if n := h.commands("hold again", func() error { return h.b.Hold(ctx, f) }); n != 2 {
		t.Fatalf("hold of a held forward ran %d commands, want the 2 saves", n)
	}
	h.must("release", h.b.Release(ctx, f))
	if s := h.status(f); s.Held || s.Rules != 4 || s.Want != 4 || s.State() != "in-service" {
		t.Fatalf("released: status = %+v, want in service, not held, 4/4 rules", s)
	}
	if len(holdRules(h.v4))+len(holdRules(h.v6)) != 0 {
		t.Fatalf("released, but hold rules are left:\n%s", h.v4.dump())
	}
	if n := h.commands("release again", func() error { return h.b.Release(ctx, f) }); n != 2 {
		t.Fatalf("release of a released forward ran %d commands, want the 2 saves", n)
	}
}

// Apply, Withdraw and Restore keep a hold (its counters too: they edit
// the chain rule by rule), of the forward they change only, and complete
// it where half is lost rather than keep half.
func TestIptablesFakeHoldKept(t *testing.T) {
	h := newHoldFake(t)
	ctx := context.Background()
	f, g := Forward{81, 80}, Forward{444, 443}
	h.must("hold", h.b.Hold(ctx, f))
	h.v4.count(3)
	h.v6.count(3)
	h.must("apply another", h.b.Apply(ctx, g))
	for _, op := range []struct {
		name string
		do   func(context.Context, ...Forward) error
	}{{"withdraw", h.b.Withdraw}, {"restore", h.b.Restore}, {"apply", h.b.Apply}} {
		h.must(op.name, op.do(ctx, f))
		if s := h.status(f); !s.Held || s.Rules != s.Want {
			t.Fatalf("after %s, status = %+v, want still held", op.name, s)
		}
		if hs := holdRules(h.v4); len(hs) != 2 || hs[1].Packets() != 3 {
			t.Fatalf("after %s, hold rules %+v, want the same two, their counters kept", op.name, hs)
		}
	}
	if s := h.status(g); s.Held {
		t.Fatalf("%s held too: %+v", g, s)
	}
	// Someone deletes the IPv6 hold rules: not held, partial; the next
	// change completes the hold.
	h.v6.tables["filter"].Rules[iptChainInput] = nil
	if s := h.status(f); s.Held || s.State() != "partial" {
		t.Fatalf("with the IPv6 hold rules gone, status = %+v, want partial and not held", s)
	}
	h.must("restore", h.b.Restore(ctx, f))
	if s := h.status(f); !s.Held || s.State() != "in-service, held" {
		t.Fatalf("after restore, status = %+v, want held and in service", s)
	}
	// The hold's RETURN moved behind its DROP passes nothing: status says
	// so, and the next change puts it first.
	rs := h.v4.tables["filter"].Rules[iptChainInput]
	i := slices.IndexFunc(rs, func(r SaveRule) bool { return strings.HasSuffix(r.Comment(), ":hold-listening") })
	rs[i], rs[i+1] = rs[i+1], rs[i]
	if s := h.status(f); s.Held || !strings.Contains(strings.Join(s.Problems, " "), "comes after its DROP") {
		t.Fatalf("with the hold's RETURN behind its DROP, status = %+v", s)
	}
	h.must("apply", h.b.Apply(ctx, f))
	if hs := holdRules(h.v4); len(hs) != 2 || !strings.HasSuffix(hs[0].Comment(), ":hold-listening") {
		t.Fatalf("after apply, hold rules %+v, want the RETURN first", hs)
	}
	if s := h.status(f); !s.Held || len(s.Problems) != 0 {
		t.Fatalf("after apply, status = %+v, want held, no problem", s)
	}
}

// Remove deletes the hold rules of the forwards it removes, and with all
// removed leaves the host as it was.
func TestIptablesFakeHoldRemoved(t *testing.T) {
	h := newHoldFake(t)
	before := h.v4.dump()
	ctx := context.Background()
	f, g := Forward{81, 80}, Forward{444, 443}
	h.must("hold", h.b.Hold(ctx, f, g))
	h.must("withdraw", h.b.Withdraw(ctx, f))
	h.must("remove one", h.b.Remove(ctx, f))
	if hs := holdRules(h.v4); len(hs) != 2 || !strings.Contains(hs[0].Comment()+hs[1].Comment(), g.String()) || strings.Contains(hs[0].Comment()+hs[1].Comment(), f.String()) {
		t.Fatalf("after removing %s, hold rules %+v, want %s's only", f, hs, g)
	}
	h.must("remove all", h.b.Remove(ctx))
	if after := h.v4.dump(); after != before {
		t.Fatalf("remove left the host changed:\n--- before\n%s--- after\n%s", before, after)
	}
}

func TestSummarizeHeld(t *testing.T) {
	f := Forward{81, 80}
	for _, tc := range []struct {
		kinds      []ruleKind
		held       bool
		state      string
		rules, max int
	}{
		{[]ruleKind{kindPre, kindOut}, false, "in-service", 2, 2},
		{[]ruleKind{kindPre, kindOut, kindHoldListening, kindHold}, true, "in-service, held", 4, 4},
		{[]ruleKind{kindPre, kindOut, kindWithdraw, kindWithdrawOut, kindHoldListening, kindHold}, true, "withdrawn, held", 6, 6},
		{[]ruleKind{kindPre, kindOut, kindHold}, false, "partial", 3, 4},
		{[]ruleKind{kindHoldListening, kindHold}, true, "partial", 2, 4},
	} {
		var rs []found
		for _, k := range tc.kinds {
			rs = append(rs, found{fwd: f, kind: k})
		}
		st := summarize(rs, nftLayout, true)
		if len(st) != 1 || st[0].Held != tc.held || st[0].State() != tc.state || st[0].Rules != tc.rules || st[0].Want != tc.max {
			t.Errorf("rules %v: %+v, want held %v, %s, %d/%d rules", tc.kinds, st, tc.held, tc.state, tc.rules, tc.max)
		}
	}
}

// doctor judges other software's rules that name the forward or service
// port, and skips drainctl's own by Drainctl(): the hold's DROP of the
// service port must be drainctl's in every form doctor reads, or doctor
// would report drainctl's hold as something dropping the service port.
func TestHoldRulesAreDrainctls(t *testing.T) {
	// iptables-save (iptables-nft 1.8.9 and iptables-legacy print the same).
	save, err := ParseSave("*filter\n:INPUT ACCEPT [0:0]\n:" + iptChainInput + " - [0:0]\n" +
		"-A INPUT -m comment --comment \"" + jumpComment + "\" -j " + iptChainInput + "\n" +
		"-A " + iptChainInput + " ! -i lo -p tcp -m conntrack --ctstate NEW --ctorigdstport 80 -m socket --nowildcard -m comment --comment \"drainctl:81:80:hold-listening\" -j RETURN\n" +
		"-A " + iptChainInput + " ! -i lo -p tcp -m conntrack --ctstate NEW --ctorigdstport 80 -m comment --comment \"drainctl:81:80:hold\" -j DROP\nCOMMIT\n")
	if err != nil {
		t.Fatal(err)
	}
	rules := save.All()
	if len(rules) != 3 {
		t.Fatalf("rules %+v", rules)
	}
	for i, k := range []ruleKind{kindHoldListening, kindHold} {
		h := rules[i+1]
		if !h.Drainctl() || h.Drops() != (k == kindHold) || !sameSpec(h.Spec, iptSpec(Forward{81, 80}, k)) {
			t.Errorf("hold rule %q: drainctl's %v, drops %v; want drainctl's, and the spec the backend writes", h.Line(), h.Drainctl(), h.Drops())
		}
		if f, got, ok := parseComment(h.Comment()); !ok || f != (Forward{81, 80}) || got != k {
			t.Errorf("hold comment read as %v %s %v, want %s", f, got, ok, k)
		}
	}
	if n := countLegacy([]*SaveRules{save}); n != 0 {
		t.Errorf("rules of other software: %d, want 0", n)
	}

	// nft -j list ruleset (nft 1.0.6): the nftables backend's hold, and
	// iptables-nft's as nft lists it.
	r, err := ParseNftJSON([]byte(`{"nftables": [
{"rule": {"family": "inet", "table": "drainctl", "chain": "withdraw-in", "handle": 9, "comment": "drainctl:81:80:hold-listening", "expr": [
  {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80}},
  {"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "lo"}},
  {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}},
  {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}},
  {"match": {"op": "==", "left": {"socket": {"key": "transparent"}}, "right": 0}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "drainctl", "chain": "withdraw-in", "handle": 10, "comment": "drainctl:81:80:hold", "expr": [
  {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 80}},
  {"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "lo"}},
  {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}},
  {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}},
  {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}},
{"rule": {"family": "ip", "table": "filter", "chain": "DRAINCTL-INPUT", "handle": 5, "expr": [
  {"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "lo"}},
  {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
  {"xt": {"type": "match", "name": "conntrack"}}, {"xt": {"type": "match", "name": "socket"}}, {"xt": {"type": "match", "name": "comment"}},
  {"counter": {"packets": 0, "bytes": 0}}, {"return": null}]}},
{"rule": {"family": "ip", "table": "filter", "chain": "DRAINCTL-INPUT", "handle": 6, "expr": [
  {"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "lo"}},
  {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
  {"xt": {"type": "match", "name": "conntrack"}}, {"xt": {"type": "match", "name": "comment"}},
  {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}}
]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rules) != 4 {
		t.Fatalf("rules %+v", r.Rules)
	}
	for i, rule := range r.Rules {
		if !rule.Drainctl() || rule.Drops() != (i%2 == 1) {
			t.Errorf("%s %s: %s: drainctl's %v, drops %v; want drainctl's", rule.Table, rule.Chain, rule.Text(), rule.Drainctl(), rule.Drops())
		}
	}
}
