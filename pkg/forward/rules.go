package forward

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// ruleKind names the job of one rule drainctl installs for a forward.
type ruleKind string

const (
	// kindPre redirects traffic arriving from the network (PREROUTING).
	kindPre ruleKind = "redirect-in"
	// kindOut redirects connections made on the host itself (OUTPUT), so
	// a local check of :81 behaves like the load balancer's.
	kindOut ruleKind = "redirect-local"
	// kindWithdraw refuses new connections to the forward port (iptables:
	// all of them; nftables: those from the network).
	kindWithdraw ruleKind = "withdraw"
	// kindWithdrawOut refuses new connections to the forward port made on
	// the host itself (nftables only, see nftables.go).
	kindWithdrawOut ruleKind = "withdraw-local"
	// kindWithdrawNat and kindWithdrawNatOut skip the REDIRECT of new
	// connections (iptables only, see iptables.go).
	kindWithdrawNat    ruleKind = "withdraw-nat-in"
	kindWithdrawNatOut ruleKind = "withdraw-nat-local"
	// kindHold drops (instead of refusing) new connections from outside
	// the host to the service port while held (Forwarder.Hold), and
	// kindHoldListening, ahead of it, lets them pass whenever a socket
	// listens on the port: the hold drops only what the kernel would
	// refuse.
	kindHold          ruleKind = "hold"
	kindHoldListening ruleKind = "hold-listening"
	// kindHoldAll drops new connections from outside the host to the
	// service port whether a socket listens or not (Forwarder.HoldAll):
	// a unit behind the web server (php-fpm) restarts while the web
	// server keeps listening. A forward has it or the two above, never
	// both.
	kindHoldAll ruleKind = "hold-all"
)

// The markers of what drainctl owns in netfilter, with NftTable: every
// reader of the rules (the backends, Probe, drainctl doctor) tells
// drainctl's rules from other software's by them, and only by them.
const (
	// CommentPrefix starts the comment of every rule drainctl owns;
	// deletion and status find rules by it, never by position.
	CommentPrefix = "drainctl:"
	// ChainPrefix starts the name of every iptables chain drainctl owns.
	ChainPrefix = "DRAINCTL-"
)

// ruleComment is the comment stored with a rule, e.g.
// "drainctl:81:80:redirect-in".
func ruleComment(f Forward, k ruleKind) string {
	return fmt.Sprintf("%s%d:%d:%s", CommentPrefix, f.From, f.To, k)
}

