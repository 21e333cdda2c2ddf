package forward

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// NftTable is the nftables table drainctl owns. Everything drainctl installs
// with the nftables backend lives in it, so Remove deletes the table and
// touches nothing else.
const NftTable = "drainctl"

// Chains of the drainctl table. The two NAT chains hold the REDIRECTs; the
// two withdraw chains hold the rules that refuse new connections, and
// withdraw-in the hold rules too (they act at the same point: before NAT,
// on connections from the network).
const (
	nftChainPre         = "prerouting"
	nftChainOut         = "output"
	nftChainWithdrawIn  = "withdraw-in"
	nftChainWithdrawOut = "withdraw-local"
)

// nftChainOf places each kind of rule in its chain.
var nftChainOf = map[ruleKind]string{
	kindPre:           nftChainPre,
	kindOut:           nftChainOut,
	kindWithdraw:      nftChainWithdrawIn,
	kindWithdrawOut:   nftChainWithdrawOut,
	kindHold:          nftChainWithdrawIn,
	kindHoldListening: nftChainWithdrawIn,
	kindHoldAll:       nftChainWithdrawIn,
}

// nftLayout: inet rules serve IPv4 and IPv6 at once, so one copy of each.
var nftLayout = layout{
	apply:    []ruleKind{kindPre, kindOut},
	withdraw: []ruleKind{kindWithdraw, kindWithdrawOut},
	refused:  []ruleKind{kindWithdraw, kindWithdrawOut},
	hold:     []ruleKind{kindHoldListening, kindHold},
	holdAll:  []ruleKind{kindHoldAll},
	families: 1,
}

type nftForwarder struct {
	modal // Apply, Withdraw and Restore: sync; Hold, HoldAll and Release: hold
	conn  *nftables.Conn
	log   *slog.Logger
	table *nftables.Table
}

// NewNftables returns the nftables backend working through conn. conn should
// be lasting (nftables.AsLasting) so every call reuses one netlink socket;
// pass nftables.WithNetNSFd when creating it to work in another namespace.
func NewNftables(conn *nftables.Conn, log *slog.Logger) Forwarder {
	if log == nil {
		log = slog.Default()
	}
	n := &nftForwarder{
		conn: conn,
		log:  log,
		// inet: one table and one rule serve IPv4 and IPv6 alike.
		table: &nftables.Table{Name: NftTable, Family: nftables.TableFamilyINet},
	}
	n.modal = modal{n.sync, n.hold}
	return n
}

func (n *nftForwarder) Backend() string { return "nftables" }

func (n *nftForwarder) Close() error { return n.conn.CloseLasting() }

func (n *nftForwarder) chains() map[string]*nftables.Chain {
	accept := nftables.ChainPolicyAccept
	nat := func(name string, hook *nftables.ChainHook) *nftables.Chain {
		return &nftables.Chain{
			Name: name, Table: n.table, Type: nftables.ChainTypeNAT,
			Hooknum: hook, Priority: nftables.ChainPriorityNATDest,
		}
	}
	// The withdraw chains filter at priority -150: after conntrack (-200),
	// so "ct state new" is known, and before NAT (-100), so the destination
	// port is still the forward port (docs/design.md, "How the withdraw is done").
	// (Matching "ct original proto-dst" after NAT would need one chain, but
	// google/nftables v0.3.0 cannot read such a rule back.) Policy accept:
	// these chains decide nothing but the reject.
	filter := func(name string, hook *nftables.ChainHook) *nftables.Chain {
		return &nftables.Chain{
			Name: name, Table: n.table, Type: nftables.ChainTypeFilter,
			Hooknum: hook, Priority: nftables.ChainPriorityMangle, Policy: &accept,
		}
	}
	return map[string]*nftables.Chain{
		nftChainPre:         nat(nftChainPre, nftables.ChainHookPrerouting),
		nftChainOut:         nat(nftChainOut, nftables.ChainHookOutput),
		nftChainWithdrawIn:  filter(nftChainWithdrawIn, nftables.ChainHookPrerouting),
		nftChainWithdrawOut: filter(nftChainWithdrawOut, nftables.ChainHookOutput),
	}
}

// nftRule is an installed rule and what its comment says it is.
type nftRule struct {
	found
	rule *nftables.Rule
}

// list reads back every rule in drainctl's table. A missing table or chain
// is not an error: it means nothing is installed there.
func (n *nftForwarder) list() (exists bool, rules []nftRule, err error) {
	tables, err := n.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, nil, fmt.Errorf("nftables: list tables: %w", err)
	}
	for _, t := range tables {
		exists = exists || t.Name == NftTable
	}
	if !exists {
		return false, nil, nil
	}
	chains, err := n.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return true, nil, fmt.Errorf("nftables: list chains: %w", err)
	}
	for _, c := range chains {
		if c.Table.Name != NftTable {
			continue
		}
		rs, err := n.conn.GetRules(n.table, c)
		if err != nil {
			return true, nil, fmt.Errorf("nftables: list rules of chain %s: %w", c.Name, err)
		}
		for _, r := range rs {
			c, _ := userdata.GetString(r.UserData, userdata.TypeComment)
			f, k, ok := parseComment(c)
			if !ok {
				// Someone added a rule to our table by hand; leave it,
				// Remove drops it with the table.
				n.log.Warn("rule without a drainctl comment in drainctl's table", "chain", r.Chain.Name, "handle", r.Handle)
				continue
			}
			rules = append(rules, nftRule{found: found{fwd: f, kind: k, packets: nftCounter(r)}, rule: r})
		}
	}
	return true, rules, nil
}

