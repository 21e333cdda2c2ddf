package conntable

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Kernel constants of linux/inet_diag.h that golang.org/x/sys lacks.
const (
	inetDiagReqBytecode = 1  // INET_DIAG_REQ_BYTECODE: request attribute
	inetDiagInfo        = 2  // INET_DIAG_INFO: tcp_info, in replies
	inetDiagBcJmp       = 1  // INET_DIAG_BC_JMP: always take "no"
	inetDiagBcSEq       = 11 // INET_DIAG_BC_S_EQ: local port equals
	sizeofReqV2         = 56 // struct inet_diag_req_v2
	sizeofDiagMsg       = 72 // struct inet_diag_msg
	tcpEstablished      = 1  // TCP_ESTABLISHED
)

// Socket is one established TCP socket as sock_diag reports it.
type Socket struct {
	Local, Peer netip.AddrPort
	// Cookie identifies the socket for its lifetime (it is never reused
	// while the kernel runs), so polls can follow one connection.
	Cookie uint64
	Info   unix.TCPInfo
}

// SinceRecv is how long ago the socket last received data.
func (s *Socket) SinceRecv() time.Duration {
	return time.Duration(s.Info.Last_data_recv) * time.Millisecond
}

// SinceSent is how long ago the socket last sent data.
func (s *Socket) SinceSent() time.Duration {
	return time.Duration(s.Info.Last_data_sent) * time.Millisecond
}

// streamConn is a netlink socket whose dumps are read as a stream, into
// one reused buffer: the library's Receive would hold a whole dump in
// memory at once (45 MB for 50,000 conntrack entries).
type streamConn struct {
	c    *netlink.Conn
	raw  syscall.RawConn
	buf  []byte
	n    int
	rerr error
	read func(fd uintptr) bool // built once: a closure per read allocates
}

// dialStream opens a netlink socket of family proto, in network namespace
// netns when it is not zero (a file descriptor, as from netns.GetFromName).
func dialStream(proto, netns int) (*streamConn, error) {
	c, err := netlink.Dial(proto, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, err
	}
	raw, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	// 32 KiB is what the kernel fills per read of a dump (and what ss uses).
	s := &streamConn{c: c, raw: raw, buf: make([]byte, 32<<10)}
	s.read = func(fd uintptr) bool {
		s.n, _, s.rerr = unix.Recvfrom(int(fd), s.buf, 0)
		return !errors.Is(s.rerr, unix.EAGAIN)
	}
	return s, nil
}

func (s *streamConn) close() error { return s.c.Close() }

// dumper lists sockets over one NETLINK_SOCK_DIAG socket.
type dumper struct{ *streamConn }

func newDumper(netns int) (*dumper, error) {
	s, err := dialStream(unix.NETLINK_SOCK_DIAG, netns)
	if err != nil {
		return nil, fmt.Errorf("open sock_diag netlink socket: %w", err)
	}
	return &dumper{s}, nil
}

// portFilter is the inet_diag bytecode for "local port is one of ports",
// what `ss` builds for `sport = :80 or sport = :443`. The kernel runs it on
// every socket and sends only those that match.
//
// Ops are 4 bytes {code, yes, no}; a jump landing exactly at the end
// accepts, one landing past it rejects. The kernel's audit follows the
// "yes" jumps only and wants every "no" target on that path, so each port
// is a 12-byte block laid out like ss's:
//
//	S_EQ  yes=8 (to the JMP)  no=12 (to the next block)
//	      port (in the "no" field of an operand op)
//	JMP   yes=4               no=to the end: accept
//
// and a final JMP jumps 4 bytes past the end: no port matched, reject.
func portFilter(ports []uint16) []byte {
	total := 12*len(ports) + 4
	bc := make([]byte, 0, total)
	op := func(code, yes byte, no uint16) {
		bc = append(bc, code, yes)
		bc = binary.NativeEndian.AppendUint16(bc, no)
	}
	for i, p := range ports {
		op(inetDiagBcSEq, 8, 12)
		op(0, 0, p)
		op(inetDiagBcJmp, 4, uint16(total-(12*i+8)))
	}
	op(inetDiagBcJmp, 4, 8)
	return bc
}

