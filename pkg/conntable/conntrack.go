package conntable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// ctnetlink attribute numbers (linux/netfilter/nfnetlink_conntrack.h).
const (
	ctaTupleOrig  = 1
	ctaTupleReply = 2
	ctaFilter     = 25

	ctaTupleIP    = 1
	ctaTupleProto = 2

	ctaIPv4Src = 1
	ctaIPv4Dst = 2
	ctaIPv6Src = 3
	ctaIPv6Dst = 4

	ctaProtoNum     = 1
	ctaProtoSrcPort = 2
	ctaProtoDstPort = 3

	ctaFilterOrigFlags  = 1
	ctaFilterReplyFlags = 2
	filterProtoNum      = 1 << 3 // CTA_FILTER_F_CTA_PROTO_NUM
	filterProtoDstPort  = 1 << 5 // CTA_FILTER_F_CTA_PROTO_DST_PORT

	ipctnlMsgCtGet = 1
)

// pair is a connection as the server's socket sees it.
type pair struct{ local, peer netip.AddrPort }

// classifier tells connections that came through a forward from direct
// ones, by their conntrack entry: a forwarded connection's ORIGINAL
// destination port is the forward port.
//
// Conntrack is only asked how a live socket arrived, never whether the
// server is drained: its entries outlive the connections (docs/design.md).
type classifier struct {
	nf *streamConn     // filtered dumps, read as a stream
	ct *conntrack.Conn // per-connection lookups
	// perSocket is set once the kernel refused a filtered dump (before
	// Linux 5.8): classification then looks up each socket.
	perSocket bool
}

func newClassifier(netns int) (*classifier, error) {
	nf, err := dialStream(unix.NETLINK_NETFILTER, netns)
	if err != nil {
		return nil, fmt.Errorf("open conntrack netlink socket: %w", err)
	}
	ct, err := conntrack.Dial(&netlink.Config{NetNS: netns})
	if err != nil {
		nf.close()
		return nil, fmt.Errorf("open conntrack netlink socket: %w", err)
	}
	return &classifier{nf: nf, ct: ct}, nil
}

func (c *classifier) close() error {
	return errors.Join(c.nf.close(), c.ct.Close())
}

// forwardedSet returns every TCP connection whose original destination
// port is one of fromPorts, keyed as its socket sees it: the reply tuple
// (source = the server's address and service port, destination = the
// client, after any source-port remapping by NAT). The kernel does the
// filtering (CTA_FILTER), so the cost follows the forwarded connections,
// not the size of the conntrack table.
func (c *classifier) forwardedSet(fromPorts []uint16) (map[pair]struct{}, error) {
	set := map[pair]struct{}{}
	for _, port := range fromPorts {
		for _, fam := range []netfilter.ProtoFamily{netfilter.ProtoIPv4, netfilter.ProtoIPv6} {
			req, err := netfilter.MarshalNetlink(netfilter.Header{
				SubsystemID: netfilter.NFSubsysCTNetlink,
				MessageType: ipctnlMsgCtGet,
				Family:      fam,
				Flags:       netlink.Request | netlink.Dump,
			}, filterAttrs(port))
			if err != nil {
				return nil, err
			}
			if _, err := c.nf.c.Send(req); err != nil {
				return nil, fmt.Errorf("conntrack dump of port %d: %w", port, err)
			}
			err = c.nf.receive(func(m []byte) error {
				if p, ok := replyTuple(m); ok {
					set[p] = struct{}{}
				}
				return nil
			})
			if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
				return nil, fmt.Errorf("%w: %w", errNotSupported, err)
			}
			if err != nil {
				return nil, fmt.Errorf("conntrack dump of port %d: %w", port, err)
			}
		}
	}
	return set, nil
}

// filterAttrs asks for entries whose original tuple is TCP to port.
func filterAttrs(port uint16) []netfilter.Attribute {
	return []netfilter.Attribute{
		{Type: ctaTupleOrig, Nested: true, Children: []netfilter.Attribute{
			{Type: ctaTupleProto, Nested: true, Children: []netfilter.Attribute{
				{Type: ctaProtoNum, Data: []byte{unix.IPPROTO_TCP}},
				{Type: ctaProtoDstPort, Data: binary.BigEndian.AppendUint16(nil, port)},
			}},
		}},
		{Type: ctaFilter, Nested: true, Children: []netfilter.Attribute{
			// NLA_U32 in host byte order, unlike the tuple's fields.
			{Type: ctaFilterOrigFlags, Data: binary.NativeEndian.AppendUint32(nil, filterProtoNum|filterProtoDstPort)},
			{Type: ctaFilterReplyFlags, Data: binary.NativeEndian.AppendUint32(nil, 0)},
		}},
	}
}

// replyTuple decodes the reply tuple of one conntrack entry: the payload
// after the 4-byte nfgenmsg header is CTA_TUPLE_REPLY { CTA_TUPLE_IP {
// src, dst }, CTA_TUPLE_PROTO { num, sport, dport } }, ports big-endian.
func replyTuple(m []byte) (pair, bool) {
	if len(m) < 4 {
		return pair{}, false
	}
	var src, dst netip.Addr
	var sport, dport uint16
	eachAttr(m[4:], func(typ uint16, reply []byte) {
		if typ != ctaTupleReply {
			return
		}
		eachAttr(reply, func(typ uint16, p []byte) {
			switch typ {
			case ctaTupleIP:
				eachAttr(p, func(typ uint16, a []byte) {
					addr, _ := netip.AddrFromSlice(a)
					switch typ {
					case ctaIPv4Src, ctaIPv6Src:
						src = addr
					case ctaIPv4Dst, ctaIPv6Dst:
						dst = addr
					}
				})
			case ctaTupleProto:
				eachAttr(p, func(typ uint16, a []byte) {
					if len(a) < 2 {
						return
					}
					switch typ {
					case ctaProtoSrcPort:
						sport = binary.BigEndian.Uint16(a)
					case ctaProtoDstPort:
						dport = binary.BigEndian.Uint16(a)
					}
				})
			}
		})
	})
	if !src.IsValid() || !dst.IsValid() {
		return pair{}, false
	}
	return pair{netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)}, true
}

// lookup finds one socket's conntrack entry by its reply tuple and returns
// the original destination port (0 when there is no entry). It serves
// kernels without filtered dumps.
func (c *classifier) lookup(local, peer netip.AddrPort) (uint16, error) {
	f, err := c.ct.Get(conntrack.Flow{TupleReply: conntrack.Tuple{
		IP:    conntrack.IPTuple{SourceAddress: local.Addr(), DestinationAddress: peer.Addr()},
		Proto: conntrack.ProtoTuple{Protocol: unix.IPPROTO_TCP, SourcePort: local.Port(), DestinationPort: peer.Port()},
	}})
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return 0, nil
		}
		return 0, err
	}
	return f.TupleOrig.Proto.DestinationPort, nil
}

// errNotSupported marks a kernel that cannot filter conntrack dumps.
var errNotSupported = errors.New("filtered conntrack dumps not supported by this kernel")
