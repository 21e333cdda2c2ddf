package forward

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Forward
		wantErr string
	}{
		{in: "81:80", want: Forward{81, 80}},
		{in: " 444 : 443 ", want: Forward{444, 443}},
		{in: "81", wantErr: "want FROM:TO"},
		{in: "0:80", wantErr: "between 1 and 65535"},
		{in: "81:70000", wantErr: "between 1 and 65535"},
		{in: "http:80", wantErr: `forward port "http"`},
		{in: "81:-1", wantErr: `service port "-1"`},
		{in: "80:80", wantErr: "must differ"},
	} {
		got, err := Parse(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%q) error = %v, want it to contain %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestCheckSet(t *testing.T) {
	for _, tc := range []struct {
		fs      []Forward
		wantErr string
	}{
		{fs: []Forward{{81, 80}, {444, 443}}},
		{fs: nil, wantErr: "no forward given"},
		{fs: []Forward{{81, 80}, {81, 80}}, wantErr: "given twice"},
		{fs: []Forward{{81, 80}, {81, 8080}}, wantErr: "already forwarded by 81:80"},
		{fs: []Forward{{81, 80}, {80, 8080}}, wantErr: "also a service port"},
		{fs: []Forward{{81, 0}}, wantErr: "between 1 and 65535"},
	} {
		err := CheckSet(tc.fs)
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("CheckSet(%v) = %v, want error containing %q", tc.fs, err, tc.wantErr)
		}
	}
}

func TestCommentRoundTrip(t *testing.T) {
	for _, k := range []ruleKind{kindPre, kindOut, kindWithdraw, kindWithdrawOut, kindWithdrawNat, kindWithdrawNatOut, kindHold} {
		f := Forward{65535, 1}
		gf, gk, ok := parseComment(ruleComment(f, k))
		if !ok || gf != f || gk != k {
			t.Errorf("round trip of %v %s = %v %s %v", f, k, gf, gk, ok)
		}
	}
	for _, c := range []string{"", jumpComment, CommentPrefix + "81:80:bogus", "other:81:80:withdraw", CommentPrefix + "x:80:withdraw"} {
		if _, _, ok := parseComment(c); ok {
			t.Errorf("parseComment(%q) accepted a comment drainctl does not write", c)
		}
	}
}

func TestChoose(t *testing.T) {
	for _, tc := range []struct {
		name string
		host HostRules
		want string
	}{
		{"nftables", HostRules{IptablesCmd: true, Legacy: 9}, BackendNftables},
		{"iptables-legacy", HostRules{}, BackendIptablesLegacy},
		{"", HostRules{}, BackendNftables},
		{"auto", HostRules{IptablesCmd: false, Legacy: 5}, BackendNftables},
		{"auto", HostRules{IptablesCmd: true}, BackendNftables},
		{"auto", HostRules{IptablesCmd: true, Legacy: 5, IptablesNft: 2}, BackendIptablesLegacy},
		{"auto", HostRules{IptablesCmd: true, Legacy: 1, IptablesNft: 7}, BackendIptablesNft},
		{"auto", HostRules{IptablesCmd: true, IptablesNft: 3, Native: 2}, BackendIptablesNft},
		{"auto", HostRules{IptablesCmd: true, IptablesNft: 3, Native: 40}, BackendNftables},
		// Where drainctl's rules are, they stay: a held server's rules do
		// not move because Docker added iptables-legacy rules.
		{"auto", HostRules{IptablesCmd: true, Legacy: 50, Drainctl: []string{BackendNftables}}, BackendNftables},
		{"auto", HostRules{IptablesCmd: true, Legacy: 50, Recorded: BackendIptablesNft}, BackendIptablesNft},
		{"auto", HostRules{IptablesCmd: true, Recorded: BackendIptablesNft, Drainctl: []string{BackendNftables}}, BackendIptablesNft},
		{"auto", HostRules{IptablesCmd: true, Legacy: 50, Drainctl: []string{BackendNftables, BackendIptablesNft}}, BackendIptablesLegacy},
		{"auto", HostRules{IptablesCmd: false, Recorded: BackendIptablesNft}, BackendNftables},
		{"nftables", HostRules{IptablesCmd: true, Recorded: BackendIptablesNft}, BackendNftables},
	} {
		c, err := Choose(tc.name, tc.host)
		if err != nil || c.Backend != tc.want || c.Reason == "" {
			t.Errorf("Choose(%q, %+v) = %+v, %v; want %s with a reason", tc.name, tc.host, c, err, tc.want)
		}
	}
	if _, err := Choose("ipfw", HostRules{}); err == nil || !strings.Contains(err.Error(), "want one of auto, nftables") {
		t.Errorf("Choose(ipfw) error = %v, want the list of backends", err)
	}
}

