package forward

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// fakeXT is an in-memory iptables for unit tests, reached the way the
// backend reaches the real one: a save dump out, a restore batch in. A
// batch is checked whole and applies entirely or not at all, like
// iptables-restore.
type fakeXT struct {
	tables map[string]*fakeTable
	calls  int
}

type fakeTable struct {
	order []string            // chains, built-ins first, in creation order
	rules map[string][]string // chain -> "[p:b] spec"
	user  map[string]bool     // user-defined chains
}

var _ xtables = (*fakeXT)(nil)

func newFakeXT() *fakeXT {
	f := &fakeXT{tables: map[string]*fakeTable{}}
	for t, chains := range map[string][]string{
		"filter": {"INPUT", "FORWARD", "OUTPUT"},
		"nat":    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	} {
		f.tables[t] = &fakeTable{order: chains, rules: map[string][]string{}, user: map[string]bool{}}
	}
	return f
}

// add appends a rule of other software, as a test's setup.
func (f *fakeXT) add(table, chain, spec string) {
	f.tables[table].rules[chain] = append(f.tables[table].rules[chain], "[0:0] "+spec)
}

func (f *fakeXT) Save(context.Context) (string, error) {
	f.calls++
	return f.dump(), nil
}

func (f *fakeXT) dump() string {
	var b strings.Builder
	for _, name := range []string{"filter", "nat"} {
		t := f.tables[name]
		fmt.Fprintf(&b, "*%s\n", name)
		for _, c := range t.order {
			policy := "ACCEPT"
			if t.user[c] {
				policy = "-"
			}
			fmt.Fprintf(&b, ":%s %s [0:0]\n", c, policy)
		}
		for _, c := range t.order {
			for _, r := range t.rules[c] {
				cnt, spec, _ := strings.Cut(r, " ")
				fmt.Fprintf(&b, "%s -A %s %s\n", cnt, c, spec)
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

func (t *fakeTable) clone() *fakeTable {
	c := &fakeTable{order: slices.Clone(t.order), rules: map[string][]string{}, user: map[string]bool{}}
	for k, v := range t.rules {
		c.rules[k] = slices.Clone(v)
	}
	for k, v := range t.user {
		c.user[k] = v
	}
	return c
}

var reInsert = regexp.MustCompile(`^-I (\S+) (\d+) (.*)$`)

func (f *fakeXT) Restore(_ context.Context, batch string) error {
	f.calls++
	next := map[string]*fakeTable{}
	for k, v := range f.tables {
		next[k] = v.clone()
	}
	var t *fakeTable
	exists := func(c string) bool { return slices.Contains(t.order, c) }
	for n, line := range strings.Split(strings.TrimSpace(batch), "\n") {
		bad := func(why string) error { return fmt.Errorf("fake iptables-restore: line %d %q: %s", n+1, line, why) }
		if t == nil && !strings.HasPrefix(line, "*") {
			return bad("outside a table")
		}
		cnt := "[0:0]"
		if strings.HasPrefix(line, "[") {
			cnt, line, _ = strings.Cut(line, " ")
		}
		switch {
		case strings.HasPrefix(line, "*"):
			t = next[line[1:]]
		case line == "COMMIT":
			t = nil
		case strings.HasPrefix(line, ":"):
			c, _, _ := strings.Cut(line[1:], " ")
			if !exists(c) {
				t.order = append(t.order, c)
				t.user[c] = true
			}
			t.rules[c] = nil // --noflush still flushes a declared chain
		case strings.HasPrefix(line, "-A "):
			c, spec, _ := strings.Cut(line[3:], " ")
			if !exists(c) {
				return bad("no such chain")
			}
			t.rules[c] = append(t.rules[c], cnt+" "+spec)
		case strings.HasPrefix(line, "-I "):
			m := reInsert.FindStringSubmatch(line)
			if m == nil || !exists(m[1]) || m[2] != "1" {
				return bad("bad insert")
			}
			t.rules[m[1]] = append([]string{cnt + " " + m[3]}, t.rules[m[1]]...)
		case strings.HasPrefix(line, "-D "):
			c, spec, _ := strings.Cut(line[3:], " ")
			i := slices.IndexFunc(t.rules[c], func(r string) bool { _, s, _ := strings.Cut(r, " "); return s == spec })
			if i < 0 {
				return bad("Bad rule (does a matching rule exist in that chain?)")
			}
			t.rules[c] = slices.Delete(t.rules[c], i, i+1)
		case strings.HasPrefix(line, "-X "):
			c := line[3:]
			if !t.user[c] || len(t.rules[c]) > 0 {
				return bad("cannot delete chain")
			}
			for _, rs := range t.rules {
				for _, r := range rs {
					if strings.HasSuffix(r, "-j "+c) {
						return bad("chain in use")
					}
				}
			}
			t.order = slices.DeleteFunc(t.order, func(s string) bool { return s == c })
			delete(t.rules, c)
			delete(t.user, c)
		default:
			return bad("not understood")
		}
	}
	if t != nil {
		return fmt.Errorf("fake iptables-restore: no COMMIT")
	}
	f.tables = next
	return nil
}

// count sets every rule's packet counter to n, as traffic would.
func (f *fakeXT) count(n int) {
	for _, t := range f.tables {
		for c, rs := range t.rules {
			for i, r := range rs {
				_, spec, _ := strings.Cut(r, " ")
				t.rules[c][i] = fmt.Sprintf("[%d:%d] %s", n, 60*n, spec)
			}
		}
	}
}