func nftCounter(r *nftables.Rule) uint64 {
	for _, e := range r.Exprs {
		if c, ok := e.(*expr.Counter); ok {
			return c.Packets
		}
	}
	return 0
}

// sync brings the rules of fs to what mode asks, in one atomic batch,
// keeping their hold rules as they are.
func (n *nftForwarder) sync(ctx context.Context, fs []Forward, m mode) error {
	return n.write(ctx, fs, m, holdOff)
}

// hold is Hold and HoldAll (fs installed as they are, and held as h
// says) and Release.
func (n *nftForwarder) hold(ctx context.Context, fs []Forward, h holdMode) error {
	if h != holdOff {
		return n.write(ctx, fs, modeKeep, h)
	}
	return n.release(ctx, fs)
}

// write brings the rules of fs to what mode asks, and holds them as hold
// says (holdOff: keeps their hold as it is), in one atomic batch.
func (n *nftForwarder) write(ctx context.Context, fs []Forward, m mode, hold holdMode) error {
	if err := CheckSet(fs); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, rules, err := n.list()
	if err != nil {
		return err
	}
	have := map[string][]*nftables.Rule{}
	for _, r := range rules {
		c := ruleComment(r.fwd, r.kind)
		have[c] = append(have[c], r.rule)
	}
	// Adding an existing table or chain is a no-op in the kernel, so the
	// batch always (re)declares them: a half-deleted table is repaired.
	n.conn.AddTable(n.table)
	chains := n.chains()
	for _, name := range []string{nftChainPre, nftChainOut, nftChainWithdrawIn, nftChainWithdrawOut} {
		n.conn.AddChain(chains[name])
	}
	changes := 0
	want := func(f Forward, k ruleKind, on bool) error {
		c := ruleComment(f, k)
		got := have[c]
		keep := 0
		if on {
			keep = 1
		}
		for _, r := range got[min(keep, len(got)):] {
			// Extra copies (or a rule that must go) are deleted by handle.
			if err := n.conn.DelRule(r); err != nil {
				return fmt.Errorf("nftables: delete rule %q: %w", c, err)
			}
			changes++
		}
		if on && len(got) == 0 {
			r := &nftables.Rule{
				Table:    n.table,
				Chain:    chains[nftChainOf[k]],
				Exprs:    nftExprs(f, k),
				UserData: userdata.AppendString(nil, userdata.TypeComment, c),
			}
			if k == kindHoldListening || k == kindHoldAll {
				// First in its chain, so before the hold's drop
				// wherever that is (a hold-all's drop: before any
				// accept).
				n.conn.InsertRule(r)
			} else {
				n.conn.AddRule(r)
			}
			changes++
		}
		return nil
	}
	for _, f := range fs {
		has := func(k ruleKind) bool { return len(have[ruleComment(f, k)]) > 0 }
		for _, w := range nftWanted(m, hold, has) {
			if err := want(f, w.kind, w.on); err != nil {
				return err
			}
		}
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: commit: %w", err)
	}
	n.log.Debug("nftables synced", "forwards", fs, "mode", m, "hold", hold, "changes", changes)
	return nil
}

// kindOn is one kind of rule of a forward, and whether it is wanted.
type kindOn struct {
	kind ruleKind
	on   bool
}

// nftWanted lists which of its rules a forward must have after a write in
// mode m (has: whether it has one of a kind now): every apply rule, the
// withdraw rules as m decides, and the hold rules of the hold asked
// (hold), or of the hold there already (holdOff). A hold stays until
// Release deletes it: the withdraw and the restore do not decide it. A
// Hold replaces a HoldAll, and a HoldAll a Hold.
func nftWanted(m mode, hold holdMode, has func(ruleKind) bool) []kindOn {
	var out []kindOn
	for _, k := range nftLayout.apply {
		out = append(out, kindOn{k, true})
	}
	withdrawn := wantWithdraw(m, slices.ContainsFunc(nftLayout.withdraw, has))
	for _, k := range nftLayout.withdraw {
		out = append(out, kindOn{k, withdrawn})
	}
	held := hold == holdListening || hold == holdOff && slices.ContainsFunc(nftLayout.hold, has)
	for _, k := range nftLayout.hold {
		out = append(out, kindOn{k, held})
	}
	all := hold == holdAll || hold == holdOff && slices.ContainsFunc(nftLayout.holdAll, has)
	for _, k := range nftLayout.holdAll {
		out = append(out, kindOn{k, all})
	}
	return out
}

