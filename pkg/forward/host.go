package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/google/nftables"
)

// Host is drainctl's forwards on one host (one network namespace),
// whichever backend holds them. It works through one backend, the
// primary, and looks for drainctl's rules in the others too: rules left
// in another backend would still act (a withdraw chain left in nftables
// refuses every new connection whatever iptables says), so Status reports
// them as a problem and every change moves them to the primary: it
// installs them there first, in the state they were in, and only then
// removes them from the other backend, so a live connection's NAT never
// lacks a rule and a withdrawn forward never comes back by accident.
//
// Every call holds a lock shared by every drainctl process of the network
// namespace (the CLI's forward commands and the agent), so their changes
// do not interleave.
type Host struct {
	// modal gives Apply, Withdraw and Restore: change, which makes them
	// in the primary under the lock and moves the others' rules; and Hold
	// and Release: hold, the same for the hold rules.
	modal
	primary Forwarder
	others  []*otherBackend
	probe   *nftables.Conn // netlink, to see nftables and iptables-nft cheaply
	log     *slog.Logger
	// lockName is the abstract unix socket used as the namespace's lock.
	lockName string
}

var _ Forwarder = (*Host)(nil)

// otherBackend is a backend that is not the primary but may hold rules.
type otherBackend struct {
	name    string
	present func() (bool, error)
	open    func() (Forwarder, error)
	f       Forwarder
}

func (o *otherBackend) get() (Forwarder, error) {
	if o.f == nil {
		f, err := o.open()
		if err != nil {
			return nil, err
		}
		o.f = f
	}
	return o.f, nil
}

// DefaultLock names the lock that drainctl processes share in one network
// namespace: an abstract unix socket, so it belongs to the namespace and
// is released when its holder dies, however it dies.
const DefaultLock = "@drainctl-forward-lock"

// lockTimeout bounds the wait for another drainctl's change.
const lockTimeout = 15 * time.Second

// newHost wraps primary; conn (lasting) sees the ruleset for the presence
// probes and is closed with the host.
func newHost(primary Forwarder, conn *nftables.Conn, log *slog.Logger) *Host {
	h := &Host{primary: primary, probe: conn, log: log, lockName: DefaultLock}
	h.modal = modal{h.change, h.hold}
	for _, name := range []string{BackendNftables, BackendIptablesNft, BackendIptablesLegacy} {
		if name == primary.Backend() {
			continue
		}
		o := &otherBackend{name: name}
		switch name {
		case BackendNftables:
			o.present = func() (bool, error) { return nftTablePresent(conn) }
			o.open = func() (Forwarder, error) {
				c, err := nftables.New(nftables.AsLasting())
				if err != nil {
					return nil, err
				}
				return NewNftables(c, log), nil
			}
		case BackendIptablesNft:
			if _, err := exec.LookPath("iptables-nft"); err != nil {
				continue
			}
			o.present = func() (bool, error) { return iptNftChainsPresent(conn) }
			o.open = func() (Forwarder, error) { return NewIptables("nft", log) }
		case BackendIptablesLegacy:
			if _, err := exec.LookPath("iptables-legacy"); err != nil {
				continue
			}
			o.present = legacyChainsPresent
			o.open = func() (Forwarder, error) { return NewIptables("legacy", log) }
		}
		h.others = append(h.others, o)
	}
	return h
}

// nftTablePresent reports whether drainctl's nftables table exists.
func nftTablePresent(conn *nftables.Conn) (bool, error) {
	ts, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("nftables: list tables: %w", err)
	}
	return slices.ContainsFunc(ts, func(t *nftables.Table) bool { return t.Name == NftTable }), nil
}

// iptNftChainsPresent reports whether iptables-nft holds a chain of
// drainctl's (ChainPrefix). iptables-nft keeps its rules in nftables, so netlink sees them
// without running a command.
func iptNftChainsPresent(conn *nftables.Conn) (bool, error) {
	cs, err := conn.ListChains()
	if err != nil {
		return false, fmt.Errorf("nftables: list chains: %w", err)
	}
	return slices.ContainsFunc(cs, func(c *nftables.Chain) bool {
		fam := c.Table.Family
		return (fam == nftables.TableFamilyIPv4 || fam == nftables.TableFamilyIPv6) &&
			iptablesNftTables[c.Table.Name] && ownChain(c.Name)
	}), nil
}

// legacyChainsPresent reports whether iptables-legacy holds a chain of
// drainctl's; iptables-legacy-save runs only for a family whose nat or filter
// table the kernel lists.
func legacyChainsPresent() (bool, error) {
	saves, err := legacySaves(context.Background(), natOrFilter, exec.LookPath)
	return hasDrainctlChains(saves), err
}

