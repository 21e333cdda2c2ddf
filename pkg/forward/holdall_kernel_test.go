package forward_test

// Kernel tests of the hold-all (Forwarder.HoldAll): while a unit behind
// the web server (php-fpm) restarts, the web server listens all along;
// new connections from outside to the service port are held all the
// same, and land once released. Every backend, real netfilter, fresh
// namespaces.

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// mustTimeOut asserts that a new connection from ns to addr is neither
// accepted nor refused within d: its SYNs are dropped.
func mustTimeOut(t *testing.T, ns *nstest.NS, addr string, d time.Duration, when string) {
	t.Helper()
	c, err := dialWithin(ns, addr, d)
	if err == nil {
		c.close()
		t.Fatalf("%s: a new connection to %s was accepted, want it held", when, addr)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: a new connection to %s: want it held (a timeout), got %v", when, addr, err)
	}
}

// heldAll asserts what Status says about the hold-all of fwd, and that
// the forward is otherwise complete.
func (l *lab) heldAll(t *testing.T, want bool, when string) {
	t.Helper()
	s := l.status(t)
	if s.HeldAll != want || s.Held || s.Rules != s.Want || len(s.Problems) != 0 || !s.Applied {
		t.Fatalf("%s: status = %+v, want applied, complete, held all %v, not held", when, s, want)
	}
}

// With the web server listening, a hold-all drops the load balancer's
// new connections to the service port; its kernel's retransmission lands
// once released. What it leaves alone: established connections, the
// host's own connections, connections through the forward port.
func TestKernelHoldAllWhileListening(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		l := newLab(t, b)
		ctx := context.Background()
		must(t, "apply", l.f.Apply(ctx, fwd))
		l.serve(t)
		direct, err := dialWithin(l.cli, srv4+":80", 3*time.Second)
		must(t, "connect to :80 before the hold", err)
		defer direct.close()

		must(t, "hold all", l.f.HoldAll(ctx, fwd))
		l.heldAll(t, true, "after hold all")
		if s := l.status(t); s.State() != "in-service, held (all)" {
			t.Fatalf("state %q", s.State())
		}
		for _, a := range serviceFromOutside {
			mustTimeOut(t, l.cli, a, 500*time.Millisecond, "held all, listening")
		}
		must(t, "held all: request on a connection to :80 established before", direct.get())
		for _, a := range serviceFromHost {
			c, err := dialWithin(l.srv, a, 3*time.Second)
			must(t, "held all: a check on the host itself to "+a, err)
			must(t, "held all: request from the host itself to "+a, c.get())
			c.close()
		}
		for _, tg := range targets {
			l.mustConnect(t, tg).close()
		}

		// Connections begun while held land once released: the clients'
		// kernels send the SYN again after 1 s.
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
		time.Sleep(500 * time.Millisecond)
		must(t, "release", l.f.Release(ctx, fwd))
		l.heldAll(t, false, "released")
		for range serviceFromOutside {
			r := <-results
			if r.err != nil {
				t.Fatalf("held all, released 0.5 s later: connect to %s: %v, want it to land", r.addr, r.err)
			}
			must(t, "released: request to "+r.addr, r.c.get())
			r.c.close()
		}
	})
}

// A hold-all and a hold replace each other; withdraw, restore and apply
// keep it; every call is idempotent; Release and Remove delete it.
func TestKernelHoldAllReplacesHold(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		l := newLab(t, b)
		seedUnrelated(t, l.srv, b)
		before := normalize(b.save(t, l.srv))
		ctx := context.Background()
		must(t, "apply", l.f.Apply(ctx, fwd))
		must(t, "hold", l.f.Hold(ctx, fwd))
		l.held(t, true, "held")
		must(t, "hold all", l.f.HoldAll(ctx, fwd))
		l.heldAll(t, true, "hold all after hold")
		once := normalize(b.save(t, l.srv))
		if !strings.Contains(once, forward.CommentPrefix+"81:80:hold-all") || strings.Contains(once, "81:80:hold-listening") {
			t.Fatalf("held all: want the hold-all rule alone:\n%s", once)
		}
		must(t, "hold all again", l.f.HoldAll(ctx, fwd))
		if twice := normalize(b.save(t, l.srv)); twice != once {
			t.Fatalf("hold all twice changed the rules:\n--- once\n%s\n--- twice\n%s", once, twice)
		}
		must(t, "withdraw", l.f.Withdraw(ctx, fwd))
		if s := l.status(t); !s.Withdrawn || !s.HeldAll || s.Rules != s.Want || s.State() != "withdrawn, held (all)" {
			t.Fatalf("withdrawn while held all: %+v", s)
		}
		must(t, "restore", l.f.Restore(ctx, fwd))
		must(t, "apply", l.f.Apply(ctx, fwd))
		l.heldAll(t, true, "restored and applied while held all")
		// Nothing listens: refused by nobody, held.
		for _, a := range serviceFromOutside {
			mustTimeOut(t, l.cli, a, 500*time.Millisecond, "held all, nothing listening")
		}
		must(t, "hold", l.f.Hold(ctx, fwd))
		l.held(t, true, "hold after hold all")
		if s := l.status(t); s.HeldAll {
			t.Fatalf("hold after hold all: %+v, want the hold-all gone", s)
		}
		must(t, "hold all", l.f.HoldAll(ctx, fwd))
		must(t, "release", l.f.Release(ctx, fwd))
		l.heldAll(t, false, "released")
		if s := normalize(b.save(t, l.srv)); strings.Contains(s, ":hold") {
			t.Fatalf("released, but a hold rule is left:\n%s", s)
		}
		for _, a := range serviceFromOutside {
			mustRefuse(t, l.cli, a, "released, nothing listening")
		}
		must(t, "hold all", l.f.HoldAll(ctx, fwd))
		must(t, "remove all", l.f.Remove(ctx))
		if after := normalize(b.save(t, l.srv)); after != before {
			t.Fatalf("ruleset after remove differs from before:\n--- before\n%s\n--- after\n%s", before, after)
		}
	})
}

// Host carries a hold-all with the rules to another backend, and
// releases it wherever it is.
func TestKernelHostHoldAllMoves(t *testing.T) {
	l := hostLab(t)
	ctx := context.Background()
	nft, _ := openHost(t, l.srv, forward.BackendNftables, "")
	legacy, _ := openHost(t, l.srv, forward.BackendIptablesLegacy, "")
	l.f = nft
	must(t, "apply", nft.Apply(ctx, fwd))
	must(t, "hold all", nft.HoldAll(ctx, fwd))
	l.heldAll(t, true, "held all with nftables")
	l.f = legacy
	must(t, "apply with iptables-legacy", legacy.Apply(ctx, fwd))
	l.heldAll(t, true, "moved to iptables-legacy")
	if out := l.srv.MustExec(t, "iptables-legacy-save") + l.srv.MustExec(t, "ip6tables-legacy-save"); strings.Count(out, forward.CommentPrefix+"81:80:hold-all") != 2 {
		t.Fatalf("want the hold-all in iptables-legacy, IPv4 and IPv6:\n%s", out)
	}
	l.f = nft
	must(t, "release with nftables", nft.Release(ctx, fwd))
	out := l.srv.MustExec(t, "iptables-legacy-save") + l.srv.MustExec(t, "ip6tables-legacy-save") + l.srv.MustExec(t, "nft", "list", "ruleset")
	if strings.Contains(out, ":hold") {
		t.Fatalf("released, but a hold rule is left in some backend:\n%s", out)
	}
	must(t, "remove", nft.Remove(ctx))
}
