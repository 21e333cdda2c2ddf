package forward

// The iptables backend's writer: the iptables-restore batch that turns
// drainctl's chains into the rules wanted, changing the usual withdraw or
// restore rule by rule.

import (
	"sort"
	"strings"
)

// iptBatch writes the iptables-restore input that turns tables into
// drainctl's rules for want (forward → withdrawn, held), or "" when they
// are so already. A chain whose content differs is declared (which, with
// --noflush, empties it) and written whole, in order, keeping the packet
// counters of the rules it keeps; the REDIRECT is re-added in the same
// transaction, so the NAT of live connections is never without a rule.
// With no forward left, the jumps and chains are deleted.
func iptBatch(tables map[string]*SaveTable, want map[Forward]iptState) string {
	fs := make([]Forward, 0, len(want))
	for f := range want {
		fs = append(fs, f)
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].From < fs[j].From })
	var out strings.Builder
	for _, table := range []string{"filter", "nat"} {
		t := tables[table]
		if t == nil {
			t = newSaveTable(table)
		}
		var decl, body []string
		for _, h := range iptHooks {
			if h.table != table {
				continue
			}
			pos := jumpPositions(t, h)
			if len(fs) == 0 {
				if !t.HasChain(h.chain) {
					continue
				}
				for range pos {
					body = append(body, "-D "+h.builtin+" "+jumpSpec(h.chain))
				}
				decl = append(decl, ":"+h.chain+" - [0:0]")
				body = append(body, "-X "+h.chain)
				continue
			}
			decl1, body1 := chainBatch(t, h, fs, want)
			decl = append(decl, decl1...)
			body = append(body, body1...)
			if len(pos) != 1 || pos[0] != 0 {
				for range pos {
					body = append(body, "-D "+h.builtin+" "+jumpSpec(h.chain))
				}
				body = append(body, "-I "+h.builtin+" 1 "+jumpSpec(h.chain))
			}
		}
		if len(decl)+len(body) == 0 {
			continue
		}
		out.WriteString("*" + table + "\n")
		for _, l := range append(decl, body...) {
			out.WriteString(l + "\n")
		}
		out.WriteString("COMMIT\n")
	}
	return out.String()
}

// chainBatch writes the lines that turn drainctl's chain h into the rules
// of fs (want: forward → withdrawn, held). The usual change, a withdraw,
// a restore, a hold or a release, only adds or deletes rules: a RETURN is
// inserted first in its chain (so before every REDIRECT), a REJECT or a
// hold's DROP appended, and a rule that
// must go deleted by what it is (its saved spec), so the REDIRECTs of
// live connections are never touched. Anything else (a chain missing,
// duplicates, a rule not drainctl's, a RETURN behind its REDIRECT) has the
// chain declared, which empties it, and written whole in order, keeping
// the counters of the rules it keeps.
func chainBatch(t *SaveTable, h iptHook, fs []Forward, want map[Forward]iptState) (decl, body []string) {
	wanted, order := wantedRules(h, fs, want)
	have, clean := chainRules(t, h)
	if clean {
		return nil, editChain(h, wanted, order, have)
	}
	return rewriteChain(h, wanted, order, have)
}

// wantedRules lists the rules chain h must hold for fs (want: forward →
// withdrawn, held), by comment, in the order a chain written whole has
// them.
func wantedRules(h iptHook, fs []Forward, want map[Forward]iptState) (wanted map[string]Forward, order []string) {
	wanted = map[string]Forward{}
	for _, f := range fs {
		for _, k := range iptOrder {
			if iptChainOf[k] == h && want[f].has(k) {
				c := ruleComment(f, k)
				wanted[c] = f
				order = append(order, c)
			}
		}
	}
	return wanted, order
}

// chainRules reads the rules chain h holds, by comment, and whether it
// can be changed rule by rule (clean): it exists, and holds only
// drainctl's rules, once each, no RETURN behind its REDIRECT or its
// hold's DROP.
func chainRules(t *SaveTable, h iptHook) (have map[string]SaveRule, clean bool) {
	have = map[string]SaveRule{}
	clean = t.HasChain(h.chain)
	redirectSeen, dropSeen := map[Forward]bool{}, map[Forward]bool{}
	for _, r := range t.Rules[h.chain] {
		c := r.Comment()
		f, k, ok := parseComment(c)
		if _, dup := have[c]; dup || !ok {
			clean = false
		}
		if ok && (k == kindPre || k == kindOut) {
			redirectSeen[f] = true
		}
		if ok && (k == kindWithdrawNat || k == kindWithdrawNatOut) && redirectSeen[f] {
			clean = false // a RETURN behind its REDIRECT bypasses nothing
		}
		if ok && k == kindHold {
			dropSeen[f] = true
		}
		if ok && k == kindHoldListening && dropSeen[f] {
			clean = false // so is a hold's RETURN behind its DROP
		}
		have[c] = r
	}
	return have, clean
}

// editChain writes the deletes (by saved spec) and the inserts and
// appends that turn a clean chain's rules (have) into the wanted ones.
func editChain(h iptHook, wanted map[string]Forward, order []string, have map[string]SaveRule) (body []string) {
	for c, r := range have {
		if _, ok := wanted[c]; !ok {
			body = append(body, "-D "+h.chain+" "+r.Spec)
		}
	}
	sort.Strings(body)
	for _, c := range order {
		if _, ok := have[c]; ok {
			continue
		}
		_, k, _ := parseComment(c)
		if k == kindWithdrawNat || k == kindWithdrawNatOut || k == kindHoldListening || k == kindHoldAll {
			body = append(body, "-I "+h.chain+" 1 "+iptSpec(wanted[c], k))
		} else {
			body = append(body, "-A "+h.chain+" "+iptSpec(wanted[c], k))
		}
	}
	return body
}

// rewriteChain declares chain h (which empties it) and writes the wanted
// rules in order, with the counters of those it already had.
func rewriteChain(h iptHook, wanted map[string]Forward, order []string, have map[string]SaveRule) (decl, body []string) {
	decl = []string{":" + h.chain + " - [0:0]"}
	for _, c := range order {
		cnt := "[0:0]"
		if r, ok := have[c]; ok && r.Counters != "" {
			cnt = r.Counters
		}
		_, k, _ := parseComment(c)
		body = append(body, cnt+" -A "+h.chain+" "+iptSpec(wanted[c], k))
	}
	return decl, body
}

// iptOrder is the order of a forward's rules in a chain written whole:
// the RETURN of a withdraw must come before the REDIRECT it bypasses, and
// the hold's RETURN before its DROP (the REJECT and the hold match
// different ports: their order does not matter). A hold-all comes
// first: it replaces the hold, and no RETURN may come before it.
var iptOrder = []ruleKind{kindWithdrawNat, kindPre, kindWithdrawNatOut, kindOut, kindHoldAll, kindWithdraw, kindHoldListening, kindHold}

// has says whether a forward in state s has a rule of kind k.
func (s iptState) has(k ruleKind) bool {
	switch k {
	case kindPre, kindOut:
		return true
	case kindHold, kindHoldListening:
		return s.held
	case kindHoldAll:
		return s.heldAll
	}
	return s.withdrawn
}
