package forward

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// fakeXT is an in-memory iptables for unit tests, reached the way the
// backend reaches the real one: a save dump out, a restore batch in,
// applied by applyBatch (whole, or not at all).
type fakeXT struct {
	tables map[string]*SaveTable // chains built-ins first, then sorted, as dumps list them
	calls  int
	// gen, when set, is the nftables generation: each restore moves it by
	// one per table, as iptables-nft-restore does. onRestore runs after.
	gen       *uint32
	onRestore func()
}

var _ xtables = (*fakeXT)(nil)

var fakeTables = []string{"filter", "nat"}

func newFakeXT() *fakeXT {
	f := &fakeXT{tables: map[string]*SaveTable{}}
	for _, t := range fakeTables {
		f.tables[t] = newSaveTable(t)
		f.tables[t].Chains = builtins(t)
	}
	return f
}

// add appends a rule of other software, as a test's setup.
func (f *fakeXT) add(table, chain, spec string) {
	f.tables[table].Rules[chain] = append(f.tables[table].Rules[chain], SaveRule{Chain: chain, Counters: "[0:0]", Spec: spec})
}

// rule is the spec of a chain's i-th rule, or "".
func (f *fakeXT) rule(table, chain string, i int) string {
	if rs := f.tables[table].Rules[chain]; i < len(rs) {
		return rs[i].Spec
	}
	return ""
}

func (f *fakeXT) StartSave(context.Context) (func() (string, error), error) {
	f.calls++
	out := f.dump()
	return func() (string, error) { return out, nil }, nil
}

func (f *fakeXT) StartRestore(_ context.Context, batch string) (func() error, error) {
	f.calls++
	next, err := applyBatch(f.tables, batch)
	if err == nil {
		for _, t := range fakeTables {
			slices.Sort(next[t].Chains[len(builtins(t)):])
		}
		f.tables = next
		if f.gen != nil {
			*f.gen += uint32(strings.Count(batch, "COMMIT\n"))
		}
		if f.onRestore != nil {
			f.onRestore()
		}
	}
	return func() error { return err }, nil
}

func builtins(table string) []string {
	if table == "nat" {
		return []string{"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}
	}
	return []string{"INPUT", "FORWARD", "OUTPUT"}
}

func (f *fakeXT) dump() string {
	var b strings.Builder
	for _, name := range fakeTables {
		t := f.tables[name]
		fmt.Fprintf(&b, "*%s\n", name)
		for _, c := range t.Chains {
			policy := "-"
			if slices.Contains(builtins(name), c) {
				policy = "ACCEPT"
			}
			fmt.Fprintf(&b, ":%s %s [0:0]\n", c, policy)
		}
		for _, c := range t.Chains {
			for _, r := range t.Rules[c] {
				fmt.Fprintf(&b, "%s -A %s %s\n", r.Counters, c, r.Spec)
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// count sets every rule's packet counter to n, as traffic would.
func (f *fakeXT) count(n int) {
	for _, t := range f.tables {
		for _, rs := range t.Rules {
			for i := range rs {
				rs[i].Counters = fmt.Sprintf("[%d:%d]", n, 60*n)
			}
		}
	}
}
