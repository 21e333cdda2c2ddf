// Package forward owns the host side of drainctl's pattern: a NAT REDIRECT
// from a forward port (81, health-checked by HAProxy) to the service port
// (80), and the switch that takes the server out of rotation for new users.
//
// Two backends implement [Forwarder]: nftables over netlink
// (github.com/google/nftables) and iptables through the iptables binaries
// (github.com/coreos/go-iptables; iptables-nft and iptables-legacy).
//
// Withdrawing never deletes the REDIRECT. Deleting it resets every
// keep-alive connection that came through it when it is the last NAT rule in
// the namespace (see docs/design.md); instead a filter rule rejects only NEW
// connections whose conntrack original destination port is the forward port,
// so established connections keep their NAT mapping and keep working.
//
// A hold ([Forwarder.Hold]) bridges a hard restart of the web server, when
// its listener is closed for seconds: new TCP connections from outside the
// host whose original destination port is the service port (80), and for
// which no socket listens, are dropped instead of refused, so the load
// balancer's kernel retransmits the SYN (after 1 s, then 2 s more...) and
// the connection lands on the new web server as soon as it listens, where
// a refusal would make HAProxy retry and redispatch it to another server
// (a sticky user moved). Connections through the forward port (81, whose
// original destination port is 81), connections made on the host itself
// (they arrive on lo: local checks fail fast) and established connections
// are not held. The hold drops only what the kernel would refuse (a rule
// ahead of the drop lets a connection pass when the kernel's socket
// lookup finds a listener), so it can be put in place before the web
// server stops and costs nothing while it runs, even if left behind. It
// is independent of the withdraw: Apply, Withdraw and Restore keep it as
// it is, and only Release (or Remove) deletes it. It lives with the
// forward's other rules (the nftables withdraw-in chain at -150, before
// NAT, matching tcp dport 80; iptables' DRAINCTL-INPUT, after NAT,
// matching --ctorigdstport 80), under the same markers.
package forward

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Forward is one forward-port → service-port redirect, e.g. 81→80.
type Forward struct {
	// From is the port the load balancer health-checks (and, in some
	// HAProxy setups, sends traffic to). Nothing listens on it.
	From uint16 `json:"from"`
	// To is the port the real service listens on.
	To uint16 `json:"to"`
}

// String renders the forward as FROM:TO, the form Parse accepts.
func (f Forward) String() string { return fmt.Sprintf("%d:%d", f.From, f.To) }

// Validate reports whether the forward can be installed.
func (f Forward) Validate() error {
	if f.From == 0 || f.To == 0 {
		return fmt.Errorf("forward %s: ports must be between 1 and 65535", f)
	}
	if f.From == f.To {
		return fmt.Errorf("forward %s: forward port and service port must differ", f)
	}
	return nil
}

// Parse reads a forward written as FROM:TO (e.g. "81:80").
func Parse(s string) (Forward, error) {
	from, to, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return Forward{}, fmt.Errorf("forward %q: want FROM:TO, e.g. 81:80", s)
	}
	f, err := FromPorts(from, to)
	if err != nil {
		return Forward{}, fmt.Errorf("forward %q: %w", s, err)
	}
	return f, nil
}

// FromPorts builds and validates a forward from two port strings.
func FromPorts(from, to string) (Forward, error) {
	fp, err := parsePort("forward port", from)
	if err != nil {
		return Forward{}, err
	}
	tp, err := parsePort("service port", to)
	if err != nil {
		return Forward{}, err
	}
	f := Forward{From: fp, To: tp}
	return f, f.Validate()
}

func parsePort(what, s string) (uint16, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%s %q: must be a number between 1 and 65535", what, s)
	}
	return uint16(n), nil
}

// CheckSet validates a set of forwards that will be installed together: each
// must be valid, and no port may be used as a forward port twice or as both a
// forward port and a service port (that would chain redirects).
func CheckSet(fs []Forward) error {
	if len(fs) == 0 {
		return fmt.Errorf("no forward given: use --forward FROM:TO (e.g. 81:80) or a config file")
	}
	from := map[uint16]Forward{}
	to := map[uint16]bool{}
	for _, f := range fs {
		if err := f.Validate(); err != nil {
			return err
		}
		if g, dup := from[f.From]; dup {
			if g == f {
				return fmt.Errorf("forward %s: given twice", f)
			}
			return fmt.Errorf("forward %s: port %d is already forwarded by %s", f, f.From, g)
		}
		from[f.From] = f
		to[f.To] = true
	}
	for _, f := range fs {
		if to[f.From] {
			return fmt.Errorf("forward %s: port %d is also a service port of another forward", f, f.From)
		}
	}
	return nil
}