// seeded returns a fake with rules of other software in the chains
// drainctl hooks into.
func seeded() *fakeXT {
	f := newFakeXT()
	f.add("nat", "PREROUTING", "-p tcp -m tcp --dport 8080 -j REDIRECT --to-ports 8081")
	f.add("filter", "INPUT", "-p tcp -m tcp --dport 22 -j ACCEPT")
	return f
}

func fakeBackend(fams ...*fakeXT) *iptForwarder {
	var fs []*iptFamily
	for i, f := range fams {
		fs = append(fs, &iptFamily{name: []string{"ipv4", "ipv6"}[i], x: f})
	}
	return newIptables("iptables-fake", fs, nil)
}

func TestIptablesFakeGolden(t *testing.T) {
	v4, v6 := seeded(), seeded()
	b := fakeBackend(v4, v6)
	ctx := context.Background()
	if err := b.Withdraw(ctx, Forward{81, 80}, Forward{444, 443}); err != nil {
		t.Fatal(err)
	}
	if v4.dump() != v6.dump() {
		t.Errorf("IPv4 and IPv6 rules differ:\n%s\n%s", v4.dump(), v6.dump())
	}
	golden(t, "iptables-fake.golden", v4.dump())
	// Jumps run before other software's rules, so an ACCEPT cannot bypass.
	for _, c := range []string{"nat/PREROUTING", "nat/OUTPUT", "filter/INPUT"} {
		table, chain, _ := strings.Cut(c, "/")
		if first := v4.rule(table, chain, 0); !strings.Contains(first, jumpComment) {
			t.Errorf("%s starts with %q, want drainctl's jump", c, first)
		}
	}
}

func TestIptablesFakeIdempotentAndRemove(t *testing.T) {
	v4 := seeded()
	before := v4.dump()
	b := fakeBackend(v4)
	ctx := context.Background()
	fs := []Forward{{81, 80}, {444, 443}}
	for _, op := range []func(context.Context, ...Forward) error{b.Apply, b.Withdraw, b.Apply, b.Restore} {
		if err := op(ctx, fs...); err != nil {
			t.Fatal(err)
		}
		once := v4.dump()
		calls := v4.calls
		if err := op(ctx, fs...); err != nil {
			t.Fatal(err)
		}
		if twice := v4.dump(); twice != once {
			t.Fatalf("operation twice changed rules:\n%s\n---\n%s", once, twice)
		}
		if v4.calls != calls+1 {
			t.Fatalf("an operation with nothing to change ran %d commands, want 1 (the save)", v4.calls-calls)
		}
	}
	if err := b.Remove(ctx, fs[1]); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.Status(ctx); len(st) != 1 || st[0].Forward != fs[0] || st[0].State() != "in-service" {
		t.Fatalf("status after removing one forward = %+v", st)
	}
	if err := b.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(ctx); err != nil {
		t.Fatalf("remove when nothing is installed: %v", err)
	}
	if after := v4.dump(); after != before {
		t.Fatalf("remove left the host changed:\n--- before\n%s--- after\n%s", before, after)
	}
}

