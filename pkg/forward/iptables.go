package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// Chains drainctl creates with the iptables backend, each reached from the
// built-in chain by one jump rule carrying the comment jumpComment, first
// in that chain.
const (
	iptChainPre   = ChainPrefix + "PREROUTING" // nat: withdraw, then REDIRECT, from the network
	iptChainOut   = ChainPrefix + "OUTPUT"     // nat: the same for connections made on this host
	iptChainInput = ChainPrefix + "INPUT"      // filter: withdraw (reject NEW with a reset), hold (drop NEW)
	jumpComment   = CommentPrefix + "jump"
)

// iptHook is one of drainctl's chains and the built-in chain jumping to it.
type iptHook struct{ table, builtin, chain string }

var iptHooks = []iptHook{
	{"nat", "PREROUTING", iptChainPre},
	{"nat", "OUTPUT", iptChainOut},
	{"filter", "INPUT", iptChainInput},
}

// iptChainOf places each kind of rule in its chain.
var iptChainOf = map[ruleKind]iptHook{
	kindWithdrawNat:    iptHooks[0],
	kindPre:            iptHooks[0],
	kindWithdrawNatOut: iptHooks[1],
	kindOut:            iptHooks[1],
	kindWithdraw:       iptHooks[2],
	kindHold:           iptHooks[2],
	kindHoldListening:  iptHooks[2],
	kindHoldAll:        iptHooks[2],
}

// A withdrawn forward is refused twice over, and each way alone refuses:
//
//   - in nat, a RETURN ahead of the REDIRECT: a new connection to 81 is not
//     redirected and meets the closed port 81, which the kernel answers
//     with a reset. The nat table sees only the first packet of a
//     connection, so established ones keep their mapping; and no filter
//     rule of other software (an ACCEPT inserted ahead, ufw, a Docker host's
//     chains) can undo it, because the connection never reaches port 80.
//   - in filter INPUT, after NAT, a REJECT of NEW connections whose
//     conntrack original destination port is 81: a reset even where the
//     INPUT policy is DROP and port 81 is not allowed (the RETURN alone
//     would then leave the load balancer's check to time out).
//
// (REJECT is not allowed in nat, unlike nftables' filter chains at -150.)
var iptLayout = layout{
	apply:    []ruleKind{kindPre, kindOut},
	withdraw: []ruleKind{kindWithdrawNat, kindWithdrawNatOut, kindWithdraw},
	// A refused SYN passes the RETURN and then the REJECT: count it once.
	refused: []ruleKind{kindWithdrawNat, kindWithdrawNatOut},
	// A hold acts in filter INPUT, after NAT, on the conntrack original
	// destination port, so a connection to 81 (redirected to 80 by then)
	// is not held; a RETURN ahead of its DROP lets a connection pass when
	// a socket listens on the port.
	hold: []ruleKind{kindHoldListening, kindHold},
	// A hold-all is the DROP alone, instead of those two.
	holdAll: []ruleKind{kindHoldAll},
}

// iptState is what a forward's rules are to be: installed always,
// withdrawn and held (while nothing listens, or all) as told.
type iptState struct{ withdrawn, held, heldAll bool }

// iptFamily is one IP family's iptables.
type iptFamily struct {
	name string // "ipv4" or "ipv6"
	x    xtables
	// cache is the family's tables as of nftables generation gen
	// (iptables-nft only): a change reads them from it, without running
	// iptables-save, while the generation is still gen.
	cache map[string]*SaveTable
	gen   uint32
}

type iptForwarder struct {
	modal          // Apply, Withdraw and Restore: sync; Hold, HoldAll and Release: hold
	variant string // "iptables-nft" or "iptables-legacy"
	fams    []*iptFamily
	log     *slog.Logger
	// generation reads the nftables ruleset's generation; nil where it
	// says nothing about the rules (iptables-legacy).
	generation func() (uint32, error)
}

