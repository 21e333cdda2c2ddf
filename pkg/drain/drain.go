// Package drain decides when a withdrawn server is quiet: it polls the
// connection table and reports progress as a stream of events until no
// active connection has been left for a quiet period, or a deadline passes.
//
// What counts (docs/design.md, "What counts as drained"): every established
// connection of the service port, through the forward or direct, except
//   - idle ones: no data either way for IdleAfter (HAProxy's pooled
//     connections, a user's open keep-alive between clicks);
//   - short ones: a connection must be seen by two polls in a row to count,
//     so the load balancer's health checks (a new connection every second,
//     open for milliseconds) never hold a drain open;
//   - connections from Ignore (monitoring).
package drain

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/drainctl/drainctl/pkg/conntable"
)

// Outcome is how a drain ended.
type Outcome string

const (
	// Drained means no connection was active for the quiet period.
	Drained Outcome = "drained"
	// DeadlineProceed means the deadline passed with active connections
	// and the policy says go on (the graceful restart lets them finish).
	DeadlineProceed Outcome = "deadline-proceed"
	// DeadlineAbort means the deadline passed with active connections and
	// the policy says stop.
	DeadlineAbort Outcome = "deadline-abort"
	// InFlightDone means the load balancers took the server out and the
	// requests in flight at that moment are done (a restart: sticky users
	// who keep coming are not waited for; the graceful restart finishes
	// what they send meanwhile).
	InFlightDone Outcome = "in-flight-done"
	// GraceProceed is InFlightDone cut short: the grace passed first with
	// some of those requests still in flight (the graceful restart
	// finishes them).
	GraceProceed Outcome = "grace-proceed"
)

// OnDeadline says what to do when the deadline passes.
type OnDeadline string

const (
	// Proceed goes on with active connections left (the graceful restart
	// lets them finish).
	Proceed OnDeadline = "proceed"
	// Abort stops: the drain fails with ErrDeadline.
	Abort OnDeadline = "abort"
)

// ParseOnDeadline reads an on-deadline setting: proceed or abort. It is
// the only judge of the values, for the config file, the flags and the API
// alike, so that all of them accept the same and say the same when they
// refuse; callers put their own name for the setting before the error
// where it helps ("line 3: ...").
func ParseOnDeadline(s string) (OnDeadline, error) {
	switch o := OnDeadline(s); o {
	case Proceed, Abort:
		return o, nil
	}
	return "", fmt.Errorf("on-deadline %q: want proceed or abort", s)
}

// ErrDeadline is returned (wrapped) when a drain ends DeadlineAbort.
var ErrDeadline = errors.New("drain deadline passed with active connections")

// Policy says when a server is drained. The zero value is not valid; start
// from DefaultPolicy.
// Its JSON gives the durations last, as whole milliseconds (package
// jsonms).
type Policy struct {
	// OnDeadline: proceed (the default) or abort.
	OnDeadline OnDeadline `json:"on_deadline"`
	// Ignore lists peers whose connections never count (monitoring).
	Ignore []netip.Prefix `json:"ignore,omitempty"`
	// Poll is how often the connection table is read.
	Poll time.Duration `json:"poll_ms"`
	// MinWait is the least time a drain takes, whatever the table says: it
	// covers the load balancer's time to notice the withdrawn forward
	// (HAProxy: fall×inter at most, 1 s with check inter 500ms fall 2).
	MinWait time.Duration `json:"min_wait_ms"`
	// Quiet is how long no active connection must be seen.
	Quiet time.Duration `json:"quiet_ms"`
	// IdleAfter: a connection that carried no data for this long is idle,
	// not a user at work.
	IdleAfter time.Duration `json:"idle_after_ms"`
	// Deadline ends the drain even if it is not quiet; OnDeadline says
	// what then.
	Deadline time.Duration `json:"deadline_ms"`
	// Grace is how long a restart waits at most, once the load balancers
	// confirmed the server out, for the requests then in flight; sticky
	// users who keep coming through the backup entry are not waited for.
	Grace time.Duration `json:"grace_ms"`
}

// DefaultPolicy fits the recommended HAProxy pattern of docs/design.md (check
// inter 500ms fall 2 on the forward port; a backup entry that keeps
// serving sticky users). Sticky users keep using the server through the
// backup, so a busy server often reaches the deadline; proceeding is then
// safe, because the graceful restart finishes requests in flight and
// HAProxy's retry-on covers idle keep-alives the restart closes.
func DefaultPolicy() Policy {
	return Policy{
		Poll:       250 * time.Millisecond,
		MinWait:    2 * time.Second,
		Quiet:      2 * time.Second,
		IdleAfter:  5 * time.Second,
		Deadline:   60 * time.Second,
		Grace:      500 * time.Millisecond,
		OnDeadline: Proceed,
	}
}

