package conntable

import (
	"net/netip"
	"time"

	"github.com/drainctl/drainctl/pkg/jsonms"
)

// Listing is the connection table on the wire (drainctl connections
// --json): the service ports and each established connection.
type Listing struct {
	Ports       []uint16     `json:"ports"`
	Connections []ListedConn `json:"connections"`
}

// ListedConn is one connection of a Listing. Its durations are whole
// milliseconds (package jsonms), as the kernel counts them.
type ListedConn struct {
	Local     netip.AddrPort `json:"local"`
	Peer      netip.AddrPort `json:"peer"`
	Path      Path           `json:"path"`
	Idle      time.Duration  `json:"idle_ms"`
	SinceRecv time.Duration  `json:"since_recv_ms"`
	SinceSent time.Duration  `json:"since_sent_ms"`
	// BytesReceived and BytesSent (acknowledged) are the connection's
	// totals.
	BytesReceived uint64 `json:"bytes_received"`
	BytesSent     uint64 `json:"bytes_sent"`
	// RTTus is the kernel's smoothed round-trip time, in microseconds as
	// tcp_info gives it: the one duration not in milliseconds, since on a
	// LAN it is mostly under one.
	RTTus uint32 `json:"rtt_us"`
}

// NewListing is the listing of conns, connections of ports.
func NewListing(ports []uint16, conns []Conn) Listing {
	out := make([]ListedConn, 0, len(conns))
	for _, c := range conns {
		out = append(out, ListedConn{
			Local: c.Local, Peer: c.Peer, Path: c.Path,
			Idle: c.Idle(), SinceRecv: c.SinceRecv(), SinceSent: c.SinceSent(),
			BytesReceived: c.Info.Bytes_received, BytesSent: c.Info.Bytes_acked, RTTus: c.Info.Rtt,
		})
	}
	return Listing{Ports: ports, Connections: out}
}

// MarshalJSON encodes c with its durations in milliseconds.
func (c ListedConn) MarshalJSON() ([]byte, error) { return jsonms.Marshal(c) }

// UnmarshalJSON decodes c with its durations in milliseconds.
func (c *ListedConn) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, c) }