// NewIptables returns the iptables backend. variant is "nft" or "legacy" to
// pick iptables-nft or iptables-legacy, or "" for whatever the host's
// "iptables" command is. IPv6 rules are installed when the host has IPv6
// and an ip6tables command; otherwise the backend logs and works with IPv4.
//
// Rules are read with iptables-save and changed with one
// iptables-restore --noflush batch per family and change: atomic, and
// rules are deleted by what they are, never by position.
func NewIptables(variant string, log *slog.Logger) (Forwarder, error) {
	if log == nil {
		log = slog.Default()
	}
	v4, v6 := "iptables", "ip6tables"
	switch variant {
	case "":
	case "nft", "legacy":
		v4, v6 = v4+"-"+variant, v6+"-"+variant
	default:
		return nil, fmt.Errorf("iptables variant %q: want nft or legacy", variant)
	}
	// go-iptables finds the command and checks that it works here.
	ipt4, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4), iptables.Path(v4))
	if err != nil {
		return nil, fmt.Errorf("iptables backend: %s: %w", v4, err)
	}
	if _, err := ipt4.ListChains("filter"); err != nil {
		return nil, fmt.Errorf("iptables backend: %s cannot list rules: %w", v4, err)
	}
	mode, err := IptablesMode(context.Background(), v4)
	if err != nil {
		return nil, err
	}
	if variant == "" {
		// The save and restore commands of the same flavour as "iptables".
		v4, v6 = v4+"-"+mode, v6+"-"+mode
	}
	fams := []*iptFamily{{name: "ipv4", x: execXtables{v4 + "-save", v4 + "-restore"}}}
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		log.Warn("IPv6 is disabled on this host: installing IPv4 rules only")
	} else if _, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv6), iptables.Path(v6)); err != nil {
		log.Warn("no usable ip6tables: installing IPv4 rules only", "command", v6, "err", err)
	} else {
		fams = append(fams, &iptFamily{name: "ipv6", x: execXtables{v6 + "-save", v6 + "-restore"}})
	}
	b := newIptables("iptables-"+mode, fams, log)
	if mode == "nft" {
		b.generation = nftGeneration
	}
	return b, nil
}

func newIptables(variant string, fams []*iptFamily, log *slog.Logger) *iptForwarder {
	if log == nil {
		log = slog.Default()
	}
	b := &iptForwarder{variant: variant, fams: fams, log: log}
	b.modal = modal{b.sync, b.hold}
	return b
}

func (b *iptForwarder) Backend() string { return b.variant }

func (b *iptForwarder) Close() error { return nil }

// Rule specs, as iptables-save prints them, for 81:80:
//
//	nat DRAINCTL-PREROUTING (withdrawn only):
//	    -p tcp -m tcp --dport 81 -m comment --comment drainctl:81:80:withdraw-nat-in -j RETURN
//	nat DRAINCTL-PREROUTING:
//	    -p tcp -m tcp --dport 81 -m addrtype --dst-type LOCAL -m comment --comment drainctl:81:80:redirect-in -j REDIRECT --to-ports 80
//	nat DRAINCTL-OUTPUT: the same two, for connections made on the host
//	filter DRAINCTL-INPUT (withdrawn only):
//	    -p tcp -m conntrack --ctstate NEW --ctorigdstport 81 -m comment --comment drainctl:81:80:withdraw -j REJECT --reject-with tcp-reset
//	filter DRAINCTL-INPUT (held only; the RETURN first):
//	    ! -i lo -p tcp -m conntrack --ctstate NEW --ctorigdstport 80 -m socket --nowildcard -m comment --comment drainctl:81:80:hold-listening -j RETURN
//	    ! -i lo -p tcp -m conntrack --ctstate NEW --ctorigdstport 80 -m comment --comment drainctl:81:80:hold -j DROP
//	filter DRAINCTL-INPUT (held all only, instead of the two above):
//	    ! -i lo -p tcp -m conntrack --ctstate NEW --ctorigdstport 80 -m comment --comment drainctl:81:80:hold-all -j DROP
//
// "--dst-type LOCAL" limits the redirect to packets addressed to this host
// (INPUT sees only those). The hold's "! -i lo" leaves the host's own
// connections alone: a local check of a closed port fails at once. Its
// RETURN passes a connection some socket listens for (--nowildcard: a
// listener on every address too), so the hold drops only what would be
// refused.
func iptSpec(f Forward, k ruleKind) string {
	comment := "-m comment --comment " + ruleComment(f, k)
	switch k {
	case kindHoldListening:
		return fmt.Sprintf("! -i lo -p tcp -m conntrack --ctstate NEW --ctorigdstport %d -m socket --nowildcard %s -j RETURN", f.To, comment)
	case kindHold, kindHoldAll:
		return fmt.Sprintf("! -i lo -p tcp -m conntrack --ctstate NEW --ctorigdstport %d %s -j DROP", f.To, comment)
	case kindWithdraw:
		return fmt.Sprintf("-p tcp -m conntrack --ctstate NEW --ctorigdstport %d %s -j REJECT --reject-with tcp-reset", f.From, comment)
	case kindWithdrawNat, kindWithdrawNatOut:
		return fmt.Sprintf("-p tcp -m tcp --dport %d %s -j RETURN", f.From, comment)
	}
	return fmt.Sprintf("-p tcp -m tcp --dport %d -m addrtype --dst-type LOCAL %s -j REDIRECT --to-ports %d", f.From, comment, f.To)
}

func jumpSpec(chain string) string {
	return "-m comment --comment " + jumpComment + " -j " + chain
}

