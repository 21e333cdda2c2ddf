package forward_test

// Kernel tests of the hold (Forwarder.Hold, Release): every backend
// against real netfilter in fresh namespaces, judged by real connections
// to the service port while nothing listens on it, as during a hard
// restart of the web server.

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// serviceFromOutside are the service port's addresses as the load
// balancer (the client host) reaches them.
var serviceFromOutside = []string{srv4 + ":80", "[" + srv6 + "]:80"}

// serviceFromHost are the service port's addresses as the host's own
// checks reach them (all of them through lo).
var serviceFromHost = []string{"127.0.0.1:80", "[::1]:80", srv4 + ":80"}

// dialWithin connects from ns to addr, giving up after d.
func dialWithin(ns *nstest.NS, addr string, d time.Duration) (*client, error) {
	var c *client
	err := ns.Do(func() error {
		nc, err := (&net.Dialer{Timeout: d}).Dial("tcp", addr)
		if err == nil {
			c = &client{c: nc, br: bufio.NewReader(nc)}
		}
		return err
	})
	return c, err
}

// mustRefuse asserts that a new connection from ns to addr is refused
// by a reset (ECONNREFUSED): neither accepted nor left to time out.
func mustRefuse(t *testing.T, ns *nstest.NS, addr, when string) {
	t.Helper()
	c, err := dialWithin(ns, addr, 3*time.Second)
	if err == nil {
		c.close()
		t.Fatalf("%s: a new connection to %s was accepted, want it refused", when, addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("%s: a new connection to %s: want it refused at once (ECONNREFUSED), got %v", when, addr, err)
	}
}

// held asserts what Status says about the hold of fwd, and that the
// forward is otherwise complete (so the agent's repair leaves it alone).
func (l *lab) held(t *testing.T, want bool, when string) {
	t.Helper()
	s := l.status(t)
	if s.Held != want || s.Rules != s.Want || len(s.Problems) != 0 || !s.Applied {
		t.Fatalf("%s: status = %+v, want applied, complete, held %v", when, s, want)
	}
}

// The point of the hold: with nothing listening on the service port, the
// load balancer's SYN is dropped, not refused, and its kernel's
// retransmission reaches the listener that opens meanwhile, the hold
// still in place: it drops only what the kernel would refuse.
func TestKernelHoldLandsOnTheNewListener(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		l := newLab(t, b)
		ctx := context.Background()
		must(t, "apply", l.f.Apply(ctx, fwd))
		for _, a := range serviceFromOutside {
			mustRefuse(t, l.cli, a, "not held, nothing listening")
		}
		must(t, "hold", l.f.Hold(ctx, fwd))
		l.held(t, true, "after hold")
		type result struct {
			addr string
			c    *client
			err  error
		}
		results := make(chan result, len(serviceFromOutside))
		for _, a := range serviceFromOutside {
			go func() {
				c, err := dialWithin(l.cli, a, 5*time.Second)
				results <- result{a, c, err}
			}()
		}
		// The web server listens again while the first SYNs are held; the
		// clients' kernels send the next SYN after 1 s, then 2 s more.
		time.Sleep(1500 * time.Millisecond)
		l.serve(t)
		for range serviceFromOutside {
			r := <-results
			if r.err != nil {
				t.Fatalf("held, listener opened 1.5 s later: connect to %s: %v, want it to land on the listener", r.addr, r.err)
			}
			defer r.c.close()
			if err := r.c.get(); err != nil {
				t.Fatalf("held: request on the connection to %s: %v", r.addr, err)
			}
		}
		// Held, and listening: new connections are served at once.
		for _, a := range serviceFromOutside {
			c, err := dialWithin(l.cli, a, 3*time.Second)
			must(t, "held, listening: new connection to "+a, err)
			must(t, "held, listening: request to "+a, c.get())
			c.close()
		}
		l.held(t, true, "held, listening")
		must(t, "release", l.f.Release(ctx, fwd))
		l.held(t, false, "released")
	})
}

