package forward

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// Chains drainctl creates with the iptables backend, each reached from the
// built-in chain by one jump rule carrying the comment jumpComment.
const (
	iptChainPre   = "DRAINCTL-PREROUTING" // nat: REDIRECT from the network
	iptChainOut   = "DRAINCTL-OUTPUT"     // nat: REDIRECT of local connections
	iptChainInput = "DRAINCTL-INPUT"      // filter: withdraw (reject NEW)
	jumpComment   = commentPrefix + "jump"
)

// iptHook is one of drainctl's chains and the built-in chain jumping to it.
type iptHook struct{ table, builtin, chain string }

var iptHooks = []iptHook{
	{"nat", "PREROUTING", iptChainPre},
	{"nat", "OUTPUT", iptChainOut},
	{"filter", "INPUT", iptChainInput},
}

var iptChainOf = map[ruleKind]iptHook{
	kindPre:      iptHooks[0],
	kindOut:      iptHooks[1],
	kindWithdraw: iptHooks[2],
}

// The withdraw rule sits in INPUT, after NAT, and matches the conntrack
// ORIGINAL destination port: connections from the network and from the host
// itself both pass INPUT, so one rule per family covers them. (REJECT is not
// allowed before NAT in iptables, unlike nftables.)
var iptLayout = layout{
	apply:    []ruleKind{kindPre, kindOut},
	withdraw: []ruleKind{kindWithdraw},
}

// iptablesAPI is the part of *iptables.IPTables drainctl uses; a fake
// implements it in unit tests.
type iptablesAPI interface {
	Exists(table, chain string, rulespec ...string) (bool, error)
	Insert(table, chain string, pos int, rulespec ...string) error
	Append(table, chain string, rulespec ...string) error
	DeleteIfExists(table, chain string, rulespec ...string) error
	DeleteById(table, chain string, id int) error
	ListWithCounters(table, chain string) ([]string, error)
	ListChains(table string) ([]string, error)
	NewChain(table, chain string) error
	ClearAndDeleteChain(table, chain string) error
}

var _ iptablesAPI = (*iptables.IPTables)(nil)

// iptFamily is one IP family's iptables command.
type iptFamily struct {
	name string // "ipv4" or "ipv6"
	ipt  iptablesAPI
}

type iptForwarder struct {
	variant string // "iptables-nft" or "iptables-legacy"
	fams    []iptFamily
	log     *slog.Logger
}

// NewIptables returns the iptables backend. variant is "nft" or "legacy" to
// pick iptables-nft or iptables-legacy, or "" for whatever the host's
// "iptables" command is. IPv6 rules are installed when the host has IPv6
// and an ip6tables command; otherwise the backend logs and works with IPv4.
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
	ipt4, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4), iptables.Path(v4), iptables.Timeout(5))
	if err != nil {
		return nil, fmt.Errorf("iptables backend: %s: %w", v4, err)
	}
	fams := []iptFamily{{"ipv4", ipt4}}
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		log.Warn("IPv6 is disabled on this host: installing IPv4 rules only")
	} else if ipt6, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv6), iptables.Path(v6), iptables.Timeout(5)); err != nil {
		log.Warn("no usable ip6tables: installing IPv4 rules only", "command", v6, "err", err)
	} else {
		fams = append(fams, iptFamily{"ipv6", ipt6})
	}
	mode, err := iptablesMode(v4)
	if err != nil {
		return nil, err
	}
	return newIptables("iptables-"+mode, fams, log), nil
}

func newIptables(variant string, fams []iptFamily, log *slog.Logger) *iptForwarder {
	return &iptForwarder{variant: variant, fams: fams, log: log}
}

// iptablesMode runs "CMD --version" and says whether CMD is the nf_tables
// or the legacy flavour ("iptables v1.8.9 (nf_tables)").
func iptablesMode(cmd string) (string, error) {
	out, err := exec.Command(cmd, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("iptables backend: %s --version: %w", cmd, err)
	}
	if strings.Contains(string(out), "nf_tables") {
		return "nft", nil
	}
	return "legacy", nil
}

func (b *iptForwarder) Backend() string { return b.variant }

func (b *iptForwarder) Close() error { return nil }