// release deletes the hold rules of fs, in one atomic batch; nothing
// else changes, and nothing is sent when none is there.
func (n *nftForwarder) release(ctx context.Context, fs []Forward) error {
	if err := CheckSet(fs); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	exists, rules, err := n.list()
	if err != nil || !exists {
		return err
	}
	changes := 0
	for _, r := range rules {
		if !slices.Contains(nftLayout.hold, r.kind) && !slices.Contains(nftLayout.holdAll, r.kind) || !slices.Contains(fs, r.fwd) {
			continue
		}
		if err := n.conn.DelRule(r.rule); err != nil {
			return fmt.Errorf("nftables: delete rule %q: %w", ruleComment(r.fwd, r.kind), err)
		}
		changes++
	}
	if changes == 0 {
		return nil
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: commit release: %w", err)
	}
	n.log.Debug("nftables released", "forwards", fs, "changes", changes)
	return nil
}

func (n *nftForwarder) Remove(ctx context.Context, fs ...Forward) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	exists, rules, err := n.list()
	if err != nil || !exists {
		return err
	}
	drop := map[Forward]bool{}
	for _, f := range fs {
		drop[f] = true
	}
	left := 0
	for _, r := range rules {
		if len(fs) > 0 && !drop[r.fwd] {
			left++
			continue
		}
		if err := n.conn.DelRule(r.rule); err != nil {
			return fmt.Errorf("nftables: delete rule: %w", err)
		}
	}
	if left == 0 {
		// Nothing of ours is left: drop the table, which takes its chains
		// (and any rule someone added to them by hand) with it.
		n.conn.DelTable(n.table)
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: commit removal: %w", err)
	}
	return nil
}

func (n *nftForwarder) Status(ctx context.Context) ([]Status, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	_, rules, err := n.list()
	if err != nil {
		return nil, err
	}
	fs := make([]found, len(rules))
	for i, r := range rules {
		fs[i] = r.found
	}
	return summarize(fs, nftLayout, true), nil
}

// nftExprs builds the expressions of one rule. In nft syntax, for 81:80:
//
//	redirect-in, redirect-local (nat prerouting / nat output):
//	    meta l4proto tcp tcp dport 81 fib daddr type local counter redirect to :80
//	withdraw, withdraw-local (filter prerouting / filter output, -150):
//	    meta l4proto tcp tcp dport 81 fib daddr type local ct state new counter reject with tcp reset
//	hold-listening, hold (filter prerouting, -150, in withdraw-in, in this order):
//	    meta l4proto tcp tcp dport 80 iifname != "lo" fib daddr type local ct state new socket transparent 0 accept
//	    meta l4proto tcp tcp dport 80 iifname != "lo" fib daddr type local ct state new counter drop
//	hold-all (filter prerouting, -150, first in withdraw-in; instead of the two above):
//	    meta l4proto tcp tcp dport 80 iifname != "lo" fib daddr type local ct state new counter drop
//
// "fib daddr type local" limits every rule to packets addressed to this
// host: traffic routed through it (containers, VMs) is never captured.
// The hold matches the service port before NAT (-150), so its port is the
// connection's original destination port: a connection to 81, which NAT
// sends to 80 later, is not held. The host's own connections arrive on lo
// and are not held: a local check of a closed port fails at once. The
// accept ahead of the drop ends the chain for a connection some socket
// listens for (the kernel's socket lookup, as for a delivery), so the
// hold drops only what would be refused: the new web server gets the
// next SYN as soon as it listens, and a hold left in place by mistake
// costs nothing while the server runs. It sees sockets that are not
// transparent (IP_TRANSPARENT), as a web server's are; for one that is,
// the drop acts until Release. The hold-all is the drop alone: it holds
// while a unit behind the web server restarts and the web server listens
// all along.
func nftExprs(f Forward, k ruleKind) []expr.Any {
	held := k == kindHold || k == kindHoldListening || k == kindHoldAll
	port := f.From
	if held {
		port = f.To
	}
	match := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
	if held {
		match = append(match,
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname("lo")},
		)
	}
	match = append(match,
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	)
	ctNew := []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{
			SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW),
			Xor:  binaryutil.NativeEndian.PutUint32(0),
		},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
	switch k {
	case kindWithdraw, kindWithdrawOut:
		return append(append(match, ctNew...), &expr.Counter{}, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
	case kindHold, kindHoldAll:
		return append(append(match, ctNew...), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
	case kindHoldListening:
		return append(append(match, ctNew...),
			&expr.Socket{Key: expr.SocketKeyTransparent, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}},
			&expr.Verdict{Kind: expr.VerdictAccept},
		)
	}
	return append(match,
		&expr.Counter{},
		&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(f.To)},
		&expr.Redir{RegisterProtoMin: 1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED},
	)
}

// ifname is an interface name as nft compares it: the name padded with
// NULs to IFNAMSIZ (16 bytes), an exact match (not a "lo*" prefix).
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}
