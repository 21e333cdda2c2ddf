package lbview

import (
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/bpf"
)

// segment builds an IPv4 or IPv6 packet carrying a TCP header.
func segment(src, dst netip.Addr, sport, dport uint16, flags byte) []byte {
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	tcp[12] = 5 << 4
	tcp[13] = flags
	if src.Is4() {
		ip := make([]byte, 20)
		ip[0], ip[9] = 0x45, 6
		s, d := src.As4(), dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		return append(ip, tcp...)
	}
	ip := make([]byte, 40)
	ip[0], ip[6] = 0x60, 6
	s, d := src.As16(), dst.As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	return append(ip, tcp...)
}

const (
	syn    = 0x02
	synack = 0x12
	ack    = 0x10
	rst    = 0x04
	rstack = 0x14
	fin    = 0x11
)

var (
	lb4, host4 = netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.11")
	lb6, host6 = netip.MustParseAddr("fd00::2"), netip.MustParseAddr("fd00::11")
)

// TestFilter runs the kernel's filter program in x/net/bpf's VM: it must
// keep exactly the SYNs to the port and the port's SYN-ACKs and RSTs.
func TestFilter(t *testing.T) {
	for _, fam := range []struct {
		v6       bool
		lb, host netip.Addr
	}{{false, lb4, host4}, {true, lb6, host6}} {
		vm, err := bpf.NewVM(filter(81))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name         string
			sport, dport uint16
			flags        byte
			keep         bool
		}{
			{"SYN to 81", 40000, 81, syn, true},
			{"SYN-ACK from 81", 81, 40000, synack, true},
			{"RST from 81", 81, 40000, rst, true},
			{"RST-ACK from 81", 81, 40000, rstack, true},
			{"ACK to 81", 40000, 81, ack, false},
			{"data from 81", 81, 40000, ack | 0x08, false},
			{"FIN from 81", 81, 40000, fin, false},
			{"SYN-ACK to 81 (not an attempt)", 40000, 81, synack, false},
			{"SYN to 80", 40000, 80, syn, false},
			{"RST from 80", 80, 40000, rst, false},
			{"SYN to 8081", 40000, 8081, syn, false},
		} {
			n, err := vm.Run(segment(fam.lb, fam.host, c.sport, c.dport, c.flags))
			if err != nil {
				t.Fatalf("v6=%v %s: %v", fam.v6, c.name, err)
			}
			if (n > 0) != c.keep {
				t.Errorf("v6=%v %s: filter kept %d bytes, want keep=%v", fam.v6, c.name, n, c.keep)
			}
		}
	}
	// Not TCP, an IPv4 fragment, not IP at all: dropped.
	vm, _ := bpf.NewVM(filter(81))
	udp := segment(lb4, host4, 40000, 81, syn)
	udp[9] = 17
	frag := segment(lb4, host4, 40000, 81, syn)
	frag[7] = 1
	arp := make([]byte, 60)
	arp[1] = 1
	for name, b := range map[string][]byte{"udp": udp, "fragment": frag, "arp": arp} {
		if n, _ := vm.Run(b); n != 0 {
			t.Errorf("%s kept", name)
		}
	}
	// An IPv4 header with options moves the TCP header: still read right.
	opts := segment(lb4, host4, 40000, 81, syn)
	opts = append(append(opts[:20:20], 1, 1, 1, 1), opts[20:]...)
	opts[0] = 0x46
	if n, _ := vm.Run(opts); n == 0 {
		t.Error("SYN behind IPv4 options dropped")
	}
	if p, ok := parse(opts, false, 81); !ok || p.Kind != Attempt || p.Remote.Port() != 40000 {
		t.Errorf("parse with options: %+v %v", p, ok)
	}
}

func TestParseDirection(t *testing.T) {
	for _, c := range []struct {
		name     string
		b        []byte
		outgoing bool
		want     Kind
		ok       bool
	}{
		{"SYN in", segment(lb4, host4, 40000, 81, syn), false, Attempt, true},
		{"SYN out (loopback copy)", segment(lb4, host4, 40000, 81, syn), true, 0, false},
		{"SYN-ACK out", segment(host4, lb4, 81, 40000, synack), true, Accepted, true},
		{"SYN-ACK in (a remote port 81 answering us)", segment(host4, lb4, 81, 40000, synack), false, 0, false},
		{"RST out", segment(host6, lb6, 81, 40000, rstack), true, Refused, true},
	} {
		p, ok := parse(c.b, c.outgoing, 81)
		if ok != c.ok || (ok && p.Kind != c.want) {
			t.Errorf("%s: %+v %v", c.name, p, ok)
		}
		if ok && p.Remote.Port() != 40000 {
			t.Errorf("%s: remote %v, want the load balancer's port 40000", c.name, p.Remote)
		}
		if ok && p.Local != host4 && p.Local != host6 {
			t.Errorf("%s: local %v, want this host's address", c.name, p.Local)
		}
	}
}

// feed records checks from lb every interval from start: n attempts,
// each answered by kind.
func feed(v *View, lb netip.Addr, start time.Time, interval time.Duration, n int, kind Kind) time.Time {
	t := start
	for i := range n {
		port := uint16(40000 + i)
		v.Record(81, Packet{Time: t, Remote: netip.AddrPortFrom(lb, port), Kind: Attempt})
		v.Record(81, Packet{Time: t.Add(time.Millisecond), Remote: netip.AddrPortFrom(lb, port), Kind: kind})
		t = t.Add(interval)
	}
	return t
}