// Rule specs. In iptables-save syntax, for 81:80:
//
//	nat DRAINCTL-PREROUTING: -p tcp --dport 81 -m addrtype --dst-type LOCAL -j REDIRECT --to-ports 80
//	nat DRAINCTL-OUTPUT:     the same, for connections made on the host
//	filter DRAINCTL-INPUT:   -p tcp -m conntrack --ctstate NEW --ctorigdstport 81 -j REJECT --reject-with tcp-reset
//
// "--dst-type LOCAL" limits the redirect to packets addressed to this host.
func iptSpec(f Forward, k ruleKind) []string {
	comment := []string{"-m", "comment", "--comment", ruleComment(f, k)}
	if k == kindWithdraw {
		return append(append([]string{"-p", "tcp", "-m", "conntrack", "--ctstate", "NEW",
			"--ctorigdstport", strconv.Itoa(int(f.From))}, comment...),
			"-j", "REJECT", "--reject-with", "tcp-reset")
	}
	return append(append([]string{"-p", "tcp", "-m", "tcp", "--dport", strconv.Itoa(int(f.From)),
		"-m", "addrtype", "--dst-type", "LOCAL"}, comment...),
		"-j", "REDIRECT", "--to-ports", strconv.Itoa(int(f.To)))
}

func jumpSpec(chain string) []string {
	return []string{"-m", "comment", "--comment", jumpComment, "-j", chain}
}

// iptRule is one rule of a drainctl chain, as listed.
type iptRule struct {
	found
	hook iptHook
	pos  int // 1-based position in its chain, for DeleteById
}

var (
	reComment  = regexp.MustCompile(`--comment "?([^" ]+)"?`)
	reCounters = regexp.MustCompile(`(?:^| )-c (\d+) (\d+)`)
)

// list reads drainctl's chains of one family. A missing chain lists empty.
// plumbing reports whether every chain exists and is jumped to.
//
// Chains are looked up by listing the table first: iptables-nft 1.8.9
// answers "-S CHAIN" for a missing chain with "incompatible", the same
// words it uses for a chain it cannot parse, so the error cannot tell.
func (b *iptForwarder) list(fam iptFamily) (rules []iptRule, plumbing bool, exists map[string]bool, err error) {
	plumbing = true
	exists = map[string]bool{}
	for _, table := range []string{"nat", "filter"} {
		chains, err := fam.ipt.ListChains(table)
		if err != nil {
			return nil, false, nil, fmt.Errorf("%s: list chains of %s: %w", fam.name, table, err)
		}
		for _, c := range chains {
			exists[table+"/"+c] = true
		}
	}
	for _, h := range iptHooks {
		if !exists[h.table+"/"+h.chain] {
			plumbing = false
			continue
		}
		lines, err := fam.ipt.ListWithCounters(h.table, h.chain)
		if err != nil {
			return nil, false, nil, fmt.Errorf("%s: list %s %s: %w", fam.name, h.table, h.chain, err)
		}
		pos := 0
		for _, l := range lines {
			if !strings.HasPrefix(l, "-A ") {
				continue
			}
			pos++
			m := reComment.FindStringSubmatch(l)
			if m == nil {
				b.log.Warn("rule without a drainctl comment in a drainctl chain", "family", fam.name, "chain", h.chain, "rule", l)
				continue
			}
			f, k, ok := parseComment(m[1])
			if !ok {
				continue
			}
			r := iptRule{found: found{fwd: f, kind: k}, hook: h, pos: pos}
			if c := reCounters.FindStringSubmatch(l); c != nil {
				r.packets, _ = strconv.ParseUint(c[1], 10, 64)
			}
			rules = append(rules, r)
		}
		ok, err := fam.ipt.Exists(h.table, h.builtin, jumpSpec(h.chain)...)
		if err != nil {
			return nil, false, nil, fmt.Errorf("%s: check jump %s -> %s: %w", fam.name, h.builtin, h.chain, err)
		}
		plumbing = plumbing && ok
	}
	return rules, plumbing, exists, nil
}

// ensurePlumbing creates drainctl's chains and their jump rules where they
// are missing. Jumps go first in the built-in chain (position 1) so that an
// earlier ACCEPT or DNAT of other software cannot bypass them.
func (b *iptForwarder) ensurePlumbing(fam iptFamily, exists map[string]bool) error {
	for _, h := range iptHooks {
		if !exists[h.table+"/"+h.chain] {
			if err := fam.ipt.NewChain(h.table, h.chain); err != nil {
				return fmt.Errorf("%s: create chain %s %s: %w", fam.name, h.table, h.chain, err)
			}
		}
		ok, err := fam.ipt.Exists(h.table, h.builtin, jumpSpec(h.chain)...)
		if err != nil {
			return fmt.Errorf("%s: check jump %s -> %s: %w", fam.name, h.builtin, h.chain, err)
		}
		if !ok {
			if err := fam.ipt.Insert(h.table, h.builtin, 1, jumpSpec(h.chain)...); err != nil {
				return fmt.Errorf("%s: add jump %s -> %s: %w", fam.name, h.builtin, h.chain, err)
			}
		}
	}
	return nil
}

func (b *iptForwarder) Apply(ctx context.Context, fs ...Forward) error {
	return b.sync(ctx, fs, modeKeep)
}