// request builds a SOCK_DIAG_BY_FAMILY dump request for established TCP
// sockets of one family, with tcp_info and the port filter.
func request(family uint8, ports []uint16) netlink.Message {
	req := make([]byte, sizeofReqV2)
	req[0] = family
	req[1] = unix.IPPROTO_TCP
	req[2] = 1 << (inetDiagInfo - 1) // ask for tcp_info
	binary.NativeEndian.PutUint32(req[4:], 1<<tcpEstablished)
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(inetDiagReqBytecode, portFilter(ports))
	attrs, _ := ae.Encode() // cannot fail for one fixed attribute
	return netlink.Message{
		Header: netlink.Header{Type: unix.SOCK_DIAG_BY_FAMILY, Flags: netlink.Request | netlink.Dump},
		Data:   append(req, attrs...),
	}
}

// each calls fn for every established TCP socket, IPv4 and IPv6, whose
// local port is one of ports. s is reused between calls: copy what you keep.
func (d *dumper) each(ctx context.Context, ports []uint16, fn func(s *Socket)) error {
	if len(ports) == 0 {
		return errors.New("no port to list")
	}
	var s Socket
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := d.c.Send(request(fam, ports)); err != nil {
			return fmt.Errorf("sock_diag request: %w", err)
		}
		if err := d.receive(func(m []byte) error {
			if !parseDiagMsg(m, &s) {
				return nil
			}
			fn(&s)
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// receive reads one dump to its end, calling fn with each message's
// payload (after the netlink header).
func (s *streamConn) receive(fn func([]byte) error) error {
	for {
		err := s.raw.Read(s.read)
		if err == nil {
			err = s.rerr
		}
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		b := s.buf[:s.n]
		for len(b) >= unix.SizeofNlMsghdr {
			l := int(binary.NativeEndian.Uint32(b[0:4]))
			typ := binary.NativeEndian.Uint16(b[4:6])
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return fmt.Errorf("netlink: malformed message (length %d of %d)", l, len(b))
			}
			payload := b[unix.SizeofNlMsghdr:l]
			switch typ {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(payload) >= 4 {
					if errno := -int32(binary.NativeEndian.Uint32(payload)); errno != 0 {
						return fmt.Errorf("netlink: %w", syscall.Errno(errno))
					}
				}
				return nil
			}
			if err := fn(payload); err != nil {
				return err
			}
			b = b[min((l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1), len(b)):]
		}
	}
}

// parseDiagMsg decodes struct inet_diag_msg and its INET_DIAG_INFO
// attribute into s. IPv4-mapped IPv6 addresses (IPv4 clients of a
// dual-stack listener) are reported as IPv4.
func parseDiagMsg(m []byte, s *Socket) bool {
	if len(m) < sizeofDiagMsg {
		return false
	}
	fam := m[0]
	sport := binary.BigEndian.Uint16(m[4:6])
	dport := binary.BigEndian.Uint16(m[6:8])
	var src, dst netip.Addr
	if fam == unix.AF_INET {
		src = netip.AddrFrom4([4]byte(m[8:12]))
		dst = netip.AddrFrom4([4]byte(m[24:28]))
	} else {
		src = netip.AddrFrom16([16]byte(m[8:24])).Unmap()
		dst = netip.AddrFrom16([16]byte(m[24:40])).Unmap()
	}
	s.Local = netip.AddrPortFrom(src, sport)
	s.Peer = netip.AddrPortFrom(dst, dport)
	s.Cookie = uint64(binary.NativeEndian.Uint32(m[44:48])) | uint64(binary.NativeEndian.Uint32(m[48:52]))<<32
	s.Info = unix.TCPInfo{}
	eachAttr(m[sizeofDiagMsg:], func(typ uint16, p []byte) {
		if typ == inetDiagInfo {
			// tcp_info grows with kernel versions: copy what both sides know.
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&s.Info)), unsafe.Sizeof(s.Info)), p)
		}
	})
	return true
}