func TestIptablesFakeStatusAndRepair(t *testing.T) {
	v4, v6 := newFakeXT(), newFakeXT()
	b := fakeBackend(v4, v6)
	ctx := context.Background()
	f := Forward{81, 80}
	if err := b.Withdraw(ctx, f); err != nil {
		t.Fatal(err)
	}
	v4.count(1)
	v6.count(1)
	st, err := b.Status(ctx)
	if err != nil || len(st) != 1 {
		t.Fatalf("status = %+v, %v", st, err)
	}
	s := st[0]
	// Per family: two redirects, two nat RETURNs and the filter REJECT,
	// one packet each; a refused SYN passes a RETURN and the REJECT and
	// is counted once.
	if !s.Applied || !s.Withdrawn || s.Rules != 10 || s.Want != 10 || s.Redirected != 4 || s.Refused != 4 {
		t.Fatalf("status = %+v, want applied, withdrawn, 10/10 rules, 4 redirected, 4 refused", s)
	}

	// Someone deletes the IPv6 withdraw rules: withdrawn no longer holds.
	v6.tables["filter"].Rules[iptChainInput] = nil
	if st, _ := b.Status(ctx); st[0].Withdrawn || st[0].State() != "partial" {
		t.Fatalf("after losing the IPv6 withdraw rule, status = %+v, want partial and not withdrawn", st[0])
	}
	// An ACCEPT is inserted ahead of the jump: status says so, and the
	// next change puts the jump first again.
	v4.tables["filter"].Rules["INPUT"] = append([]SaveRule{{Chain: "INPUT", Counters: "[0:0]", Spec: "-p tcp -m tcp --dport 80 -j ACCEPT"}}, v4.tables["filter"].Rules["INPUT"]...)
	if st, _ := b.Status(ctx); st[0].Withdrawn || st[0].State() != "partial" || !strings.Contains(strings.Join(st[0].Problems, "\n"), "rule 2 of filter INPUT") {
		t.Fatalf("with an ACCEPT ahead of the jump, status = %+v, want partial naming the jump's position", st[0])
	}
	// A duplicate of a redirect appears (a second tool, an old version).
	dup := SaveRule{Chain: iptChainPre, Counters: "[0:0]", Spec: iptSpec(f, kindPre)}
	v4.tables["nat"].Rules[iptChainPre] = append(v4.tables["nat"].Rules[iptChainPre], dup)
	// A flush removes the jump: nothing is applied any more.
	v4.tables["nat"].Rules["PREROUTING"] = nil
	if st, _ := b.Status(ctx); st[0].Applied {
		t.Fatalf("with the PREROUTING jump gone, status = %+v, want not applied", st[0])
	}
	if err := b.Withdraw(ctx, f); err != nil {
		t.Fatal(err)
	}
	if n := len(v4.tables["nat"].Rules[iptChainPre]); n != 2 {
		t.Errorf("duplicate redirect not cleaned up: %d rules, want the RETURN and one REDIRECT", n)
	}
	if first := v4.rule("filter", "INPUT", 0); !strings.Contains(first, jumpComment) {
		t.Errorf("after repair filter INPUT starts with %q, want drainctl's jump", first)
	}
	if st, _ := b.Status(ctx); !st[0].Applied || !st[0].Withdrawn || st[0].Rules != 10 || len(st[0].Problems) != 0 {
		t.Fatalf("after repair, status = %+v, want applied and withdrawn with 10 rules", st[0])
	}
	if err := b.Restore(ctx, f); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.Status(ctx); st[0].State() != "in-service" || st[0].Want != 4 {
		t.Fatalf("after restore, status = %+v, want in-service with 4 rules", st[0])
	}
}

// An upgrade from a version that withdrew with the filter REJECT alone
// keeps the forward withdrawn and adds the nat RETURNs.
func TestIptablesFakeOldWithdrawStaysWithdrawn(t *testing.T) {
	v4 := newFakeXT()
	b := fakeBackend(v4)
	ctx := context.Background()
	f := Forward{81, 80}
	if err := b.Withdraw(ctx, f); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{iptChainPre, iptChainOut} {
		v4.tables["nat"].Rules[c] = v4.tables["nat"].Rules[c][1:] // drop the RETURN
	}
	if err := b.Apply(ctx, f); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.Status(ctx); !st[0].Withdrawn || st[0].State() != "withdrawn" {
		t.Fatalf("after apply, status = %+v, want withdrawn", st[0])
	}
	// A RETURN moved behind its REDIRECT bypasses nothing: status says
	// so, and the next change puts it first.
	rs := v4.tables["nat"].Rules[iptChainPre]
	rs[0], rs[1] = rs[1], rs[0]
	if st, _ := b.Status(ctx); st[0].Withdrawn || !strings.Contains(strings.Join(st[0].Problems, " "), "comes after its REDIRECT") {
		t.Fatalf("with the RETURN behind the REDIRECT, status = %+v", st[0])
	}
	if err := b.Withdraw(ctx, f); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.Status(ctx); st[0].State() != "withdrawn" || !strings.Contains(v4.rule("nat", iptChainPre, 0), "withdraw-nat-in") {
		t.Fatalf("after withdraw, status = %+v:\n%s", st[0], v4.dump())
	}
}