// Validate reports a policy that cannot work, naming the setting.
func (p Policy) Validate() error {
	switch {
	case p.Poll <= 0:
		return fmt.Errorf("drain poll interval %v: must be positive", p.Poll)
	case p.MinWait < 0 || p.Quiet < 0 || p.Grace < 0:
		return fmt.Errorf("drain min-wait %v, quiet %v and grace %v: must not be negative", p.MinWait, p.Quiet, p.Grace)
	case p.IdleAfter <= p.Poll:
		return fmt.Errorf("drain idle-after %v: must be longer than the poll interval %v", p.IdleAfter, p.Poll)
	case p.Deadline <= 0:
		return fmt.Errorf("drain deadline %v: must be positive", p.Deadline)
	case p.Deadline < p.MinWait:
		return fmt.Errorf("drain deadline %v: must not be shorter than min-wait %v", p.Deadline, p.MinWait)
	}
	if _, err := ParseOnDeadline(string(p.OnDeadline)); err != nil {
		return fmt.Errorf("drain %w", err)
	}
	return nil
}

// Lister reads the connection table (conntable.Table does).
type Lister interface {
	Each(ctx context.Context, fn func(c *conntable.Conn)) error
}

// Clock is time, injectable for tests.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// RealClock is the wall clock.
var RealClock Clock = realClock{}

// ConnSummary describes one remaining connection.
type ConnSummary struct {
	Peer netip.AddrPort `json:"peer"`
	Path conntable.Path `json:"path"`
	// Age is how long drainctl has seen it (since the first poll that
	// listed it).
	Age time.Duration `json:"age_ms"`
	// Idle is how long it carried no data either way.
	Idle time.Duration `json:"idle_ms"`
}

// PeerCount is the number of active connections of one peer address.
type PeerCount struct {
	Peer  netip.Addr `json:"peer"`
	Count int        `json:"count"`
}

// Event is one poll's view, for live displays and the API.
type Event struct {
	Time time.Time `json:"time"`
	// Active connections hold the drain open; by path and by peer (the 10
	// busiest peers).
	Active int                    `json:"active"`
	ByPath map[conntable.Path]int `json:"by_path"`
	ByPeer []PeerCount            `json:"by_peer"`
	// Oldest is the active connection seen longest, if any.
	Oldest *ConnSummary `json:"oldest,omitempty"`
	// Connections that do not count: idle, too new to count (seen by one
	// poll only, as health checks are), or ignored.
	Idle    int `json:"idle"`
	New     int `json:"new"`
	Ignored int `json:"ignored"`
	// Outcome is set on the last event.
	Outcome Outcome `json:"outcome,omitempty"`
	// Elapsed is the time since the drain began.
	Elapsed time.Duration `json:"elapsed_ms"`
	// QuietFor is how long no active connection has been seen.
	QuietFor time.Duration `json:"quiet_for_ms"`
	// DeadlineIn is the time left before the deadline.
	DeadlineIn time.Duration `json:"deadline_in_ms"`
}

// Result is how a drain ended.
type Result struct {
	Outcome Outcome `json:"outcome"`
	// Remaining is the number of active connections at the end.
	Remaining int `json:"remaining"`
	// Last is the last poll's event.
	Last Event `json:"last"`
	// Elapsed is how long the drain took.
	Elapsed time.Duration `json:"elapsed_ms"`
}

// Opening is what the load balancers' view says once it has waited for
// them: it replaces the policy's MinWait (see WaitGated).
type Opening struct {
	// Quiet is the quiet period to require from then on (a confirmed
	// withdraw needs no long one: no load balancer sends anyone new).
	Quiet time.Duration
	// Grace, when positive, ends the drain once the requests in flight
	// at the opening are done (InFlightDone), or this long after it
	// (GraceProceed), even with active connections.
	Grace time.Duration
}

// Wait polls l until the server is drained or the deadline passes, calling
// progress (if not nil) with an event after every poll. It returns an error
// wrapping ErrDeadline when the deadline passes and the policy says abort,
// the context's error if it is cancelled, or the table's error.
func Wait(ctx context.Context, l Lister, p Policy, clock Clock, progress func(Event)) (Result, error) {
	return WaitGated(ctx, l, p, nil, clock, progress)
}