// Backend names the primary, the backend every change is made in.
func (h *Host) Backend() string { return h.primary.Backend() }

// Close releases the primary, every other backend opened to look for
// drainctl's rules, and the netlink probe.
func (h *Host) Close() error {
	errs := []error{h.primary.Close()}
	for _, o := range h.others {
		if o.f != nil {
			errs = append(errs, o.f.Close())
		}
	}
	if h.probe != nil {
		errs = append(errs, h.probe.CloseLasting())
	}
	return errors.Join(errs...)
}

// lock takes the namespace's lock, waiting for another holder up to
// lockTimeout.
func (h *Host) lock(ctx context.Context) (func(), error) {
	ctx, cancel := context.WithTimeout(ctx, lockTimeout)
	defer cancel()
	for {
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: h.lockName, Net: "unix"})
		if err == nil {
			return func() { l.Close() }, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("take drainctl's rule lock %s: %w", h.lockName, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("another drainctl process has been changing the rules for %v (lock %s): %w", lockTimeout, h.lockName, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// stray is another backend that holds drainctl's rules.
type stray struct {
	name string
	f    Forwarder
	st   []Status
}

// strays finds drainctl's rules in the other backends.
func (h *Host) strays(ctx context.Context) ([]stray, error) {
	var out []stray
	for _, o := range h.others {
		ok, err := o.present()
		if err != nil {
			return nil, fmt.Errorf("look for drainctl's rules in %s: %w", o.name, err)
		}
		if !ok {
			continue
		}
		f, err := o.get()
		if err != nil {
			return nil, fmt.Errorf("open %s, which holds drainctl's rules: %w", o.name, err)
		}
		st, err := f.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("read drainctl's rules in %s: %w", o.name, err)
		}
		out = append(out, stray{o.name, f, st})
	}
	return out, nil
}

// change makes the change m to fs in the primary (Forwarder.Apply,
// Withdraw or Restore), under the namespace's lock; rules another backend
// holds are moved to the primary in the same call, so that they stop
// acting.
func (h *Host) change(ctx context.Context, fs []Forward, m mode) error {
	return h.withStrays(ctx, fs, func(strays []stray) error {
		if len(strays) == 0 {
			return byMode(h.primary, m)(ctx, fs...)
		}
		return h.changeMoving(ctx, fs, m, strays, holdOff)
	})
}

// withStrays checks fs and runs fn under the namespace's lock with the
// rules other backends hold (change and hold both move or mend them).
func (h *Host) withStrays(ctx context.Context, fs []Forward, fn func([]stray) error) error {
	if err := CheckSet(fs); err != nil {
		return err
	}
	unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	strays, err := h.strays(ctx)
	if err != nil {
		return err
	}
	return fn(strays)
}

// hold holds fs in the primary (as hm says), moving the others' rules as
// change does, or releases them (holdOff) in every backend that holds
// them, under the namespace's lock.
func (h *Host) hold(ctx context.Context, fs []Forward, hm holdMode) error {
	return h.withStrays(ctx, fs, func(strays []stray) error { return h.holdWith(ctx, fs, hm, strays) })
}

// holdWith is hold, with the lock taken and the others' rules read.
func (h *Host) holdWith(ctx context.Context, fs []Forward, hm holdMode, strays []stray) error {
	if hm != holdOff {
		if len(strays) == 0 {
			return byHold(h.primary, hm)(ctx, fs...)
		}
		return h.changeMoving(ctx, fs, modeKeep, strays, hm)
	}
	if err := h.primary.Release(ctx, fs...); err != nil {
		return err
	}
	// A hold left in another backend would still drop connections.
	for _, s := range strays {
		if !slices.ContainsFunc(s.st, func(st Status) bool { return (st.holding || st.holdingAll) && slices.Contains(fs, st.Forward) }) {
			continue
		}
		if err := s.f.Release(ctx, fs...); err != nil {
			return fmt.Errorf("release the hold of %v in %s: %w", fs, s.name, err)
		}
	}
	return nil
}

// changeMoving makes the change m to fs on the primary (and holds them as
// hold says, unless holdOff) while other backends hold drainctl's rules
// (strays), and moves those rules over: installed on the primary first,
// withdrawn and held as they were, then removed from where they were.
func (h *Host) changeMoving(ctx context.Context, fs []Forward, m mode, strays []stray, hold holdMode) error {
	mine, err := h.primary.Status(ctx)
	if err != nil {
		return err
	}
	carryApply, carryWithdraw := carried(fs, m, mine, strays)
	rest := slices.DeleteFunc(slices.Clone(fs), func(f Forward) bool { return slices.Contains(carryWithdraw, f) })
	if len(rest) > 0 {
		if err := byMode(h.primary, m)(ctx, rest...); err != nil {
			return err
		}
	}
	if len(carryWithdraw) > 0 {
		if err := h.primary.Withdraw(ctx, carryWithdraw...); err != nil {
			return fmt.Errorf("carry the withdraw of %v over from another backend: %w", carryWithdraw, err)
		}
	}
	if len(carryApply) > 0 {
		if err := h.primary.Apply(ctx, carryApply...); err != nil {
			return fmt.Errorf("carry %v over from another backend: %w", carryApply, err)
		}
	}
	holds := carriedHolds(fs, hold, strays)
	for _, hm := range []holdMode{holdListening, holdAll} {
		if held := holds[hm]; len(held) > 0 {
			// Before the strays' rules go, so a hold never lapses.
			if err := byHold(h.primary, hm)(ctx, held...); err != nil {
				return fmt.Errorf("hold %v (carried over from another backend): %w", held, err)
			}
		}
	}
	for _, s := range strays {
		h.log.Warn("moving drainctl's rules to the backend in use", "from", s.name, "to", h.primary.Backend())
		if err := s.f.Remove(ctx); err != nil {
			return fmt.Errorf("remove drainctl's rules from %s (now in %s): %w", s.name, h.primary.Backend(), err)
		}
	}
	return nil
}

// carriedHolds lists the forwards to hold on the primary, by kind of
// hold: fs as hold asks (none for holdOff), then those the strays hold,
// each as it is held there.
func carriedHolds(fs []Forward, hold holdMode, strays []stray) map[holdMode][]Forward {
	holds := map[holdMode][]Forward{}
	if hold != holdOff {
		holds[hold] = slices.Clone(fs)
	}
	asked := func(f Forward) bool { return hold != holdOff && slices.Contains(fs, f) }
	for _, s := range strays {
		for _, st := range s.st {
			switch f := st.Forward; {
			case asked(f):
			case st.holdingAll && !slices.Contains(holds[holdAll], f):
				holds[holdAll] = append(holds[holdAll], f)
			case st.holding && !st.holdingAll && !slices.Contains(holds[holdListening], f):
				holds[holdListening] = append(holds[holdListening], f)
			}
		}
	}
	return holds
}

// carried says which forwards the strays hold that the primary must take
// over, and how: forwards asked for (fs, changed by m) keep a withdraw
// they have there (apply must not undo it); the others, unless the
// primary has rules for them already, come over in their state.
func carried(fs []Forward, m mode, mine []Status, strays []stray) (carryApply, carryWithdraw []Forward) {
	onPrimary := map[Forward]bool{}
	for _, s := range mine {
		onPrimary[s.Forward] = s.Rules > 0
	}
	asked := map[Forward]bool{}
	for _, f := range fs {
		asked[f] = true
	}
	for _, s := range strays {
		for _, st := range s.st {
			f := st.Forward
			switch {
			case asked[f] && m == modeKeep && st.withdrawing:
				carryWithdraw = append(carryWithdraw, f)
			case !asked[f] && !onPrimary[f] && !slices.Contains(carryApply, f) && !slices.Contains(carryWithdraw, f):
				if st.withdrawing {
					carryWithdraw = append(carryWithdraw, f)
				} else {
					carryApply = append(carryApply, f)
				}
			}
		}
	}
	return carryApply, carryWithdraw
}

// Remove deletes drainctl's rules of fs (all with none given) from every
// backend.
func (h *Host) Remove(ctx context.Context, fs ...Forward) error {
	unlock, err := h.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := h.primary.Remove(ctx, fs...); err != nil {
		return err
	}
	strays, err := h.strays(ctx)
	if err != nil {
		return err
	}
	for _, s := range strays {
		if err := s.f.Remove(ctx, fs...); err != nil {
			return fmt.Errorf("remove drainctl's rules from %s: %w", s.name, err)
		}
	}
	return nil
}

// Status is the primary's status, with drainctl's rules in other backends
// reported as problems of the forwards they concern.
func (h *Host) Status(ctx context.Context) ([]Status, error) {
	unlock, err := h.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := h.primary.Status(ctx)
	if err != nil {
		return nil, err
	}
	strays, err := h.strays(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range strays {
		for _, o := range s.st {
			i := slices.IndexFunc(st, func(x Status) bool { return x.Forward == o.Forward })
			if i < 0 {
				st = append(st, Status{Forward: o.Forward, Want: o.Want})
				i = len(st) - 1
			}
			st[i].Problems = append(st[i].Problems, fmt.Sprintf("%s also has drainctl's rules for %s (%s), and the kernel applies them too; any change moves them to %s",
				s.name, o.Forward, o.State(), h.primary.Backend()))
		}
	}
	slices.SortFunc(st, func(a, b Status) int { return int(a.Forward.From) - int(b.Forward.From) })
	return st, nil
}
