// Package forwardtest helps other packages' tests put a real forward in a
// test namespace.
package forwardtest

import (
	"context"
	"log/slog"
	"testing"

	"github.com/google/nftables"

	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/nstest"
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