func TestViewCountsAndInterval(t *testing.T) {
	v := New(Settings{})
	start := time.Now().Add(-10 * time.Second)
	next := feed(v, lb4, start, 500*time.Millisecond, 6, Accepted)
	feed(v, lb4, next, 500*time.Millisecond, 3, Refused)
	// A copy of one packet (a bridge and its port) counts once.
	dup := Packet{Time: next.Add(5 * time.Second), Remote: netip.AddrPortFrom(lb4, 50000), Kind: Attempt}
	v.Record(81, dup)
	dup.Time = dup.Time.Add(time.Millisecond)
	v.Record(81, dup)
	// One SYN from a scanner is not a load balancer.
	v.Record(81, Packet{Time: start, Remote: netip.MustParseAddrPort("192.0.2.9:1234"), Kind: Attempt})
	lbs := v.LoadBalancers()
	if len(lbs) != 1 {
		t.Fatalf("load balancers %+v, want only %v", lbs, lb4)
	}
	l := lbs[0]
	if l.Checks != 10 || l.Accepted != 6 || l.Refused != 3 {
		t.Errorf("counts %+v, want 10 checks, 6 accepted, 3 refused", l)
	}
	if time.Duration(l.Interval) != 500*time.Millisecond {
		t.Errorf("interval %v, want 500ms (the median ignores the one late check)", time.Duration(l.Interval))
	}
	if got := l.Describe(l.Last.Add(200 * time.Millisecond)); got != "10.0.0.2 checks port 81 every 0.5 s, last 0.2 s ago (10 checks, 3 refused)" {
		t.Errorf("describe: %q", got)
	}
}

func TestViewBoundsSources(t *testing.T) {
	v := New(Settings{MaxSources: 4})
	start := time.Now()
	for i := range 10 {
		a := netip.AddrFrom4([4]byte{10, 0, 1, byte(i)})
		feed(v, a, start.Add(time.Duration(i)*time.Second), time.Second, 3, Accepted)
	}
	lbs := v.LoadBalancers()
	if len(lbs) != 4 || lbs[0].Addr != netip.MustParseAddr("10.0.1.6") {
		t.Fatalf("kept %+v, want the 4 most recent (10.0.1.6–9)", lbs)
	}
}

func TestWaitOutAndBack(t *testing.T) {
	v := New(Settings{Fall: 2, Rise: 3})
	now := time.Now()
	// Two load balancers checking every 100 ms, a third gone quiet a
	// minute ago (not expected to confirm anything).
	feed(v, netip.MustParseAddr("10.0.0.9"), now.Add(-90*time.Second), 100*time.Millisecond, 5, Accepted)
	feed(v, lb4, now.Add(-time.Second), 100*time.Millisecond, 10, Accepted)
	feed(v, lb6, now.Add(-time.Second), 100*time.Millisecond, 10, Accepted)
	withdrawn := time.Now()
	go func() {
		feed(v, lb4, withdrawn.Add(20*time.Millisecond), 100*time.Millisecond, 2, Refused)
		feed(v, lb6, withdrawn.Add(30*time.Millisecond), 100*time.Millisecond, 1, Refused)
	}()
	ctx := context.Background()
	c := v.Wait(ctx, Out, withdrawn)
	if n, total := c.Count(); n != 1 || total != 2 {
		t.Fatalf("out: %d/%d confirmed, want 1/2: %+v", n, total, c)
	}
	if !strings.HasPrefix(c.Text(), "out of rotation on 1/2 load balancers (10.0.0.2 after 0.12 s); not confirmed by fd00::2: 1 of 2 checks refused in ") {
		t.Errorf("text %q", c.Text())
	}
	if time.Duration(c.Elapsed) < 200*time.Millisecond || time.Duration(c.Elapsed) > 2*time.Second {
		t.Errorf("gave up after %v, want its timeout (3 intervals + 0.5 s)", time.Duration(c.Elapsed))
	}
	restored := time.Now()
	go func() {
		feed(v, lb4, restored.Add(10*time.Millisecond), 50*time.Millisecond, 3, Accepted)
		feed(v, lb6, restored.Add(10*time.Millisecond), 50*time.Millisecond, 3, Accepted)
	}()
	c = v.Wait(ctx, Back, restored)
	if !c.All() || !strings.HasPrefix(c.Text(), "back in rotation on 2/2 load balancers (10.0.0.2 after 0.11 s, fd00::2 after 0.11 s)") {
		t.Errorf("back: %q", c.Text())
	}
	// Nobody checking: no wait, nothing confirmed, no text.
	c = New(Settings{}).Wait(ctx, Out, time.Now())
	if _, total := c.Count(); total != 0 || c.All() || c.Text() != "" {
		t.Errorf("no load balancer: %+v %q", c, c.Text())
	}
}

// The agent's unit restricts socket families with seccomp: without
// AF_PACKET there, Listen fails under systemd and the agent runs blind
// (it only warns). No systemd runs in the tests, so the unit is read.
func TestSystemdUnitAllowsThePacketSocket(t *testing.T) {
	b, err := os.ReadFile("../../systemd/drainctl.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RestrictAddressFamilies="); ok && !slices.Contains(strings.Fields(v), "AF_PACKET") {
			t.Errorf("systemd/drainctl.service: %s: no AF_PACKET, the health check capture cannot open", l)
		}
	}
}

func TestPortsText(t *testing.T) {
	if a, b := PortsText([]uint16{81}), PortsText([]uint16{81, 8081}); a != "port 81" || b != "ports 81, 8081" {
		t.Fatalf("%q, %q", a, b)
	}
}