// WaitGated is Wait with a gate in place of the policy's MinWait: the drain
// cannot end before an Opening arrives on gate (nil: no gate, MinWait
// decides). The table is read again as soon as it arrives.
func WaitGated(ctx context.Context, l Lister, p Policy, gate <-chan Opening, clock Clock, progress func(Event)) (Result, error) {
	if err := p.Validate(); err != nil {
		return Result{}, err
	}
	if clock == nil {
		clock = RealClock
	}
	start := clock.Now()
	d := &drainer{p: p, gated: gate != nil, start: start, seen: map[uint64]time.Time{}, lastActive: start}
	for polls := 1; ; polls++ {
		now := clock.Now()
		ev, reqs, err := d.poll(ctx, l, now)
		if err != nil {
			return Result{}, fmt.Errorf("read connection table: %w", err)
		}
		ev.Outcome = d.outcome(ev, polls, d.left(reqs, now), now)
		if progress != nil {
			progress(ev)
		}
		if ev.Outcome != "" {
			res := Result{Outcome: ev.Outcome, Elapsed: ev.Elapsed, Remaining: ev.Active, Last: ev}
			if ev.Outcome == DeadlineAbort {
				return res, fmt.Errorf("%w: %d left after %v", ErrDeadline, ev.Active, p.Deadline)
			}
			return res, nil
		}
		// An opening is taken before sleeping, and the table read again
		// at once: the drain may end now.
		select {
		case o := <-gate:
			d.opened(o, clock.Now())
			gate = nil
			continue
		default:
		}
		select {
		case <-ctx.Done():
			return Result{Elapsed: ev.Elapsed, Remaining: ev.Active, Last: ev}, ctx.Err()
		case <-clock.After(p.Poll):
		case o := <-gate:
			d.opened(o, clock.Now())
			gate = nil
		}
	}
}

// drainer is what one drain remembers from poll to poll.
type drainer struct {
	p          Policy
	gated      bool
	start      time.Time
	seen       map[uint64]time.Time // cookie → first seen, for live connections
	lastActive time.Time
	open       *Opening
	openedAt   time.Time
	waitFor    map[uint64]bool // requests in flight at the opening, by cookie
	// maybe are the answers begun at the opening within longAnswer of
	// their request, by cookie, with the request's time: a short
	// exchange just done, or a long answer in its first second. Each is
	// watched until it tells (see left).
	maybe map[uint64]time.Time
}

// requests is what one poll saw of the requests on the connections (a
// gated drain only): in flight, undecided (an answer begun within
// longAnswer of its request), and when each connection's last request
// came.
type requests struct {
	inFlight, undecided map[uint64]bool
	at                  map[uint64]time.Time
}

// opened takes the gate's opening, at now.
func (d *drainer) opened(o Opening, now time.Time) { d.open, d.openedAt = &o, now }

// poll reads the table once, at now: the poll's event (without its
// outcome), and the requests, by cookie (a gated drain only: a restart's
// waits for those in flight).
func (d *drainer) poll(ctx context.Context, l Lister, now time.Time) (Event, requests, error) {
	p := d.p
	ev := Event{Time: now, Elapsed: now.Sub(d.start), ByPath: map[conntable.Path]int{}}
	peers := map[netip.Addr]int{}
	next := make(map[uint64]time.Time, len(d.seen))
	reqs := requests{inFlight: map[uint64]bool{}, undecided: map[uint64]bool{}, at: map[uint64]time.Time{}}
	err := l.Each(ctx, func(c *conntable.Conn) {
		first, known := d.seen[c.Cookie]
		if !known {
			first = now
		}
		next[c.Cookie] = first
		ign := ignored(p.Ignore, c.Peer.Addr())
		if d.gated && !ign {
			reqs.at[c.Cookie] = now.Add(-c.SinceRecv())
			switch {
			case inFlight(c):
				reqs.inFlight[c.Cookie] = true
			case undecided(c):
				reqs.undecided[c.Cookie] = true
			}
		}
		switch {
		case ign:
			ev.Ignored++
		case c.Idle() >= p.IdleAfter:
			ev.Idle++
		case !known:
			ev.New++
		default:
			ev.Active++
			ev.ByPath[c.Path]++
			peers[c.Peer.Addr()]++
			if ev.Oldest == nil || now.Sub(first) > ev.Oldest.Age {
				ev.Oldest = &ConnSummary{Peer: c.Peer, Path: c.Path, Age: now.Sub(first), Idle: c.Idle()}
			}
		}
	})
	if err != nil {
		return ev, reqs, err
	}
	d.seen = next
	if ev.Active > 0 {
		d.lastActive = now
	}
	ev.ByPeer = topPeers(peers, 10)
	ev.QuietFor = now.Sub(d.lastActive)
	ev.DeadlineIn = max(p.Deadline-ev.Elapsed, 0)
	return ev, reqs, nil
}

