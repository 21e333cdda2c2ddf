package forward

// The jumps from the built-in chains to drainctl's: where they are, and
// what is wrong with them.

import (
	"fmt"
	"strings"
)

// jumpProblems checks that each of drainctl's chains exists and is jumped
// to exactly once, by the first rule of its built-in chain. A rule ahead of
// the jump could ACCEPT (or redirect) a connection drainctl means to refuse
// or to forward, so a jump in second place is a problem, not a detail.
func jumpProblems(fam string, tables map[string]*SaveTable) []string {
	var ps []string
	for _, h := range iptHooks {
		t := tables[h.table]
		if t == nil || !t.HasChain(h.chain) {
			ps = append(ps, fmt.Sprintf("%s: chain %s %s is missing", fam, h.table, h.chain))
			continue
		}
		pos := jumpPositions(t, h)
		switch {
		case len(pos) == 0:
			ps = append(ps, fmt.Sprintf("%s: no jump from %s %s to %s", fam, h.table, h.builtin, h.chain))
		case pos[0] != 0:
			ps = append(ps, fmt.Sprintf("%s: the jump to %s is rule %d of %s %s: the rules ahead of it can bypass drainctl", fam, h.chain, pos[0]+1, h.table, h.builtin))
		case len(pos) > 1:
			ps = append(ps, fmt.Sprintf("%s: %d jumps to %s in %s %s", fam, len(pos), h.chain, h.table, h.builtin))
		}
	}
	return ps
}

// jumpPositions lists the 0-based positions of drainctl's jumps in h's
// built-in chain.
func jumpPositions(t *SaveTable, h iptHook) []int {
	var pos []int
	for i, r := range t.Rules[h.builtin] {
		if r.Comment() == jumpComment && strings.HasSuffix(r.Spec, "-j "+h.chain) {
			pos = append(pos, i)
		}
	}
	return pos
}