func TestIptablesFakeBadInputChangesNothing(t *testing.T) {
	v4 := seeded()
	before := v4.dump()
	b := fakeBackend(v4)
	for _, fs := range [][]Forward{nil, {{81, 81}}, {{81, 80}, {81, 8080}}} {
		if err := b.Apply(context.Background(), fs...); err == nil {
			t.Errorf("Apply(%v) accepted bad input", fs)
		}
	}
	if v4.calls != 0 || v4.dump() != before {
		t.Fatalf("bad input ran %d iptables commands", v4.calls)
	}
}

func TestSummarizeStates(t *testing.T) {
	f := Forward{81, 80}
	for _, tc := range []struct {
		kinds []ruleKind
		want  string
	}{
		{nil, "absent"},
		{[]ruleKind{kindPre}, "partial"},
		{[]ruleKind{kindPre, kindOut}, "in-service"},
		{[]ruleKind{kindPre, kindOut, kindWithdraw}, "partial"},
		{[]ruleKind{kindPre, kindOut, kindWithdraw, kindWithdrawOut}, "withdrawn"},
	} {
		var rs []found
		for _, k := range tc.kinds {
			rs = append(rs, found{fwd: f, kind: k})
		}
		st := summarize(rs, nftLayout, true)
		got := "absent"
		if len(st) == 1 {
			got = st[0].State()
		}
		if got != tc.want {
			t.Errorf("rules %v: state %s, want %s", tc.kinds, got, tc.want)
		}
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("..", "..", "testdata", "forward", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if got != string(want) {
		t.Fatalf("differs from %s (run with -update if intended):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// With iptables-nft, a change reads the rules from what the backend knows
// while the nftables generation shows no other commit: no iptables-save.
// Any other commit makes it read afresh, and an external change between
// two operations is seen.
func TestIptablesCacheFollowsTheGeneration(t *testing.T) {
	gen := uint32(7)
	v4, v6 := newFakeXT(), newFakeXT()
	v4.gen, v6.gen = &gen, &gen
	b := fakeBackend(v4, v6)
	b.generation = func() (uint32, error) { return gen, nil }
	ctx := context.Background()
	f := Forward{81, 80}
	calls := func() int { return v4.calls + v6.calls }

	c := calls()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.Withdraw(ctx, f))
	if got := calls() - c; got != 4 {
		t.Fatalf("first withdraw ran %d commands, want 2 saves and 2 restores", got)
	}
	c = calls()
	must(b.Restore(ctx, f))
	if got := calls() - c; got != 2 {
		t.Fatalf("restore with nothing else changed ran %d commands, want the 2 restores only", got)
	}
	c = calls()
	must(b.Restore(ctx, f))
	if got := calls() - c; got != 0 {
		t.Fatalf("restore of a restored forward ran %d commands, want none", got)
	}

	// Another process deletes the IPv4 REDIRECTs (one commit): the next
	// operation must see it and put them back.
	v4.tables["nat"].Rules[iptChainPre] = nil
	gen++
	c = calls()
	must(b.Restore(ctx, f))
	if got := calls() - c; got != 3 {
		t.Fatalf("after another process's change, restore ran %d commands, want 2 saves and the IPv4 restore", got)
	}
	if !strings.Contains(v4.rule("nat", iptChainPre, 0), "redirect-in") {
		t.Fatalf("the deleted REDIRECT was not put back:\n%s", v4.dump())
	}

	// A commit by someone else during an operation: the backend's view
	// after it cannot be trusted, and the next operation reads afresh.
	v6.onRestore = func() { gen++ }
	must(b.Withdraw(ctx, f))
	v6.onRestore = nil
	c = calls()
	must(b.Withdraw(ctx, f))
	if got := calls() - c; got != 2 {
		t.Fatalf("after a foreign commit during the last change, withdraw ran %d commands, want 2 saves", got)
	}
	if st, _ := b.Status(ctx); st[0].State() != "withdrawn" {
		t.Fatalf("status %+v", st[0])
	}
}
