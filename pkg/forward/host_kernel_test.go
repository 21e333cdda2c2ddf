package forward_test

// Kernel tests of Host: drainctl's rules in several backends at once, on
// real netfilter in fresh namespaces, judged by real connections.

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/internal/forwardtest"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// openHost opens a Host in ns as the CLI and the agent do (forward.New),
// with backend name ("auto" to detect) and the backend a state recorded.
func openHost(t *testing.T, ns *nstest.NS, name, recorded string) (forward.Forwarder, forward.Choice) {
	t.Helper()
	var h *forward.Host
	var c forward.Choice
	err := ns.Do(func() (err error) {
		h, c, err = forward.New(context.Background(), forward.Options{Backend: name, Recorded: recorded})
		return err
	})
	if err != nil {
		t.Fatalf("open backend %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close() })
	return forwardtest.InNS(ns, h), c
}

func hostLab(t *testing.T) *lab {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireCmd(t, "nft", "iptables-nft", "iptables-legacy", "iptables-legacy-save", "ip6tables-legacy-save")
	l := &lab{}
	l.srv, l.cli = nstest.Pair(t, "host")
	l.serve(t)
	return l
}

// The bug report's case 1: withdrawn with nftables (auto on a clean
// host), then iptables-legacy rules appear. auto keeps nftables; restore
// with any backend puts the server back for real, leaving no withdraw
// rule behind in the other backend.
func TestKernelBackendChangeUnderHeldServer(t *testing.T) {
	for _, restoreWith := range []string{"auto", "iptables-legacy"} {
		t.Run("restore-with-"+restoreWith, func(t *testing.T) {
			t.Parallel()
			l := hostLab(t)
			ctx := context.Background()
			f, c := openHost(t, l.srv, "auto", "")
			if c.Backend != forward.BackendNftables {
				t.Fatalf("auto on a clean host chose %s (%s), want nftables", c.Backend, c.Reason)
			}
			l.f = f
			must(t, "apply", f.Apply(ctx, fwd))
			must(t, "withdraw", f.Withdraw(ctx, fwd))
			for i := 0; i < 5; i++ {
				l.srv.MustExec(t, "iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", strings.Repeat("1", i+1), "-j", "ACCEPT")
			}
			g, c := openHost(t, l.srv, restoreWith, "")
			if restoreWith == "auto" && c.Backend != forward.BackendNftables {
				t.Fatalf("auto with drainctl's rules in nftables chose %s (%s)", c.Backend, c.Reason)
			}
			l.f = g
			if l.honest(t, "withdrawn, then legacy rules appeared") {
				t.Fatal("withdrawn: a new connection was served")
			}
			must(t, "restore", g.Restore(ctx, fwd))
			if !l.honest(t, "restored with "+restoreWith) {
				t.Fatalf("restored with %s: a new connection to :81 failed", restoreWith)
			}
			if s := l.status(t); s.State() != "in-service" {
				t.Fatalf("after restore with %s, status = %+v", restoreWith, s)
			}
			if restoreWith != "auto" {
				if out := l.srv.MustExec(t, "nft", "list", "tables"); strings.Contains(out, forward.NftTable) {
					t.Fatalf("drainctl's nftables table left behind after moving to %s:\n%s", restoreWith, out)
				}
			}
		})
	}
}

// A change of backend moves the rules without resetting a live
// connection that came through the forward, and carries a withdraw over:
// applying on the new backend must not put a withdrawn server back.
func TestKernelBackendMoveKeepsConnectionsAndWithdraw(t *testing.T) {
	moves := [][2]string{
		{forward.BackendNftables, forward.BackendIptablesNft},
		{forward.BackendIptablesNft, forward.BackendIptablesLegacy},
		{forward.BackendIptablesLegacy, forward.BackendNftables},
	}
	for _, mv := range moves {
		t.Run(mv[0]+"-to-"+mv[1], func(t *testing.T) {
			t.Parallel()
			l := hostLab(t)
			ctx := context.Background()
			from, _ := openHost(t, l.srv, mv[0], "")
			l.f = from
			must(t, "apply", from.Apply(ctx, fwd))
			live := l.mustConnect(t, targets[0])
			defer live.close()
			must(t, "withdraw", from.Withdraw(ctx, fwd))

			to, _ := openHost(t, l.srv, mv[1], "")
			l.f = to
			if s := l.status(t); s.State() != "partial" || len(s.Problems) == 0 {
				t.Fatalf("status on %s with the rules in %s = %+v, want partial naming %s", mv[1], mv[0], s, mv[0])
			}
			// Requests flow on the live connection all through the move:
			// a moment with no NAT rule would reset it.
			stop := make(chan struct{})
			flowed := make(chan error, 1)
			go func() {
				n := 0
				for {
					select {
					case <-stop:
						if n < 10 {
							flowed <- fmt.Errorf("only %d requests during the move", n)
						}
						flowed <- nil
						return
					default:
					}
					if err := live.get(); err != nil {
						flowed <- fmt.Errorf("request %d on the live connection during the move: %w", n+1, err)
						return
					}
					n++
				}
			}()
			time.Sleep(20 * time.Millisecond)
			err := to.Apply(ctx, fwd)
			time.Sleep(20 * time.Millisecond)
			close(stop)
			must(t, "apply on the new backend", err)
			if err := <-flowed; err != nil {
				t.Fatal(err)
			}
			if l.honest(t, "moved while withdrawn") {
				t.Fatal("moving the rules put a withdrawn server back in rotation")
			}
			if s := l.status(t); s.State() != "withdrawn" || len(s.Problems) != 0 {
				t.Fatalf("after the move, status = %+v, want withdrawn with no problem", s)
			}
			for i := 0; i < 5; i++ {
				if err := live.get(); err != nil {
					t.Fatalf("request %d on a connection made through %s, after the move to %s: %v", i+1, mv[0], mv[1], err)
				}
			}
			must(t, "restore", to.Restore(ctx, fwd))
			if !l.honest(t, "restored after the move") {
				t.Fatal("restored after the move: a new connection failed")
			}
			if err := live.get(); err != nil {
				t.Fatalf("the old connection after restore: %v", err)
			}
		})
	}
}

// The watch reports a flush by another process at once, and
// LegacyFingerprint changes with iptables-legacy's rules.
func TestKernelWatchAndLegacyFingerprint(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireCmd(t, "nft", "iptables-legacy")
	ns := nstest.New(t, "watch")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var ch <-chan struct{}
	must(t, "watch", ns.Do(func() (err error) { ch, err = forward.Watch(ctx, nil); return err }))
	ns.MustExec(t, "nft", "add table inet someone")
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no notice of another process's change")
	}
	ns.MustExec(t, "nft", "flush ruleset")
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no notice of a flush")
	}

	var fp []string
	print := func() { ns.Do(func() error { fp = append(fp, forward.LegacyFingerprint()); return nil }) }
	print()
	ns.MustExec(t, "iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
	print()
	print()
	ns.MustExec(t, "iptables-legacy", "-R", "INPUT", "1", "-p", "tcp", "--dport", "23", "-j", "DROP")
	print()
	ns.MustExec(t, "iptables-legacy", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "81", "-j", "REDIRECT", "--to-ports", "80")
	print()
	ns.MustExec(t, "iptables-legacy", "-F", "INPUT")
	print()
	// Traffic through the rules moves their counters, not the fingerprint.
	ns.MustExec(t, "iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "REJECT", "--reject-with", "tcp-reset")
	print()
	ns.Do(func() error {
		for i := 0; i < 3; i++ {
			if c, err := net.DialTimeout("tcp", "127.0.0.1:9", time.Second); err == nil {
				c.Close()
			}
		}
		return nil
	})
	if out := ns.MustExec(t, "iptables-legacy", "-L", "INPUT", "-v", "-n", "-x"); !strings.Contains(out, "reject-with tcp-reset") {
		t.Fatalf("no REJECT rule:\n%s", out)
	}
	print()
	if fp[0] == fp[1] || fp[1] != fp[2] || fp[2] == fp[3] || fp[3] == fp[4] || fp[4] == fp[5] || fp[5] == fp[6] {
		t.Fatalf("fingerprints %q: want a change with each rule change (a rule replaced by one of the same size too), none without", fp)
	}
	if fp[6] != fp[7] {
		t.Fatalf("traffic through the rules changed the fingerprint: %q, %q", fp[6], fp[7])
	}
	counters := ns.MustExec(t, "iptables-legacy", "-L", "INPUT", "-v", "-n", "-x")
	if !regexp.MustCompile(`(?m)^\s*[1-9]\d*\s+\d+\s+REJECT`).MatchString(counters) {
		t.Fatalf("the test's traffic did not reach the REJECT rule, so it shows nothing:\n%s", counters)
	}

	// The same for IPv6, whose entries are laid out differently.
	fp = nil
	print()
	ns.MustExec(t, "ip6tables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "REJECT", "--reject-with", "tcp-reset")
	print()
	ns.Do(func() error {
		for i := 0; i < 3; i++ {
			if c, err := net.DialTimeout("tcp", "[::1]:9", time.Second); err == nil {
				c.Close()
			}
		}
		return nil
	})
	print()
	counters = ns.MustExec(t, "ip6tables-legacy", "-L", "INPUT", "-v", "-n", "-x")
	ns.MustExec(t, "ip6tables-legacy", "-R", "INPUT", "1", "-p", "tcp", "--dport", "8", "-j", "REJECT", "--reject-with", "tcp-reset")
	print()
	if fp[0] == fp[1] || fp[1] != fp[2] || fp[2] == fp[3] || !regexp.MustCompile(`(?m)^\s*[1-9]\d*\s+\d+\s+REJECT`).MatchString(counters) {
		t.Fatalf("IPv6 fingerprints %q (want: change, same after traffic, change)\n%s", fp, counters)
	}
}

// Probe counts other software's rules only: drainctl's own jumps in
// iptables-nft's chains (commented drainctl:jump in an xt comment
// match) must not make a host look like an iptables-nft firewall's.
func TestKernelProbeSkipsDrainctlsJumps(t *testing.T) {
	l := hostLab(t)
	f, _ := openHost(t, l.srv, forward.BackendIptablesNft, "")
	if err := f.Apply(context.Background(), forward.Forward{From: 81, To: 80}); err != nil {
		t.Fatal(err)
	}
	probe := func() forward.HostRules {
		var h forward.HostRules
		if err := l.srv.Do(func() error {
			conn, err := nftables.New()
			if err != nil {
				return err
			}
			h, err = forward.Probe(conn)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h := probe(); h.IptablesNft != 0 || !slices.Contains(h.Drainctl, forward.BackendIptablesNft) {
		t.Fatalf("drainctl's rules only: %+v, want iptables-nft 0 and drainctl's rules found there", h)
	}
	l.srv.MustExec(t, "iptables-nft", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "8080", "-m", "comment", "--comment", "someone else", "-j", "ACCEPT")
	if h := probe(); h.IptablesNft != 1 {
		t.Fatalf("one rule of another program: %+v, want iptables-nft 1", h)
	}
}