// sameRequest is how far apart two polls may put one request's time (the
// kernel's clock of the last data in has a tick of a few ms).
const sameRequest = 50 * time.Millisecond

// left counts the requests in flight at the opening that still are: the
// first poll after the opening names them, and each that ends is
// forgotten (a later request on its connection is not waited for). The
// answers that poll finds undecided (begun within longAnswer of their
// request) count too until they tell: a long answer in its first second
// looks like a short exchange just done, and only the next second says
// which. One that goes on sending past longAnswer after its request is
// in flight; one that goes quiet, gets a new request (a keep-alive
// user's next: the last was short) or closes is not.
func (d *drainer) left(reqs requests, now time.Time) int {
	if d.open != nil && d.waitFor == nil {
		d.waitFor, d.maybe = reqs.inFlight, map[uint64]time.Time{}
		for cookie := range reqs.undecided {
			d.maybe[cookie] = reqs.at[cookie]
		}
	}
	for cookie, at := range d.maybe {
		cur, ok := reqs.at[cookie]
		switch {
		case !ok || cur.Sub(at) > sameRequest:
			delete(d.maybe, cookie) // closed, or a new request on it
		case reqs.inFlight[cookie]:
			d.waitFor[cookie] = true
			delete(d.maybe, cookie)
		case now.Sub(at) > longAnswer+d.p.Poll:
			delete(d.maybe, cookie) // quiet since: a short exchange
		}
	}
	left := len(d.maybe)
	for cookie := range d.waitFor {
		if reqs.inFlight[cookie] {
			left++
		} else {
			delete(d.waitFor, cookie)
		}
	}
	return left
}

// outcome says how the drain ends at this poll, or "" if it goes on.
func (d *drainer) outcome(ev Event, polls, left int, now time.Time) Outcome {
	p, open := d.p, d.open
	switch {
	case !d.gated && ev.Elapsed >= p.MinWait && ev.QuietFor >= p.Quiet:
		return Drained
	// With a gate, two polls at least: a connection counts only once
	// two polls saw it.
	case open != nil && polls >= 2 && ev.QuietFor >= open.Quiet:
		return Drained
	case open != nil && open.Grace > 0 && left == 0:
		return InFlightDone
	case open != nil && open.Grace > 0 && now.Sub(d.openedAt) >= open.Grace:
		return GraceProceed
	case ev.Elapsed >= p.Deadline && p.OnDeadline == Abort:
		return DeadlineAbort
	case ev.Elapsed >= p.Deadline:
		return DeadlineProceed
	}
	return ""
}

// inFlight says whether a request is being served on c: data came in
// after the last data went out (a request being processed), the answer
// is still leaving (bytes unsent or not yet acknowledged), or a long
// answer is being written as it goes (a CGI or a proxied download that
// sends a line at a time: between two writes its socket is empty, but
// its request came long ago and data went out just now), or a request
// came on a new connection that has not answered a byte yet (the times
// cannot tell it: the kernel sets the last send at the handshake, and
// the request comes within the same tick, so both are equal; the byte
// counters can: bytes received, none sent, none acknowledged, where the
// kernel counts them, 4.1 and 4.19 on). A keep-alive connection between
// two requests is not.
func inFlight(c *conntable.Conn) bool {
	return c.SinceRecv() < c.SinceSent() || c.Info.Unacked > 0 || c.Info.Notsent_bytes > 0 ||
		(c.SinceSent() < longAnswer && c.SinceRecv() >= longAnswer) ||
		(c.Info.Bytes_received > 0 && c.Info.Bytes_sent == 0 && c.Info.Bytes_acked <= 1)
}

// undecided says whether c's answer began within longAnswer of its
// request and is not known to be in flight: a short exchange just done,
// or a long answer in its first second (left watches it until it tells).
func undecided(c *conntable.Conn) bool {
	return c.SinceRecv() < longAnswer && c.SinceSent() <= c.SinceRecv() && c.Info.Bytes_sent > 0
}

// longAnswer: an answer still sending data this long after its request
// came is a long one in progress. A keep-alive user's next request comes
// within it of the last answer (a busy user), or the connection goes
// quiet (the user reads): neither looks like one.
const longAnswer = time.Second

// ignored says whether a is in one of ps: a peer whose connections never
// count (monitoring).
func ignored(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// topPeers is the n peers with the most active connections, busiest
// first, for the event's ByPeer.
func topPeers(m map[netip.Addr]int, n int) []PeerCount {
	out := make([]PeerCount, 0, len(m))
	for a, c := range m {
		out = append(out, PeerCount{a, c})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Peer.Less(out[j].Peer)
	})
	return out[:min(n, len(out))]
}