// What the hold leaves alone: the host's own connections (refused at
// once while nothing listens), connections through the forward port
// (their original destination port is 81: refused at once while nothing
// listens, served when something does, refused while withdrawn), and
// established connections.
func TestKernelHoldSparesLocalForwardPortAndEstablished(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		l := newLab(t, b)
		ctx := context.Background()
		must(t, "apply", l.f.Apply(ctx, fwd))
		must(t, "hold", l.f.Hold(ctx, fwd))
		for _, a := range serviceFromHost {
			mustRefuse(t, l.srv, a, "held, a check on the host itself, nothing listening")
		}
		for _, tg := range targets {
			mustRefuse(t, tg.from(l), tg.host+":81", "held, "+tg.name+" through the forward port, nothing listening")
		}
		must(t, "release", l.f.Release(ctx, fwd))

		l.serve(t)
		direct, err := dialWithin(l.cli, srv4+":80", 3*time.Second)
		must(t, "connect to :80 before the hold", err)
		defer direct.close()
		through := l.mustConnect(t, targets[0])
		defer through.close()

		must(t, "hold", l.f.Hold(ctx, fwd))
		for i := 0; i < 3; i++ {
			must(t, "held: request on a connection to :80 established before", direct.get())
			must(t, "held: request on a connection through :81 established before", through.get())
		}
		for _, tg := range targets {
			l.mustConnect(t, tg).close()
		}
		for _, a := range serviceFromHost {
			c, err := dialWithin(l.srv, a, 3*time.Second)
			must(t, "held: a check on the host itself to "+a, err)
			must(t, "held: request from the host itself to "+a, c.get())
			c.close()
		}

		must(t, "withdraw", l.f.Withdraw(ctx, fwd))
		l.held(t, true, "withdrawn while held")
		if s := l.status(t); !s.Withdrawn || s.State() != "withdrawn, held" {
			t.Fatalf("withdrawn while held: status = %+v, want withdrawn", s)
		}
		for _, tg := range targets {
			l.mustBeRefused(t, tg)
		}
		must(t, "withdrawn and held: request on a connection through :81 established before", through.get())
		must(t, "withdrawn and held: request on a connection to :80 established before", direct.get())

		must(t, "restore", l.f.Restore(ctx, fwd))
		l.held(t, true, "restored while held")
		l.mustConnect(t, targets[0]).close()
		must(t, "apply", l.f.Apply(ctx, fwd))
		l.held(t, true, "applied while held")
		must(t, "release", l.f.Release(ctx, fwd))
		l.held(t, false, "released")
		must(t, "released: request on a connection to :80 established before", direct.get())
		c, err := dialWithin(l.cli, srv4+":80", 3*time.Second)
		must(t, "released: new connection to :80", err)
		must(t, "released: request on a new connection to :80", c.get())
		c.close()
	})
}

// Release ends the hold (refused at once again), Status follows, every
// call is idempotent, and Remove deletes the hold rules with the rest.
func TestKernelHoldReleaseAndRemove(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		l := newLab(t, b)
		seedUnrelated(t, l.srv, b)
		before := normalize(b.save(t, l.srv))
		ctx := context.Background()
		other := forward.Forward{From: 444, To: 443}

		must(t, "release of a forward not installed", l.f.Release(ctx, fwd))
		if st, err := l.f.Status(ctx); err != nil || len(st) != 0 {
			t.Fatalf("after releasing a forward not installed, status = %+v, %v, want none", st, err)
		}
		if after := normalize(b.save(t, l.srv)); after != before {
			t.Fatalf("release of a forward not installed changed the rules:\n%s", after)
		}

		must(t, "apply", l.f.Apply(ctx, fwd, other))
		l.held(t, false, "applied")
		must(t, "hold", l.f.Hold(ctx, fwd))
		l.held(t, true, "held")
		if st, _ := l.f.Status(ctx); len(st) != 2 || st[1].Forward != other || st[1].Held {
			t.Fatalf("status = %+v, want %s not held", st, other)
		}
		once := normalize(b.save(t, l.srv))
		if !strings.Contains(once, forward.CommentPrefix+"81:80:hold") {
			t.Fatalf("held, but no rule commented %s81:80:hold:\n%s", forward.CommentPrefix, once)
		}
		must(t, "hold again", l.f.Hold(ctx, fwd))
		if twice := normalize(b.save(t, l.srv)); twice != once {
			t.Fatalf("hold twice changed the rules:\n--- once\n%s\n--- twice\n%s", once, twice)
		}

		must(t, "release", l.f.Release(ctx, fwd))
		l.held(t, false, "released")
		for _, a := range serviceFromOutside {
			mustRefuse(t, l.cli, a, "released, nothing listening")
		}
		once = normalize(b.save(t, l.srv))
		if strings.Contains(once, ":hold") {
			t.Fatalf("released, but a hold rule is left:\n%s", once)
		}
		must(t, "release again", l.f.Release(ctx, fwd))
		if twice := normalize(b.save(t, l.srv)); twice != once {
			t.Fatalf("release twice changed the rules:\n--- once\n%s\n--- twice\n%s", once, twice)
		}

		// Remove of the held forward deletes its hold too.
		must(t, "hold both", l.f.Hold(ctx, fwd, other))
		must(t, "withdraw", l.f.Withdraw(ctx, fwd))
		must(t, "remove one", l.f.Remove(ctx, fwd))
		if st, _ := l.f.Status(ctx); len(st) != 1 || st[0].Forward != other || !st[0].Held {
			t.Fatalf("after removing %s, status = %+v, want only %s, held", fwd, st, other)
		}
		if s := normalize(b.save(t, l.srv)); strings.Contains(s, forward.CommentPrefix+"81:80:") {
			t.Fatalf("rules of %s left after removing it:\n%s", fwd, s)
		}
		for _, a := range serviceFromOutside {
			mustRefuse(t, l.cli, a, "held forward removed, nothing listening")
		}

		must(t, "remove all", l.f.Remove(ctx))
		after := normalize(b.save(t, l.srv))
		if after != before {
			t.Fatalf("ruleset after remove differs from before:\n--- before\n%s\n--- after\n%s", before, after)
		}
		if strings.Contains(after, forward.ChainPrefix) || strings.Contains(after, "table inet "+forward.NftTable) {
			t.Fatalf("drainctl's chains or table left after remove:\n%s", after)
		}
		if st, _ := l.f.Status(ctx); len(st) != 0 {
			t.Fatalf("status after remove = %+v, want none", st)
		}
	})
}

