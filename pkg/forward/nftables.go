package forward

import (
	"context"
	"fmt"
	"log/slog"

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
// two withdraw chains hold the rules that refuse new connections.
const (
	nftChainPre         = "prerouting"
	nftChainOut         = "output"
	nftChainWithdrawIn  = "withdraw-in"
	nftChainWithdrawOut = "withdraw-local"
)

// nftChainOf places each kind of rule in its chain.
var nftChainOf = map[ruleKind]string{
	kindPre:         nftChainPre,
	kindOut:         nftChainOut,
	kindWithdraw:    nftChainWithdrawIn,
	kindWithdrawOut: nftChainWithdrawOut,
}

// nftLayout: inet rules serve IPv4 and IPv6 at once, so one copy of each.
var nftLayout = layout{
	apply:    []ruleKind{kindPre, kindOut},
	withdraw: []ruleKind{kindWithdraw, kindWithdrawOut},
	refused:  []ruleKind{kindWithdraw, kindWithdrawOut},
	families: 1,
}

type nftForwarder struct {
	modal // Apply, Withdraw and Restore: sync
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
	n.modal = modal{n.sync}
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

// sync brings the rules of fs to what mode asks, in one atomic batch.
func (n *nftForwarder) sync(ctx context.Context, fs []Forward, m mode) error {
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
			n.conn.AddRule(&nftables.Rule{
				Table:    n.table,
				Chain:    chains[nftChainOf[k]],
				Exprs:    nftExprs(f, k),
				UserData: userdata.AppendString(nil, userdata.TypeComment, c),
			})
			changes++
		}
		return nil
	}
	for _, f := range fs {
		has := false
		for _, k := range nftLayout.withdraw {
			has = has || len(have[ruleComment(f, k)]) > 0
		}
		withdraw := wantWithdraw(m, has)
		for _, k := range nftLayout.apply {
			if err := want(f, k, true); err != nil {
				return err
			}
		}
		for _, k := range nftLayout.withdraw {
			if err := want(f, k, withdraw); err != nil {
				return err
			}
		}
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables: commit: %w", err)
	}
	n.log.Debug("nftables synced", "forwards", fs, "mode", m, "changes", changes)
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
//
// "fib daddr type local" limits every rule to packets addressed to this
// host: traffic routed through it (containers, VMs) is never captured.
func nftExprs(f Forward, k ruleKind) []expr.Any {
	match := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(f.From)},
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
	switch k {
	case kindWithdraw, kindWithdrawOut:
		return append(match,
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{
				SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW),
				Xor:  binaryutil.NativeEndian.PutUint32(0),
			},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
			&expr.Counter{},
			&expr.Reject{Type: unix.NFT_REJECT_TCP_RST},
		)
	}
	return append(match,
		&expr.Counter{},
		&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(f.To)},
		&expr.Redir{RegisterProtoMin: 1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED},
	)
}
