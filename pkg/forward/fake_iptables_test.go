package forward

import (
	"fmt"
	"slices"
	"strings"
)

// fakeIPT is an in-memory iptables for unit tests: tables of chains of rule
// specs, with iptables' positions and errors.
type fakeIPT struct {
	chains map[string][]string // "table/chain" -> rules (joined specs)
	order  []string            // chain creation order, for stable dumps
	calls  int
}

var _ iptablesAPI = (*fakeIPT)(nil)

func newFakeIPT() *fakeIPT {
	f := &fakeIPT{chains: map[string][]string{}}
	for _, c := range []string{"nat/PREROUTING", "nat/INPUT", "nat/OUTPUT", "nat/POSTROUTING", "filter/INPUT", "filter/FORWARD", "filter/OUTPUT"} {
		f.chains[c] = nil
		f.order = append(f.order, c)
	}
	return f
}

func key(table, chain string) string { return table + "/" + chain }

func (f *fakeIPT) get(table, chain string) ([]string, error) {
	f.calls++
	rs, ok := f.chains[key(table, chain)]
	if !ok {
		return nil, fmt.Errorf("fake: chain %s/%s does not exist", table, chain)
	}
	return rs, nil
}

// checkTarget fails like iptables does for a rule whose -j names a chain
// that does not exist, even when only checking (-C) or deleting (-D).
func (f *fakeIPT) checkTarget(table string, spec []string) error {
	i := slices.Index(spec, "-j")
	if i < 0 || i+1 >= len(spec) {
		return nil
	}
	switch t := spec[i+1]; t {
	case "ACCEPT", "DROP", "RETURN", "REJECT", "REDIRECT", "MASQUERADE", "DNAT", "SNAT":
		return nil
	default:
		if _, ok := f.chains[key(table, t)]; !ok {
			return fmt.Errorf("fake: Couldn't load target `%s'", t)
		}
	}
	return nil
}

func (f *fakeIPT) Exists(table, chain string, spec ...string) (bool, error) {
	rs, err := f.get(table, chain)
	if err == nil {
		err = f.checkTarget(table, spec)
	}
	return err == nil && slices.Contains(rs, strings.Join(spec, " ")), err
}

func (f *fakeIPT) Insert(table, chain string, pos int, spec ...string) error {
	rs, err := f.get(table, chain)
	if err == nil {
		err = f.checkTarget(table, spec)
	}
	if err != nil {
		return err
	}
	f.chains[key(table, chain)] = slices.Insert(rs, pos-1, strings.Join(spec, " "))
	return nil
}

func (f *fakeIPT) Append(table, chain string, spec ...string) error {
	rs, err := f.get(table, chain)
	if err == nil {
		err = f.checkTarget(table, spec)
	}
	if err != nil {
		return err
	}
	f.chains[key(table, chain)] = append(rs, strings.Join(spec, " "))
	return nil
}

func (f *fakeIPT) DeleteIfExists(table, chain string, spec ...string) error {
	rs, err := f.get(table, chain)
	if err == nil {
		err = f.checkTarget(table, spec)
	}
	if err != nil {
		return err
	}
	if i := slices.Index(rs, strings.Join(spec, " ")); i >= 0 {
		f.chains[key(table, chain)] = slices.Delete(rs, i, i+1)
	}
	return nil
}

func (f *fakeIPT) DeleteById(table, chain string, id int) error {
	rs, err := f.get(table, chain)
	if err != nil {
		return err
	}
	if id < 1 || id > len(rs) {
		return fmt.Errorf("fake: no rule %d in %s/%s", id, table, chain)
	}
	f.chains[key(table, chain)] = slices.Delete(rs, id-1, id)
	return nil
}

// ListWithCounters renders rules like "iptables -S -v": "-A CHAIN spec -c
// PKTS BYTES", with counters that grow with position so tests can check
// they are summed.
func (f *fakeIPT) ListWithCounters(table, chain string) ([]string, error) {
	rs, err := f.get(table, chain)
	if err != nil {
		return nil, err
	}
	out := []string{"-N " + chain}
	for i, r := range rs {
		out = append(out, fmt.Sprintf("-A %s %s -c %d %d", chain, r, i+1, 60*(i+1)))
	}
	return out, nil
}

func (f *fakeIPT) ListChains(table string) ([]string, error) {
	f.calls++
	var out []string
	for _, k := range f.order {
		if t, c, _ := strings.Cut(k, "/"); t == table {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeIPT) NewChain(table, chain string) error {
	f.calls++
	k := key(table, chain)
	if _, ok := f.chains[k]; ok {
		return fmt.Errorf("fake: chain %s already exists", k)
	}
	f.chains[k] = nil
	f.order = append(f.order, k)
	return nil
}

func (f *fakeIPT) ClearAndDeleteChain(table, chain string) error {
	f.calls++
	k := key(table, chain)
	if _, ok := f.chains[k]; !ok {
		return nil
	}
	delete(f.chains, k)
	f.order = slices.DeleteFunc(f.order, func(s string) bool { return s == k })
	return nil
}

// dump renders the whole fake, chain by chain, for goldens.
func (f *fakeIPT) dump() string {
	var b strings.Builder
	for _, k := range f.order {
		fmt.Fprintf(&b, ":%s\n", k)
		for _, r := range f.chains[k] {
			fmt.Fprintf(&b, "  %s\n", r)
		}
	}
	return b.String()
}