// parseComment reads a comment written by ruleComment.
func parseComment(c string) (Forward, ruleKind, bool) {
	rest, ok := strings.CutPrefix(c, CommentPrefix)
	if !ok {
		return Forward{}, "", false
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 3 {
		return Forward{}, "", false
	}
	from, err1 := strconv.ParseUint(parts[0], 10, 16)
	to, err2 := strconv.ParseUint(parts[1], 10, 16)
	if err1 != nil || err2 != nil {
		return Forward{}, "", false
	}
	switch k := ruleKind(parts[2]); k {
	case kindPre, kindOut, kindWithdraw, kindWithdrawOut, kindWithdrawNat, kindWithdrawNatOut, kindHold, kindHoldListening, kindHoldAll:
		return Forward{From: uint16(from), To: uint16(to)}, k, true
	}
	return Forward{}, "", false
}

// modal gives a Forwarder its Apply, Withdraw and Restore from the one
// function that brings forwards to a mode: the three differ only in what
// they do to the withdraw rules; and its Hold, HoldAll and Release from
// the one that puts the hold rules on or off. Each backend (and Host)
// embeds it.
type modal struct {
	change func(ctx context.Context, fs []Forward, m mode) error
	hold   func(ctx context.Context, fs []Forward, h holdMode) error
}

// holdMode is what a hold call makes of the forwards' hold rules.
type holdMode int

const (
	holdOff       holdMode = iota // Release: no hold rule
	holdListening                 // Hold: dropped while nothing listens
	holdAll                       // HoldAll: dropped, listening or not
)

// Hold is Forwarder.Hold: the forwards installed, withdrawn or not as
// they were, and held while nothing listens.
func (c modal) Hold(ctx context.Context, fs ...Forward) error {
	return c.hold(ctx, fs, holdListening)
}

// HoldAll is Forwarder.HoldAll: the forwards installed, withdrawn or not
// as they were, and held whether anything listens or not.
func (c modal) HoldAll(ctx context.Context, fs ...Forward) error {
	return c.hold(ctx, fs, holdAll)
}

// Release is Forwarder.Release: the forwards' hold rules deleted.
func (c modal) Release(ctx context.Context, fs ...Forward) error {
	return c.hold(ctx, fs, holdOff)
}

// Apply is Forwarder.Apply: the forwards installed, withdrawn or not as
// they were.
func (c modal) Apply(ctx context.Context, fs ...Forward) error {
	return c.change(ctx, fs, modeKeep)
}

// Withdraw is Forwarder.Withdraw: the forwards installed and withdrawn.
func (c modal) Withdraw(ctx context.Context, fs ...Forward) error {
	return c.change(ctx, fs, modeWithdraw)
}

// Restore is Forwarder.Restore: the forwards installed and accepting
// new connections.
func (c modal) Restore(ctx context.Context, fs ...Forward) error {
	return c.change(ctx, fs, modeRestore)
}

// byMode is f's method for mode m.
func byMode(f Forwarder, m mode) func(context.Context, ...Forward) error {
	switch m {
	case modeWithdraw:
		return f.Withdraw
	case modeRestore:
		return f.Restore
	}
	return f.Apply
}

// byHold is f's method for hold mode h (Release for holdOff).
func byHold(f Forwarder, h holdMode) func(context.Context, ...Forward) error {
	switch h {
	case holdListening:
		return f.Hold
	case holdAll:
		return f.HoldAll
	}
	return f.Release
}

// mode says what a sync does to the withdraw rule of each forward.
type mode int

const (
	modeKeep     mode = iota // Apply: leave the withdraw state as it is
	modeWithdraw             // Withdraw: make sure new connections are refused
	modeRestore              // Restore: make sure they are accepted
)

// found is one installed rule, as a backend read it back.
type found struct {
	fwd     Forward
	kind    ruleKind
	packets uint64
}

// layout says which rules make a forward complete on one backend.
type layout struct {
	apply    []ruleKind // rules of an applied forward
	withdraw []ruleKind // rules added when it is withdrawn
	refused  []ruleKind // withdraw rules whose counters count refusals
	hold     []ruleKind // rules added when it is held
	holdAll  []ruleKind // rules added when it is held, listening or not
	families int        // copies of each rule (iptables: one per IP family)
}

// summarize folds installed rules into per-forward statuses. plumbingOK
// reports whether shared plumbing (iptables' jump rules) is in place,
// without which nothing is applied.
func summarize(rules []found, l layout, plumbingOK bool) []Status {
	type key struct {
		f Forward
		k ruleKind
	}
	have := map[key]int{}
	byFwd := map[Forward]*Status{}
	for _, r := range rules {
		s := byFwd[r.fwd]
		if s == nil {
			s = &Status{Forward: r.fwd}
			byFwd[r.fwd] = s
		}
		s.Rules++
		have[key{r.fwd, r.kind}]++
		switch {
		case r.kind == kindPre || r.kind == kindOut:
			s.Redirected += r.packets
		case slices.Contains(l.refused, r.kind):
			s.Refused += r.packets
		}
	}
	all := func(f Forward, ks []ruleKind) (every, any bool) {
		every = true
		for _, k := range ks {
			n := have[key{f, k}]
			every = every && n >= l.families
			any = any || n > 0
		}
		return every, any
	}
	out := make([]Status, 0, len(byFwd))
	for f, s := range byFwd {
		applied, _ := all(f, l.apply)
		withdrawn, someWithdraw := all(f, l.withdraw)
		held, someHold := all(f, l.hold)
		heldAll, someHoldAll := all(f, l.holdAll)
		s.Applied = plumbingOK && applied
		s.Withdrawn = plumbingOK && withdrawn
		s.Held = plumbingOK && someHold && held
		s.HeldAll = plumbingOK && someHoldAll && heldAll
		s.withdrawing = someWithdraw
		s.holding = someHold
		s.holdingAll = someHoldAll
		s.Want = len(l.apply) * l.families
		if someWithdraw {
			s.Want += len(l.withdraw) * l.families
		}
		if someHold {
			s.Want += len(l.hold) * l.families
		}
		if someHoldAll {
			s.Want += len(l.holdAll) * l.families
		}
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Forward.From != out[j].Forward.From {
			return out[i].Forward.From < out[j].Forward.From
		}
		return out[i].Forward.To < out[j].Forward.To
	})
	return out
}

// wantWithdraw decides whether a forward should carry the withdraw rule
// after a sync in mode m, given whether it has one now.
func wantWithdraw(m mode, has bool) bool {
	switch m {
	case modeWithdraw:
		return true
	case modeRestore:
		return false
	}
	return has
}
