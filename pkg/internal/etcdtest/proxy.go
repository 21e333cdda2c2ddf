package etcdtest

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP proxy in front of one etcd client URL that can lose
// answers: once a client sends a request containing a marker (a key,
// as it travels in gRPC's uncompressed message), every byte etcd sends
// back is dropped for a while. The request reaches etcd and commits;
// its answer never comes, and the client, its stream broken when bytes
// flow again mid-frame, makes a new connection: a lost answer, as a
// partition or an overloaded etcd gives one.
type Proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	marker []byte
	drop   time.Duration
	until  time.Time
	// cut: until then, nothing passes either way (Partition).
	cut time.Time
	// Lost counts the answers' bytes dropped.
	lost  int
	conns []net.Conn
}

// NewProxy listens on loopback and forwards to target (host:port).
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Endpoint is the proxy's client URL.
func (p *Proxy) Endpoint() string { return "http://" + p.ln.Addr().String() }

// LoseAnswerTo arms the proxy: the next request whose bytes contain
// marker has its answer, and every other byte from etcd, dropped for d.
func (p *Proxy) LoseAnswerTo(marker string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marker, p.drop = []byte(marker), d
}

// Partition drops every byte, both ways, for d: the client's requests
// never reach etcd and etcd's answers never reach it, as when a host's
// link to etcd is cut. The connections stay open (a partition closes
// nothing): the client finds out by its timeouts and keep-alives.
func (p *Proxy) Partition(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = time.Now().Add(d)
}

// Lost is how many bytes from etcd were dropped so far.
func (p *Proxy) Lost() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lost
}

func (p *Proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := time.Now().Before(p.cut)
		p.mu.Unlock()
		if cut {
			c.Close() // no new connection across a partition
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go p.up(c, s)
		go p.down(s, c)
	}
}

// up copies a client's bytes to etcd, watching for the marker (across
// reads: the tail of the last read is kept).
func (p *Proxy) up(c, s net.Conn) {
	defer s.Close()
	buf := make([]byte, 32<<10)
	var tail []byte
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.mu.Lock()
			if len(p.marker) > 0 {
				seen := append(tail, buf[:n]...)
				if bytes.Contains(seen, p.marker) {
					p.until, p.marker = time.Now().Add(p.drop), nil
				} else if k := len(p.marker) - 1; len(seen) > k {
					tail = append([]byte(nil), seen[len(seen)-k:]...)
				} else {
					tail = seen
				}
			}
			cut := time.Now().Before(p.cut)
			p.mu.Unlock()
			if cut {
				continue
			}
			if _, werr := s.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// down copies etcd's bytes to the client, unless they are to be lost.
func (p *Proxy) down(s, c net.Conn) {
	defer c.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			p.mu.Lock()
			lose := time.Now().Before(p.until) || time.Now().Before(p.cut)
			if lose {
				p.lost += n
			}
			p.mu.Unlock()
			if !lose {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}