// Host (what the CLI and the agent open) carries a hold with the rules
// when they move to another backend, and releases it wherever it is: a
// hold left in another backend would still drop connections.
func TestKernelHostHoldMovesAndReleases(t *testing.T) {
	l := hostLab(t)
	ctx := context.Background()
	nft, _ := openHost(t, l.srv, forward.BackendNftables, "")
	legacy, _ := openHost(t, l.srv, forward.BackendIptablesLegacy, "")
	tables := func() string { return l.srv.MustExec(t, "nft", "list", "tables") }
	legacyChains := func() string {
		return l.srv.MustExec(t, "iptables-legacy-save") + l.srv.MustExec(t, "ip6tables-legacy-save")
	}

	l.f = nft
	must(t, "apply", nft.Apply(ctx, fwd))
	must(t, "hold", nft.Hold(ctx, fwd))
	l.held(t, true, "held with nftables")

	// Apply with iptables-legacy moves the rules, the hold with them.
	l.f = legacy
	must(t, "apply with iptables-legacy", legacy.Apply(ctx, fwd))
	l.held(t, true, "moved to iptables-legacy")
	if out := tables(); strings.Contains(out, forward.NftTable) {
		t.Fatalf("drainctl's nftables table left after the move:\n%s", out)
	}
	if out := legacyChains(); strings.Count(out, forward.CommentPrefix+"81:80:hold\"") != 2 {
		t.Fatalf("want the hold in iptables-legacy, IPv4 and IPv6:\n%s", out)
	}

	// Hold with nftables moves them back, held.
	l.f = nft
	must(t, "hold with nftables", nft.Hold(ctx, fwd))
	l.held(t, true, "moved back to nftables by hold")
	if out := legacyChains(); strings.Contains(out, forward.ChainPrefix) {
		t.Fatalf("drainctl's iptables-legacy chains left after the move:\n%s", out)
	}

	// A hold left in another backend (the rules were moved by hand, or a
	// move was cut short) is released too.
	l.f = legacy
	must(t, "hold with iptables-legacy", legacy.Hold(ctx, fwd))
	raw, err := backends[0].open(l.srv) // nftables itself, not a Host: no move
	must(t, "open nftables", err)
	defer raw.Close()
	must(t, "hold in nftables as well", raw.Hold(ctx, fwd))
	if s := l.status(t); !s.Held || len(s.Problems) == 0 {
		t.Fatalf("held in both backends: status = %+v, want held with a problem naming the other", s)
	}
	l.f = nft
	must(t, "release with nftables", nft.Release(ctx, fwd))
	if out := legacyChains() + l.srv.MustExec(t, "nft", "list", "ruleset"); strings.Contains(out, ":hold") {
		t.Fatalf("released, but a hold rule is left in some backend:\n%s", out)
	}
	must(t, "remove", nft.Remove(ctx))
	if out := legacyChains() + tables(); strings.Contains(out, forward.ChainPrefix) || strings.Contains(out, forward.NftTable) {
		t.Fatalf("drainctl's rules left after remove:\n%s", out)
	}
}
