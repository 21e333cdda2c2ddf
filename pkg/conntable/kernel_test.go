package conntable

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/internal/forwardtest"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

const (
	srv4, srv6 = nstest.Srv4, nstest.Srv6
)

var fwd = forward.Forward{From: 81, To: 80}

// host is a server namespace with an HTTP server on :80 and the forward
// applied, and a client namespace linked to it.
type host struct {
	srv, cli *nstest.NS
}

func newHost(t *testing.T) *host {
	t.Helper()
	h := &host{}
	h.srv, h.cli = nstest.Pair(t, "ct")
	h.srv.ServeHTTP(t, ":80")
	forwardtest.Apply(t, h.srv, fwd)
	return h
}

func dial(t *testing.T, ns *nstest.NS, addr string) *nstest.Client {
	t.Helper()
	c := ns.Dial(t, addr)
	c.MustGet(t)
	return c
}

// classifyMode picks how new sockets are classified.
type classifyMode string

const (
	modeLookup   classifyMode = "per-socket-lookups" // few new sockets
	modeDump     classifyMode = "filtered-dump"      // many new sockets
	modeNoFilter classifyMode = "kernel-without-filtered-dumps"
)

func open(t *testing.T, h *host, m classifyMode) *Table {
	t.Helper()
	tb, err := Open(Options{Forwards: []forward.Forward{fwd}, NetNS: h.srv.FD()})
	if err != nil {
		t.Fatal(err)
	}
	switch m {
	case modeLookup:
		tb.lookupBudget = 1 << 30
	case modeDump:
		tb.lookupBudget = 0
	case modeNoFilter:
		tb.lookupBudget, tb.perSock = 0, true
	}
	t.Cleanup(func() { tb.Close() })
	return tb
}

func TestKernelClassifiesForwardAndDirect(t *testing.T) {
	for _, m := range []classifyMode{modeLookup, modeDump, modeNoFilter} {
		t.Run(string(m), func(t *testing.T) {
			h := newHost(t)
			want := map[netip.AddrPort]Path{}
			for _, c := range []struct {
				ns   *nstest.NS
				addr string
				path Path
			}{
				{h.cli, srv4 + ":81", PathForward},
				{h.cli, srv4 + ":81", PathForward},
				{h.cli, "[" + srv6 + "]:81", PathForward},
				{h.cli, srv4 + ":80", PathDirect},
				{h.cli, "[" + srv6 + "]:80", PathDirect},
				{h.srv, "127.0.0.1:81", PathForward}, // through the OUTPUT redirect
				{h.srv, "127.0.0.1:80", PathDirect},
			} {
				want[dial(t, c.ns, c.addr).Peer()] = c.path
			}
			got, err := open(t, h, m).List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("listed %d connections, want %d: %+v", len(got), len(want), got)
			}
			for _, c := range got {
				if c.Local.Port() != 80 {
					t.Errorf("%s: local port %d, want 80 (the service port)", c.Peer, c.Local.Port())
				}
				if p, ok := want[c.Peer]; !ok || p != c.Path {
					t.Errorf("%s: path %q, want %q", c.Peer, c.Path, p)
				}
				if c.Info.Bytes_received == 0 || c.Info.Bytes_acked == 0 {
					t.Errorf("%s: no bytes in tcp_info: %+v", c.Peer, c.Info)
				}
			}
		})
	}
}

func TestKernelIdleAndActive(t *testing.T) {
	h := newHost(t)
	idle := dial(t, h.cli, srv4+":80")
	busy := dial(t, h.cli, srv4+":81")
	time.Sleep(1500 * time.Millisecond)
	busy.MustGet(t)
	got, err := open(t, h, modeLookup).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, c := range got {
		switch c.Peer {
		case idle.Peer():
			seen++
			if c.Idle() < time.Second {
				t.Errorf("idle connection: idle for %v, want >= 1s (tcp_info last data)", c.Idle())
			}
		case busy.Peer():
			seen++
			if c.Idle() > 500*time.Millisecond {
				t.Errorf("busy connection: idle for %v, want < 500ms", c.Idle())
			}
		}
	}
	if seen != 2 {
		t.Fatalf("found %d of the 2 connections: %+v", seen, got)
	}
}

func TestKernelOtherPortsAreNotListed(t *testing.T) {
	h := newHost(t)
	var ln net.Listener
	if err := h.srv.Do(func() (err error) { ln, err = net.Listen("tcp", ":8080"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for i := 0; i < 300; i++ {
		var c net.Conn
		if err := h.cli.Do(func() (err error) { c, err = net.Dial("tcp", srv4+":8080"); return err }); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	one := dial(t, h.cli, srv4+":80")
	got, err := open(t, h, modeDump).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Peer != one.Peer() {
		t.Fatalf("listed %+v, want only the one connection to :80 (300 to :8080 must be filtered by the kernel)", got)
	}
}

// TestKernelClassificationCache: a socket is classified once. After its
// conntrack entry is gone (flushed) it keeps its path; a closed socket
// leaves the cache; a new one is looked up.
func TestKernelClassificationCache(t *testing.T) {
	nstest.RequireCmd(t, "conntrack")
	h := newHost(t)
	a := dial(t, h.cli, srv4+":81")
	b := dial(t, h.cli, srv4+":80")
	tb := open(t, h, modeLookup)
	paths := func() map[netip.AddrPort]Path {
		got, err := tb.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		m := map[netip.AddrPort]Path{}
		for _, c := range got {
			m[c.Peer] = c.Path
		}
		return m
	}
	if p := paths(); p[a.Peer()] != PathForward || p[b.Peer()] != PathDirect {
		t.Fatalf("first poll: %v", p)
	}
	h.srv.MustExec(t, "conntrack", "-F")
	if p := paths(); p[a.Peer()] != PathForward {
		t.Fatalf("after conntrack -F the cached path was lost: %v", p)
	}
	b.Conn.Close()
	time.Sleep(100 * time.Millisecond)
	c := dial(t, h.cli, srv4+":81")
	if p := paths(); len(p) != 2 || p[c.Peer()] != PathForward {
		t.Fatalf("after closing one and opening another: %v", p)
	}
	if len(tb.cache) != 2 {
		t.Fatalf("cache holds %d entries for 2 live sockets", len(tb.cache))
	}
}

func TestKernelSeveralServicePorts(t *testing.T) {
	h := newHost(t)
	h.srv.ServeHTTP(t, ":443")
	h.srv.ServeHTTP(t, ":8443")
	a := dial(t, h.cli, srv4+":80")
	b := dial(t, h.cli, srv4+":443")
	dial(t, h.cli, srv4+":8443") // not listed
	tb, err := Open(Options{Forwards: []forward.Forward{fwd}, Ports: []uint16{443}, NetNS: h.srv.FD()})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	got, err := tb.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("listed %+v, want the connections to :80 and :443 only", got)
	}
	for _, c := range got {
		if c.Peer != a.Peer() && c.Peer != b.Peer() {
			t.Errorf("unexpected %s -> %s", c.Peer, c.Local)
		}
	}
}
