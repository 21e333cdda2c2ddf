package lbview

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Kind is what one captured packet says about a health check.
type Kind int

const (
	// Attempt is a SYN to the forward port from the network: a load
	// balancer's check begins.
	Attempt Kind = iota
	// Accepted is the host's SYN-ACK to a SYN on the forward port (the
	// forward redirected it; the check reaches the web server).
	Accepted
	// Refused is the host's RST to a SYN on the forward port (the forward
	// is withdrawn; the check fails).
	Refused
)

// String names the kind, for logs and tests.
func (k Kind) String() string {
	switch k {
	case Attempt:
		return "attempt"
	case Accepted:
		return "accepted"
	case Refused:
		return "refused"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Packet is one captured SYN or answer.
type Packet struct {
	Time   time.Time
	Remote netip.AddrPort // the load balancer's address and source port
	Local  netip.Addr     // this host's address it checks
	Kind   Kind
}

// Capture reads the SYNs that arrive on a forward port and the host's
// answers to them (SYN-ACK or RST), on every interface, from one packet
// socket.
//
// Why a packet socket and not a netfilter rule (NFLOG, a counting set):
// it sees what the load balancer is sent whatever the firewall does —
// iptables or nftables backend, a ruleset flushed by another tool, a
// firewall that drops the checks before drainctl's rules (seen as
// attempts with no answer) — and it adds no rule to anyone's ruleset.
// The kernel runs the classic BPF filter below on each packet and copies
// only the matching ones (a few per second), so a busy server pays a few
// instructions per packet, not a copy.
type Capture struct {
	port   uint16
	file   *os.File
	closed atomic.Bool
}

// Listen opens the capture for the forward port in the caller's network
// namespace. It needs CAP_NET_RAW.
func Listen(port uint16) (*Capture, error) {
	raw, err := bpf.Assemble(filter(port))
	if err != nil {
		return nil, fmt.Errorf("packet filter: %w", err)
	}
	ins := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		ins[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	// Created with protocol 0 (it receives nothing), given its filter,
	// and only then bound: no unfiltered packet is ever queued. Bound to
	// every protocol because the kernel hands outgoing packets (the
	// answers) only to such sockets.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket (needs CAP_NET_RAW): %w", err)
	}
	prog := unix.SockFprog{Len: uint16(len(ins)), Filter: &ins[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("attach packet filter: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL)}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind packet socket: %w", err)
	}
	// os.NewFile on a non-blocking descriptor puts it in the runtime's
	// poller: reads park the goroutine, and Close wakes them.
	return &Capture{port: port, file: os.NewFile(uintptr(fd), "packet")}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// filter keeps IPv4 and IPv6 TCP segments (not IPv4 fragments past the
// first) that are either a SYN (no ACK) to port, or a SYN-ACK or RST from
// port. SOCK_DGRAM packet sockets hand the filter the network header at
// offset 0; the IP version is read there (the frame's protocol is checked
// again in Go, where it is exact).
func filter(port uint16) []bpf.Instruction {
	const keep, drop = 128, 0 // bytes kept: all headers fit
	// Skips count instructions to jump over; the comments give the
	// targets' indexes: v4 at 4, v6 at 10, the TCP body at 13, keep 24,
	// drop 25.
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 1}, // 0
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 4, SkipTrue: 1},                // → 4
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipTrue: 6, SkipFalse: 21}, // → 10, drop
		// IPv4: TCP, no fragment offset, X = header length.
		bpf.LoadAbsolute{Off: 9, Size: 1}, // 4
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.IPPROTO_TCP, SkipFalse: 19},
		bpf.LoadAbsolute{Off: 6, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 17},
		bpf.LoadMemShift{Off: 0},
		bpf.Jump{Skip: 3}, // → 13
		// IPv6: next header TCP (a check's SYN has no extension header).
		bpf.LoadAbsolute{Off: 6, Size: 1}, // 10
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.IPPROTO_TCP, SkipFalse: 13},
		bpf.LoadConstant{Dst: bpf.RegX, Val: 40},
		// TCP, at X.
		bpf.LoadIndirect{Off: 0, Size: 2},                               // 13: source port
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(port), SkipTrue: 5}, // → 20
		bpf.LoadIndirect{Off: 2, Size: 2},                               // destination port
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(port), SkipFalse: 8},
		bpf.LoadIndirect{Off: 13, Size: 1}, // flags
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x12},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x02, SkipTrue: 4, SkipFalse: 5}, // SYN alone
		bpf.LoadIndirect{Off: 13, Size: 1},                                    // 20: from port
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x04, SkipTrue: 2},             // RST
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x12},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x12, SkipFalse: 1}, // SYN-ACK
		bpf.RetConstant{Val: keep},                               // 24
		bpf.RetConstant{Val: drop},                               // 25
	}
	return prog
}

// Run reads packets until Close, calling fn for each. It returns nil
// after Close.
func (c *Capture) Run(fn func(Packet)) error {
	rc, err := c.file.SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 256)
	for {
		var (
			n    int
			from unix.Sockaddr
			rerr error
		)
		err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		})
		if c.closed.Load() {
			return nil
		}
		if err == nil {
			err = rerr
		}
		if err != nil {
			return fmt.Errorf("read packet socket: %w", err)
		}
		ll, _ := from.(*unix.SockaddrLinklayer)
		if ll == nil || (ll.Protocol != htons(unix.ETH_P_IP) && ll.Protocol != htons(unix.ETH_P_IPV6)) {
			continue
		}
		if p, ok := parse(buf[:n], ll.Pkttype == unix.PACKET_OUTGOING, c.port); ok {
			p.Time = time.Now()
			fn(p)
		}
	}
}

// parse reads one filtered packet. Attempts count only when they arrive
// (a SYN on the loopback is seen leaving too), answers only when they
// leave.
func parse(b []byte, outgoing bool, port uint16) (Packet, bool) {
	if len(b) < 1 {
		return Packet{}, false
	}
	var src, dst netip.Addr
	var tcp []byte
	switch b[0] >> 4 {
	case 4:
		ihl := int(b[0]&0xf) * 4
		if ihl < 20 || len(b) < ihl+14 {
			return Packet{}, false
		}
		src, dst = netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
		tcp = b[ihl:]
	case 6:
		if len(b) < 40+14 {
			return Packet{}, false
		}
		src, dst = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
		tcp = b[40:]
	default:
		return Packet{}, false
	}
	sport, dport := binary.BigEndian.Uint16(tcp[0:2]), binary.BigEndian.Uint16(tcp[2:4])
	flags := tcp[13]
	switch {
	case dport == port && flags&0x12 == 0x02 && !outgoing:
		return Packet{Remote: netip.AddrPortFrom(src, sport), Local: dst, Kind: Attempt}, true
	case sport == port && flags&0x04 != 0 && outgoing:
		return Packet{Remote: netip.AddrPortFrom(dst, dport), Local: src, Kind: Refused}, true
	case sport == port && flags&0x12 == 0x12 && outgoing:
		return Packet{Remote: netip.AddrPortFrom(dst, dport), Local: src, Kind: Accepted}, true
	}
	return Packet{}, false
}

// Close stops Run and releases the socket.
func (c *Capture) Close() error {
	c.closed.Store(true)
	return c.file.Close()
}