// iptView is what one family's save says about drainctl's rules.
type iptView struct {
	tables map[string]*SaveTable
	rules  []found
	// withdrawn holds the forwards with any withdraw rule: a forward
	// caught half-withdrawn is completed, never restored by accident.
	withdrawn map[Forward]bool
	// held holds the forwards with a hold rule in this family; heldAny,
	// set by converge, those with one in any family, so that a change
	// completes a hold half lost rather than keeping it half. heldAll and
	// heldAllAny: the same for the hold-all rule.
	held, heldAny       map[Forward]bool
	heldAll, heldAllAny map[Forward]bool
	forwards            map[Forward]bool
	// problems say why the rules do not work as installed: a chain or a
	// jump missing, or a jump that other rules come before.
	problems []string
}

// read reads every family's rules, the families' iptables-save at the
// same time. With cached, a family whose cache is as new as the ruleset
// (the nftables generation has not moved) is read from the cache; Status
// reads afresh for the packet counters. gen is the generation the views
// are as of, when genOK.
func (b *iptForwarder) read(ctx context.Context, cached bool) (views []*iptView, gen uint32, genOK bool, err error) {
	if b.generation != nil {
		gen, err = b.generation()
		genOK = err == nil
	}
	views = make([]*iptView, len(b.fams))
	waits := make([]func() (string, error), len(b.fams))
	for i, fam := range b.fams {
		if cached && genOK && fam.cache != nil && fam.gen == gen {
			views[i] = b.view(fam.name, fam.cache)
			continue
		}
		if waits[i], err = fam.x.StartSave(ctx); err != nil {
			break
		}
	}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for i, wait := range waits {
		if wait == nil {
			continue
		}
		fam := b.fams[i]
		fam.cache = nil
		text, err := wait()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: read rules: %w", fam.name, err))
			continue
		}
		save, err := ParseSave(text)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", fam.name, err))
			continue
		}
		views[i] = b.view(fam.name, save.Tables)
		if genOK {
			fam.cache, fam.gen = save.Tables, gen
		}
	}
	return views, gen, genOK, errors.Join(errs...)
}

// view finds drainctl's rules in one family's tables.
func (b *iptForwarder) view(fam string, tables map[string]*SaveTable) *iptView {
	v := &iptView{tables: tables, withdrawn: map[Forward]bool{}, held: map[Forward]bool{}, heldAll: map[Forward]bool{}, forwards: map[Forward]bool{}}
	var misplaced []string
	for _, h := range iptHooks {
		t := tables[h.table]
		if t == nil || !t.HasChain(h.chain) {
			continue
		}
		redirected, dropped := map[Forward]bool{}, map[Forward]bool{}
		for _, r := range t.Rules[h.chain] {
			f, k, ok := parseComment(r.Comment())
			if !ok || iptChainOf[k] != h {
				b.log.Warn("rule not drainctl's in a drainctl chain; the next change drops it", "family", fam, "chain", h.chain, "rule", r.Spec)
				continue
			}
			switch k {
			case kindPre, kindOut:
				redirected[f] = true
			case kindHold, kindHoldListening:
				if k == kindHold {
					dropped[f] = true
				} else if dropped[f] {
					misplaced = append(misplaced, fmt.Sprintf("%s: the RETURN of the hold of %s comes after its DROP in %s: connections are held even while the service listens", fam, f, h.chain))
				}
				v.held[f] = true
			case kindHoldAll:
				v.heldAll[f] = true
			default:
				if k != kindWithdraw && redirected[f] {
					misplaced = append(misplaced, fmt.Sprintf("%s: the withdraw of %s comes after its REDIRECT in %s: new connections are not refused", fam, f, h.chain))
				}
				v.withdrawn[f] = true
			}
			v.rules = append(v.rules, found{fwd: f, kind: k, packets: r.Packets()})
			v.forwards[f] = true
		}
	}
	if len(v.rules) > 0 {
		v.problems = append(jumpProblems(fam, tables), misplaced...)
	}
	return v
}

// asIs is the state of every forward v has rules for: other forwards
// keep their state through a change.
func (v *iptView) asIs() map[Forward]iptState {
	want := map[Forward]iptState{}
	for f := range v.forwards {
		want[f] = iptState{withdrawn: v.withdrawn[f], held: v.heldAny[f], heldAll: v.heldAllAny[f]}
	}
	return want
}

// sync brings fs to mode m; their holds stay as they are.
func (b *iptForwarder) sync(ctx context.Context, fs []Forward, m mode) error {
	if err := CheckSet(fs); err != nil {
		return err
	}
	return b.converge(ctx, func(v *iptView) map[Forward]iptState {
		want := v.asIs()
		for _, f := range fs {
			want[f] = iptState{withdrawn: wantWithdraw(m, v.withdrawn[f]), held: v.heldAny[f], heldAll: v.heldAllAny[f]}
		}
		return want
	})
}

