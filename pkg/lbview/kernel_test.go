package lbview_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/internal/forwardtest"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
	"github.com/drainctl/drainctl/pkg/lbview"
)

var fwd = forward.Forward{From: 81, To: 80}

// TestKernelSeesChecks: a client namespace connects to the forward port
// the way a load balancer's TCP check does, while the forward is in
// place, withdrawn and restored, on every backend. The capture must count
// each connection, and each answer as the kernel gave it.
func TestKernelSeesChecks(t *testing.T) {
	nstest.RequireRoot(t)
	for i, backend := range forwardtest.Backends {
		t.Run(backend, func(t *testing.T) {
			srv, cli := nstest.Pair(t, fmt.Sprintf("lbv%d", i))
			f := forwardtest.Open(t, srv, backend)
			ctx := context.Background()
			if err := f.Apply(ctx, fwd); err != nil {
				t.Fatal(err)
			}
			serve(t, srv)
			var w *lbview.Watch
			if err := srv.Do(func() (err error) { w, err = lbview.Start([]uint16{81, 81}, lbview.Settings{}, nil); return err }); err != nil {
				t.Fatal(err)
			}
			defer w.Close()

			check := func(want error) {
				t.Helper()
				for _, addr := range []string{nstest.Srv4, nstest.Srv6} {
					c, err := cli.DialContext(ctx, "tcp", net.JoinHostPort(addr, "81"))
					if c != nil {
						c.Close()
					}
					if !errors.Is(err, want) {
						t.Fatalf("connect %s:81: %v, want %v", addr, err, want)
					}
				}
			}
			// Traffic to the service port is not a check.
			if c, err := cli.DialContext(ctx, "tcp", net.JoinHostPort(nstest.Srv4, "80")); err != nil {
				t.Fatal(err)
			} else {
				c.Close()
			}
			for range 3 {
				check(nil)
			}
			withdrawn := time.Now()
			if err := f.Withdraw(ctx, fwd); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				check(syscall.ECONNREFUSED)
			}
			out := w.Wait(ctx, lbview.Out, withdrawn)
			restored := time.Now()
			if err := f.Restore(ctx, fwd); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				check(nil)
			}
			back := w.Wait(ctx, lbview.Back, restored)

			lbs := w.LoadBalancers()
			if len(lbs) != 2 {
				t.Fatalf("load balancers %+v, want the client's two addresses", lbs)
			}
			for i, want := range []string{nstest.Cli4, nstest.Cli6} {
				l := lbs[i]
				if l.Addr != netip.MustParseAddr(want) || l.Port != 81 || l.Checks != 7 || l.Accepted != 5 || l.Refused != 2 {
					t.Errorf("%s: %+v, want 7 checks of port 81, 5 accepted, 2 refused", want, l)
				}
			}
			if !out.All() || !back.All() {
				t.Errorf("out: %s; back: %s; want both confirmed by 2/2", out.Text(), back.Text())
			}
			t.Logf("%s; %s", out.Text(), back.Text())
		})
	}
}

// serve accepts (and closes) connections on :80 in ns until the test ends.
func serve(t *testing.T, ns *nstest.NS) {
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", ":80"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}
