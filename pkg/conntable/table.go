// Package conntable lists the established TCP connections of a service
// port, fast, and says how each one arrived: through drainctl's forward
// (81→80) or directly (80). It is what drain detection reads.
//
// Sockets come from netlink sock_diag with the filtering done in the
// kernel (state ESTABLISHED and the local-port bytecode `ss` uses for
// `sport = :80`), so the cost follows the matching sockets. How a socket
// arrived comes from conntrack: one kernel-filtered dump of the entries
// whose original destination port is a forward port.
package conntable

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/drainctl/drainctl/pkg/forward"
)

// Path says how a connection reached the service.
type Path string

const (
	// PathForward is a connection that came through the forward port (its
	// conntrack entry's original destination port is the forward port).
	PathForward Path = "forward"
	// PathDirect is a connection straight to the service port (HAProxy's
	// backup entry, or, in the recommended pattern, all traffic).
	PathDirect Path = "direct"
	// PathUnknown is a connection that could not be classified
	// (conntrack unavailable).
	PathUnknown Path = "unknown"
)

// Conn is one established connection of a service port.
type Conn struct {
	Socket
	Path Path
}

// Idle is how long the connection has carried no data either way.
func (c *Conn) Idle() time.Duration { return min(c.SinceRecv(), c.SinceSent()) }

// Options says what to list.
type Options struct {
	// Forwards tie service ports to forward ports. Their service ports are
	// listed, and a connection is PathForward when it came through one.
	Forwards []forward.Forward
	// Ports are more service ports to list (classified PathDirect).
	Ports []uint16
	// NetNS is a network namespace file descriptor to work in; 0 is the
	// caller's own.
	NetNS int
	// NoClassify skips conntrack: every connection is PathUnknown.
	NoClassify bool
}

// Table reads the connection table. It holds two netlink sockets; use it
// from one goroutine at a time, and Close it.
type Table struct {
	ports   []uint16
	from    []uint16 // forward ports
	d       *dumper
	c       *classifier
	perSock bool // the kernel cannot filter conntrack dumps

	// cache remembers how each live socket arrived, by cookie: a socket's
	// path never changes, so only new sockets cost a conntrack query.
	// Entries of sockets gone at the last poll are dropped, so it holds
	// one entry per live connection at most.
	cache map[uint64]cached
	gen   uint32
	// lookupBudget is how many new sockets one poll looks up one by one
	// before it dumps the forwarded entries instead (one dump walks the
	// whole conntrack hash: ~6 ms with 262,144 buckets, or ~30 lookups).
	lookupBudget int
}

type cached struct {
	path Path
	gen  uint32
}

// Open prepares a Table.
func Open(o Options) (*Table, error) {
	t := &Table{cache: map[uint64]cached{}, lookupBudget: 32}
	for _, f := range o.Forwards {
		if err := f.Validate(); err != nil {
			return nil, err
		}
		t.ports = append(t.ports, f.To)
		t.from = append(t.from, f.From)
	}
	t.ports = append(t.ports, o.Ports...)
	slices.Sort(t.ports)
	t.ports = slices.Compact(t.ports)
	slices.Sort(t.from)
	t.from = slices.Compact(t.from)
	if len(t.ports) == 0 {
		return nil, errors.New("no service port to list: give a forward (81:80) or a port")
	}
	if slices.Contains(t.ports, 0) {
		return nil, errors.New("port 0 is not a service port")
	}
	d, err := newDumper(o.NetNS)
	if err != nil {
		return nil, err
	}
	t.d = d
	if !o.NoClassify && len(t.from) > 0 {
		if t.c, err = newClassifier(o.NetNS); err != nil {
			d.close()
			return nil, err
		}
	}
	return t, nil
}

// Close releases the netlink sockets.
func (t *Table) Close() error {
	err := t.d.close()
	if t.c != nil {
		err = errors.Join(err, t.c.close())
	}
	return err
}

// Ports are the service ports the table lists.
func (t *Table) Ports() []uint16 { return slices.Clone(t.ports) }

// Each calls fn for every established connection of the service ports,
// IPv4 and IPv6, classified. c is reused between calls: copy what you
// keep. Memory stays constant however many connections there are, but for
// the classification cache (one small entry per live connection).
func (t *Table) Each(ctx context.Context, fn func(c *Conn)) error {
	t.gen++
	p := poll{t: t}
	var c Conn
	err := t.d.each(ctx, t.ports, func(s *Socket) {
		c.Socket = *s
		c.Path = p.classify(s)
		fn(&c)
	})
	if err == nil {
		err = p.err
	}
	if err != nil {
		return err
	}
	for k, v := range t.cache {
		if v.gen != t.gen {
			delete(t.cache, k)
		}
	}
	return nil
}

// List returns every established connection of the service ports.
func (t *Table) List(ctx context.Context) ([]Conn, error) {
	var out []Conn
	err := t.Each(ctx, func(c *Conn) { out = append(out, *c) })
	return out, err
}

// poll classifies the sockets of one Each.
type poll struct {
	t       *Table
	lookups int
	set     map[pair]struct{} // this poll's dump of forwarded entries
	err     error
}

func (p *poll) classify(s *Socket) Path {
	t := p.t
	if t.c == nil {
		return PathUnknown
	}
	if e, ok := t.cache[s.Cookie]; ok {
		t.cache[s.Cookie] = cached{e.path, t.gen}
		return e.path
	}
	path := PathDirect
	switch {
	case p.err != nil:
		return PathUnknown
	case p.set == nil && p.lookups >= t.lookupBudget && !t.perSock:
		set, err := t.c.forwardedSet(t.from)
		if errors.Is(err, errNotSupported) {
			t.perSock = true // before Linux 5.8: keep looking up one by one
		} else if err != nil {
			p.err = err
			return PathUnknown
		} else {
			p.set = set
		}
	}
	if p.set != nil {
		if _, ok := p.set[pair{s.Local, s.Peer}]; ok {
			path = PathForward
		}
	} else {
		p.lookups++
		orig, err := t.c.lookup(s.Local, s.Peer)
		if err != nil {
			p.err = fmt.Errorf("conntrack lookup of %s: %w", s.Peer, err)
			return PathUnknown
		}
		if slices.Contains(t.from, orig) {
			path = PathForward
		}
	}
	t.cache[s.Cookie] = cached{path, t.gen}
	return path
}
