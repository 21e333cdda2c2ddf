// Package forwardtest helps other packages' tests put a real forward in a
// test namespace.
package forwardtest

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/nftables"

	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// Apply installs fs in ns with the nftables backend; the rules go with the
// namespace.
func Apply(t testing.TB, ns *nstest.NS, fs ...forward.Forward) {
	t.Helper()
	c, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(ns.FD()))
	if err != nil {
		t.Fatal(err)
	}
	f := forward.NewNftables(c, slog.Default())
	defer f.Close()
	if err := f.Apply(context.Background(), fs...); err != nil {
		t.Fatalf("apply %v in %s: %v", fs, ns.Name, err)
	}
}

// Backends are the backends Open knows.
var Backends = []string{"nftables", "iptables-nft", "iptables-legacy"}

// Open returns backend (one of Backends) working in ns; it is closed when
// the test ends. The iptables backends' commands run in ns.
func Open(t testing.TB, ns *nstest.NS, backend string) forward.Forwarder {
	t.Helper()
	var f forward.Forwarder
	var err error
	switch backend {
	case "nftables":
		var c *nftables.Conn
		if c, err = nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(ns.FD())); err == nil {
			f = forward.NewNftables(c, slog.Default())
		}
	case "iptables-nft", "iptables-legacy":
		variant := strings.TrimPrefix(backend, "iptables-")
		nstest.RequireCmd(t, "iptables-"+variant, "ip6tables-"+variant)
		var ipt forward.Forwarder
		if err = ns.Do(func() (err error) { ipt, err = forward.NewIptables(variant, slog.Default()); return err }); err == nil {
			f = inNS{ns, ipt}
		}
	default:
		t.Fatalf("backend %q: want one of %v", backend, Backends)
	}
	if err != nil {
		t.Fatalf("open %s in %s: %v", backend, ns.Name, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// InNS runs every call of f inside ns: go-iptables execs iptables, which
// must start on a thread in the namespace.
func InNS(ns *nstest.NS, f forward.Forwarder) forward.Forwarder { return inNS{ns, f} }

type inNS struct {
	ns *nstest.NS
	f  forward.Forwarder
}

func (n inNS) Apply(ctx context.Context, fs ...forward.Forward) error {
	return n.ns.Do(func() error { return n.f.Apply(ctx, fs...) })
}
func (n inNS) Withdraw(ctx context.Context, fs ...forward.Forward) error {
	return n.ns.Do(func() error { return n.f.Withdraw(ctx, fs...) })
}
func (n inNS) Restore(ctx context.Context, fs ...forward.Forward) error {
	return n.ns.Do(func() error { return n.f.Restore(ctx, fs...) })
}
func (n inNS) Hold(ctx context.Context, fs ...forward.Forward) error {
	return n.ns.Do(func() error { return n.f.Hold(ctx, fs...) })
}
func (n inNS) HoldAll(ctx context.Context, fs ...forward.Forward) error {
	return n.ns.Do(func() error { return n.f.HoldAll(ctx, fs...) })
}
func (n inNS) Release(ctx context.Context, fs ...forward.Forward) error {
	return n.ns.Do(func() error { return n.f.Release(ctx, fs...) })
}
func (n inNS) Remove(ctx context.Context, fs ...forward.Forward) error {
	return n.ns.Do(func() error { return n.f.Remove(ctx, fs...) })
}
func (n inNS) Status(ctx context.Context) (st []forward.Status, err error) {
	err = n.ns.Do(func() (err error) { st, err = n.f.Status(ctx); return err })
	return st, err
}
func (n inNS) Backend() string { return n.f.Backend() }
func (n inNS) Close() error    { return n.f.Close() }