func (b *iptForwarder) Withdraw(ctx context.Context, fs ...Forward) error {
	return b.sync(ctx, fs, modeWithdraw)
}

func (b *iptForwarder) Restore(ctx context.Context, fs ...Forward) error {
	return b.sync(ctx, fs, modeRestore)
}

// sync brings the rules of fs to what mode asks, family by family. iptables
// has no transaction across commands; the order makes every intermediate
// state safe: redirects are added before a withdraw rule is removed, and a
// withdraw rule is added before anything else changes.
func (b *iptForwarder) sync(ctx context.Context, fs []Forward, m mode) error {
	if err := CheckSet(fs); err != nil {
		return err
	}
	for _, fam := range b.fams {
		if err := ctx.Err(); err != nil {
			return err
		}
		rules, plumbing, exists, err := b.list(fam)
		if err != nil {
			return err
		}
		if !plumbing {
			if err := b.ensurePlumbing(fam, exists); err != nil {
				return err
			}
		}
		have := map[string][]iptRule{}
		for _, r := range rules {
			c := ruleComment(r.fwd, r.kind)
			have[c] = append(have[c], r)
		}
		var add []iptRule
		var del []iptRule
		for _, f := range fs {
			withdrawOn := wantWithdraw(m, len(have[ruleComment(f, kindWithdraw)]) > 0)
			for _, k := range []ruleKind{kindWithdraw, kindPre, kindOut} {
				on := k != kindWithdraw || withdrawOn
				got := have[ruleComment(f, k)]
				keep := 0
				if on {
					keep = 1
				}
				del = append(del, got[min(keep, len(got)):]...)
				if on && len(got) == 0 {
					add = append(add, iptRule{found: found{fwd: f, kind: k}, hook: iptChainOf[k]})
				}
			}
		}
		for _, r := range add {
			if err := fam.ipt.Append(r.hook.table, r.hook.chain, iptSpec(r.fwd, r.kind)...); err != nil {
				return fmt.Errorf("%s: add %s rule of %s: %w", fam.name, r.kind, r.fwd, err)
			}
		}
		if err := b.deleteRules(fam, del); err != nil {
			return err
		}
	}
	return nil
}

// deleteRules deletes listed rules by position, the highest first in each
// chain so that earlier positions stay valid.
func (b *iptForwarder) deleteRules(fam iptFamily, del []iptRule) error {
	sort.Slice(del, func(i, j int) bool {
		if del[i].hook.chain != del[j].hook.chain {
			return del[i].hook.chain < del[j].hook.chain
		}
		return del[i].pos > del[j].pos
	})
	for _, r := range del {
		if err := fam.ipt.DeleteById(r.hook.table, r.hook.chain, r.pos); err != nil {
			return fmt.Errorf("%s: delete %s rule of %s: %w", fam.name, r.kind, r.fwd, err)
		}
	}
	return nil
}

func (b *iptForwarder) Remove(ctx context.Context, fs ...Forward) error {
	drop := map[Forward]bool{}
	for _, f := range fs {
		drop[f] = true
	}
	for _, fam := range b.fams {
		if err := ctx.Err(); err != nil {
			return err
		}
		rules, _, exists, err := b.list(fam)
		if err != nil {
			return err
		}
		var del []iptRule
		for _, r := range rules {
			if len(fs) == 0 || drop[r.fwd] {
				del = append(del, r)
			}
		}
		if len(fs) > 0 && len(del) < len(rules) {
			if err := b.deleteRules(fam, del); err != nil {
				return err
			}
			continue
		}
		// Nothing of ours is left in this family: unhook and delete the
		// chains (with any rule someone added to them by hand).
		for _, h := range iptHooks {
			if !exists[h.table+"/"+h.chain] {
				// No chain, so no jump to it either: iptables refuses to
				// even look for a jump to a chain that does not exist.
				continue
			}
			if err := fam.ipt.DeleteIfExists(h.table, h.builtin, jumpSpec(h.chain)...); err != nil {
				return fmt.Errorf("%s: delete jump %s -> %s: %w", fam.name, h.builtin, h.chain, err)
			}
			if err := fam.ipt.ClearAndDeleteChain(h.table, h.chain); err != nil {
				return fmt.Errorf("%s: delete chain %s %s: %w", fam.name, h.table, h.chain, err)
			}
		}
	}
	return nil
}

func (b *iptForwarder) Status(ctx context.Context) ([]Status, error) {
	var all []found
	plumbingOK := true
	for _, fam := range b.fams {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rules, plumbing, _, err := b.list(fam)
		if err != nil {
			return nil, err
		}
		plumbingOK = plumbingOK && plumbing
		for _, r := range rules {
			all = append(all, r.found)
		}
	}
	l := iptLayout
	l.families = len(b.fams)
	return summarize(all, l, plumbingOK), nil
}