// Status is what the kernel says about one forward drainctl owns.
type Status struct {
	Forward Forward `json:"forward"`
	// Applied is true when every REDIRECT rule of the forward is installed
	// (IPv4 and IPv6; traffic from the network and from the host itself).
	Applied bool `json:"applied"`
	// Withdrawn is true when new connections to the forward port are
	// refused (for every address family).
	Withdrawn bool `json:"withdrawn"`
	// Redirected counts packets that matched a REDIRECT rule: the first
	// packet of each connection that went through the forward.
	Redirected uint64 `json:"redirected_packets"`
	// Refused counts new connections refused while withdrawn. Both are
	// the kernel's counters of the rules installed now: a restore deletes
	// the withdraw rules, so Refused starts again at 0 at the next
	// withdraw (and Redirected when the REDIRECT is recreated); the
	// agent's metrics keep totals that do not go down.
	Refused uint64 `json:"refused_packets"`
	// Held is true when new connections from outside the host to the
	// service port are dropped rather than refused while nothing listens
	// on it (Forwarder.Hold), for every address family.
	Held bool `json:"held,omitempty"`
	// HeldAll is true when new connections from outside the host to the
	// service port are dropped whether anything listens on it or not
	// (Forwarder.HoldAll).
	HeldAll bool `json:"held_all,omitempty"`
	// Rules is how many rules drainctl has installed for this forward, and
	// Want how many a complete applied (and, if withdrawn, withdrawn; if
	// held, held) forward has; they differ when something removed part of
	// it.
	Rules int `json:"rules"`
	Want  int `json:"want_rules"`
	// Problems say why the rules may not work as installed: a jump that
	// other rules come before, or drainctl's rules in another backend
	// too. Apply, Withdraw and Restore fix them.
	Problems []string `json:"problems,omitempty"`
	// withdrawing: some withdraw rule is there (a partial withdraw is
	// completed rather than undone).
	withdrawing bool
	// holding: some hold rule is there (likewise completed, and carried
	// when the rules move to another backend).
	holding bool
	// holdingAll: some hold-all rule is there.
	holdingAll bool
}

// State names the forward's condition in one word for people: absent,
// in-service, withdrawn, or partial (rules missing, or a problem that may
// make the kernel do other than the rules say).
func (s Status) State() string {
	switch {
	case len(s.Problems) > 0:
		return "partial"
	case s.Rules == 0:
		return "absent"
	case s.Rules < s.Want:
		return "partial"
	case s.Withdrawn:
		return "withdrawn" + s.heldText()
	case s.Applied:
		return "in-service" + s.heldText()
	}
	return "partial"
}

// heldText marks a forward whose service port is held (a web server's
// restart in progress).
func (s Status) heldText() string {
	switch {
	case s.HeldAll:
		return ", held (all)"
	case s.Held:
		return ", held"
	}
	return ""
}

// Forwarder installs and switches forwards. Implementations are safe for use
// by one goroutine at a time; callers serialise (the agent owns one).
//
// Every method is idempotent: calling it twice leaves the same rules as
// calling it once. Each call changes the rules of the forwards it is given
// only, in one step where the backend allows (nftables: one atomic batch).
type Forwarder interface {
	// Apply installs the REDIRECT of each forward. It does not undo a
	// withdraw: a withdrawn forward stays withdrawn.
	Apply(ctx context.Context, fs ...Forward) error
	// Withdraw makes sure each forward is installed and that new
	// connections to its forward port are refused with a TCP reset, while
	// established connections keep working.
	Withdraw(ctx context.Context, fs ...Forward) error
	// Restore makes sure each forward is installed and accepts new
	// connections again.
	Restore(ctx context.Context, fs ...Forward) error
	// Hold makes sure each forward is installed (withdrawn or not as it
	// was) and that new TCP connections to its service port (To, e.g. 80)
	// that arrive from outside the host are dropped silently instead of
	// refused while the web server's listener is closed during a hard
	// restart: the client's kernel (the load balancer's) retransmits the
	// SYN (1 s, then 2 s, ...) and the connection lands on the new web
	// server once it listens, instead of a refusal that HAProxy retries
	// and redispatches to another server (a sticky user moved). Only
	// connections no socket listens for are dropped: while the web server
	// listens, a hold changes nothing. Loopback traffic (iifname lo) is
	// not held: local checks fail fast. Established connections are
	// untouched (ct state new only), and so are connections through the
	// forward port: the hold matches the connection's original
	// destination port. It does not change Withdraw/Restore, and they
	// keep it.
	Hold(ctx context.Context, fs ...Forward) error
	// HoldAll is Hold whether a socket listens on the service port or
	// not: new TCP connections from outside the host to it are dropped
	// until Release, while a unit behind the web server restarts (php-fpm
	// behind Apache: Apache listens all along, and would answer 503). The
	// same exceptions (loopback, the forward port, established
	// connections). It replaces a Hold, and Hold replaces it.
	HoldAll(ctx context.Context, fs ...Forward) error
	// Release deletes the hold rules of each forward (Hold's and
	// HoldAll's), and nothing else; releasing a forward not held does
	// nothing.
	Release(ctx context.Context, fs ...Forward) error
	// Remove deletes the rules of the given forwards, or of every forward
	// drainctl owns when none is given, hold rules included. Once no
	// forward is left it deletes drainctl's table or chains too. Rules of
	// other software are untouched.
	Remove(ctx context.Context, fs ...Forward) error
	// Status lists every forward drainctl has rules for, sorted by port.
	Status(ctx context.Context) ([]Status, error)
	// Backend names the implementation: "nftables", "iptables-nft" or
	// "iptables-legacy".
	Backend() string
	// Close releases the backend's resources (netlink sockets).
	Close() error
}
