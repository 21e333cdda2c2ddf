package api

// The socket's connections: each accepted one carries its peer (from the
// kernel), and the connections of users other than root are capped, in
// all and per user, so that one local user cannot take every descriptor
// of the agent nor crowd the operators out. Root is never refused: it is
// who repairs.

import (
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// Connection caps (Server's defaults).
const (
	maxConns        = 128 // connections of users other than root, in all
	maxConnsPerUser = 32  // of one user other than root
)

// overloadedAnswer is what a connection past a cap reads before it is
// closed: a complete HTTP answer, for curl and the CLI to show.
const overloadedAnswer = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"

// peerListener accepts the socket's connections and names their peers.
type peerListener struct {
	net.Listener
	max, perUser int

	mu     sync.Mutex
	total  int
	byUser map[uint32]int
}

func newPeerListener(ln net.Listener, max, perUser int) *peerListener {
	return &peerListener{Listener: ln, max: max, perUser: perUser, byUser: map[uint32]int{}}
}

// peerConn is a connection and its peer.
type peerConn struct {
	net.Conn
	peer    *Peer
	release func()
	once    sync.Once
}

func (c *peerConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// Accept returns the next connection within the caps; one past them is
// answered 503 and closed here, and Accept goes on waiting.
func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		p := connPeer(c)
		if release, ok := l.admit(p); ok {
			return &peerConn{Conn: c, peer: p, release: release}, nil
		}
		go refuseOverloaded(c) // bounded by its write deadline; accepting goes on
	}
}

// admit counts a connection of p, or refuses it past a cap.
func (l *peerListener) admit(p *Peer) (release func(), ok bool) {
	if p != nil && p.Cred != nil && p.Cred.Uid == 0 {
		return func() {}, true
	}
	uid := uint32(1<<32 - 1) // an unknown peer: counted as one more user
	if p != nil && p.Cred != nil {
		uid = p.Cred.Uid
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.max || l.byUser[uid] >= l.perUser {
		return nil, false
	}
	l.total++
	l.byUser[uid]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.total--
		if l.byUser[uid]--; l.byUser[uid] <= 0 {
			delete(l.byUser, uid)
		}
	}, true
}

// refuseOverloaded answers a connection past a cap and closes it. The
// write is bounded: a client that does not read is not waited for.
func refuseOverloaded(c net.Conn) {
	body := `{"error":{"code":"overloaded","message":"the drainctl agent has too many connections from users other than root (or from this user); try again later, or with sudo"}}` + "\n"
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	c.Write(fmt.Appendf(nil, overloadedAnswer, len(body), body))
	c.Close()
}

// connPeer reads a unix connection's peer from the kernel; nil for any
// other connection.
func connPeer(c net.Conn) *Peer {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	var cred *syscall.Ucred
	raw.Control(func(fd uintptr) {
		cred, _ = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if cred == nil {
		return nil
	}
	return peerOf(cred)
}