// hold is Hold and HoldAll (fs installed as they are, and held as h says)
// and Release (the hold rules of fs deleted; a forward without rules
// stays without).
func (b *iptForwarder) hold(ctx context.Context, fs []Forward, h holdMode) error {
	if err := CheckSet(fs); err != nil {
		return err
	}
	return b.converge(ctx, func(v *iptView) map[Forward]iptState {
		want := v.asIs()
		for _, f := range fs {
			if st, ok := want[f]; ok || h != holdOff {
				want[f] = iptState{withdrawn: st.withdrawn, held: h == holdListening, heldAll: h == holdAll}
			}
		}
		return want
	})
}

func (b *iptForwarder) Remove(ctx context.Context, fs ...Forward) error {
	return b.converge(ctx, func(v *iptView) map[Forward]iptState {
		want := v.asIs()
		for f := range want {
			if len(fs) == 0 || slices.Contains(fs, f) {
				delete(want, f)
			}
		}
		return want
	})
}

// converge reads each family's rules, asks want which forwards to have
// (and which of them withdrawn and held), and writes the difference in
// one iptables-restore batch per family.
// Nothing is run when nothing differs. With iptables-nft, the rules after
// the change are known without reading them again when the nftables
// generation moved by exactly drainctl's own commits (one per table in a
// batch): no other process changed anything meanwhile.
func (b *iptForwarder) converge(ctx context.Context, want func(*iptView) map[Forward]iptState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	views, gen, genOK, err := b.read(ctx, true)
	if err != nil {
		return err
	}
	heldAny, heldAllAny := map[Forward]bool{}, map[Forward]bool{}
	for _, v := range views {
		maps.Copy(heldAny, v.held)
		maps.Copy(heldAllAny, v.heldAll)
	}
	for _, v := range views {
		v.heldAny, v.heldAllAny = heldAny, heldAllAny
	}
	batches := make([]string, len(b.fams))
	commits := uint32(0)
	var errs []error
	for i, fam := range b.fams {
		batches[i] = iptBatch(views[i].tables, want(views[i]))
		if batches[i] == "" {
			continue
		}
		b.log.Debug("iptables-restore", "family", fam.name, "batch", batches[i])
		// One family after the other: iptables-nft commits in one
		// nftables generation for the whole namespace, and two commits at
		// once make one of them fetch and try again (measured here: two
		// at once took longer than one after the other); iptables-legacy
		// takes one lock for both.
		wait, err := fam.x.StartRestore(ctx, batches[i])
		if err == nil {
			err = wait()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: change rules: %w", fam.name, err))
			break
		}
		commits += uint32(strings.Count(batches[i], "COMMIT\n"))
	}
	if len(errs) > 0 || commits == 0 {
		if len(errs) > 0 {
			b.dropCache()
		}
		return errors.Join(errs...)
	}
	if !genOK {
		return nil
	}
	if now, err := b.generation(); err != nil || now != gen+commits {
		b.dropCache() // someone else committed too: read afresh next time
		return nil
	}
	for i, fam := range b.fams {
		tables := views[i].tables
		if batches[i] != "" {
			if tables, err = applyBatch(tables, batches[i]); err != nil {
				b.dropCache()
				return nil
			}
		}
		fam.cache, fam.gen = tables, gen+commits
	}
	return nil
}

func (b *iptForwarder) dropCache() {
	for _, fam := range b.fams {
		fam.cache = nil
	}
}

func (b *iptForwarder) Status(ctx context.Context) ([]Status, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	views, _, _, err := b.read(ctx, false)
	if err != nil {
		return nil, err
	}
	var all []found
	var problems []string
	for _, v := range views {
		all = append(all, v.rules...)
		problems = append(problems, v.problems...)
	}
	l := iptLayout
	l.families = len(b.fams)
	st := summarize(all, l, len(problems) == 0)
	for i := range st {
		st[i].Problems = append(st[i].Problems, problems...)
	}
	return st, nil
}

// IptablesMode runs "CMD --version" and says whether CMD is the nf_tables
// or the legacy flavour ("iptables v1.8.9 (nf_tables)"): "nft" or
// "legacy" (an iptables before 1.8 is legacy).
func IptablesMode(ctx context.Context, cmd string) (string, error) {
	out, err := exec.CommandContext(ctx, cmd, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("iptables backend: %s --version: %w", cmd, err)
	}
	if strings.Contains(string(out), "nf_tables") {
		return "nft", nil
	}
	return "legacy", nil
}
