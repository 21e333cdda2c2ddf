package drain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/drainctl/drainctl/pkg/conntable"
)

// fakeClock advances only when Wait sleeps, so a drain of minutes runs in
// microseconds and every timing is exact.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.t = c.t.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.t
	return ch
}

// conn is a scripted connection: present from..until (elapsed time), idle
// for the given time whenever listed.
type conn struct {
	cookie      uint64
	peer        string
	path        conntable.Path
	from, until time.Duration
	idle        time.Duration
	// busyUntil: until then a request is in flight on it (data came in
	// after the last went out).
	busyUntil time.Duration
	// req, when set, scripts its requests instead of idle and busyUntil:
	// the first at req (before the drain began, if negative), then one
	// every every (0: no other), each answered in 10 ms, except that the
	// answer to the last one before sendUntil streams (a line every
	// 100 ms) until sendUntil.
	req       *time.Duration
	every     time.Duration
	sendUntil time.Duration
}

// times says, at at, how long ago c's last request came and its last
// answer's data went out (a scripted request, see conn.req).
func (c conn) times(at time.Duration) (recv, sent time.Duration) {
	r := *c.req
	if c.every > 0 && at > r {
		r += (at - r) / c.every * c.every
	}
	recv = at - r
	switch {
	case at < r+10*time.Millisecond:
		return recv, recv + 10*time.Millisecond // being processed
	case at < c.sendUntil:
		return recv, (at - r) % (100 * time.Millisecond) // a line every 100 ms
	case c.sendUntil > r:
		return recv, at - c.sendUntil
	}
	return recv, at - r - 10*time.Millisecond
}

// script lists the connections present at each moment of the drain.
type script struct {
	clock *fakeClock
	start time.Time
	conns []conn
	err   error
}

func (s *script) Each(_ context.Context, fn func(*conntable.Conn)) error {
	if s.err != nil {
		return s.err
	}
	at := s.clock.Now().Sub(s.start)
	for _, c := range s.conns {
		if at < c.from || at >= c.until {
			continue
		}
		ms := uint32(c.idle / time.Millisecond)
		sent := ms
		if at < c.busyUntil {
			sent = ms + 10
		}
		info := unix.TCPInfo{Last_data_recv: ms, Last_data_sent: sent}
		if c.req != nil {
			r, s := c.times(at)
			info = unix.TCPInfo{Last_data_recv: uint32(r / time.Millisecond), Last_data_sent: uint32(s / time.Millisecond),
				Bytes_received: 100, Bytes_sent: 1000, Bytes_acked: 1000}
		}
		fn(&conntable.Conn{
			Socket: conntable.Socket{
				Local:  netip.MustParseAddrPort("198.18.0.1:80"),
				Peer:   netip.MustParseAddrPort(c.peer),
				Cookie: c.cookie,
				Info:   info,
			},
			Path: c.path,
		})
	}
	return nil
}

func run(t *testing.T, p Policy, conns ...conn) (Result, []Event, error) {
	t.Helper()
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	s := &script{clock: clock, start: clock.t, conns: conns}
	var evs []Event
	res, err := Wait(context.Background(), s, p, clock, func(e Event) { evs = append(evs, e) })
	return res, evs, err
}

const forever = time.Hour

func TestEmptyTableDrainsAfterMinWaitAndQuiet(t *testing.T) {
	p := DefaultPolicy()
	p.MinWait, p.Quiet = 3*time.Second, time.Second
	res, evs, err := run(t, p)
	if err != nil || res.Outcome != Drained || res.Elapsed != 3*time.Second {
		t.Fatalf("got %+v, %v; want drained at exactly min-wait 3s", res, err)
	}
	if len(evs) != 13 { // polls at 0, 0.25, ..., 3.0 s
		t.Errorf("%d events, want 13", len(evs))
	}
}

func TestDrainsOnceTheLastActiveClientCloses(t *testing.T) {
	p := DefaultPolicy()
	res, _, err := run(t, p,
		conn{cookie: 1, peer: "198.18.0.2:40000", path: conntable.PathDirect, until: 5 * time.Second},
		conn{cookie: 2, peer: "198.18.0.3:40000", path: conntable.PathForward, until: 7 * time.Second},
	)
	// Last seen active at 6.75 s; quiet 2 s later.
	if err != nil || res.Outcome != Drained || res.Elapsed != 8750*time.Millisecond {
		t.Fatalf("got %+v, %v; want drained at 8.75s", res, err)
	}
}

func TestIdleKeepAliveDoesNotHoldTheDrain(t *testing.T) {
	p := DefaultPolicy()
	res, evs, err := run(t, p, conn{cookie: 1, peer: "198.18.0.2:40000", until: forever, idle: 30 * time.Second})
	if err != nil || res.Outcome != Drained || res.Elapsed != p.MinWait {
		t.Fatalf("got %+v, %v; want drained at min-wait", res, err)
	}
	if last := evs[len(evs)-1]; last.Idle != 1 || last.Active != 0 {
		t.Errorf("last event %+v, want 1 idle, 0 active", last)
	}
}

func TestHealthChecksDoNotHoldTheDrain(t *testing.T) {
	p := DefaultPolicy()
	var checks []conn
	// A new connection every second, open 10 ms: each poll that lands on
	// one sees it once.
	for i := 0; i < 120; i++ {
		at := time.Duration(i) * time.Second
		checks = append(checks, conn{cookie: uint64(100 + i), peer: "198.18.0.9:5000", from: at, until: at + 10*time.Millisecond})
	}
	res, evs, err := run(t, p, checks...)
	if err != nil || res.Outcome != Drained {
		t.Fatalf("got %+v, %v; health checks held the drain open", res, err)
	}
	news := 0
	for _, e := range evs {
		news += e.New
	}
	if news == 0 {
		t.Fatal("the script produced no health check the drain could see: the test proves nothing")
	}
}

func TestDeadline(t *testing.T) {
	busy := conn{cookie: 1, peer: "198.18.0.2:40000", path: conntable.PathDirect, until: forever}
	p := DefaultPolicy()
	p.Deadline = 10 * time.Second

	res, _, err := run(t, p, busy)
	if err != nil || res.Outcome != DeadlineProceed || res.Elapsed != 10*time.Second || res.Remaining != 1 {
		t.Fatalf("proceed: got %+v, %v", res, err)
	}

	p.OnDeadline = Abort
	res, _, err = run(t, p, busy)
	if !errors.Is(err, ErrDeadline) || res.Outcome != DeadlineAbort || res.Remaining != 1 {
		t.Fatalf("abort: got %+v, %v; want ErrDeadline", res, err)
	}
}

func TestIgnoredPeersDoNotCount(t *testing.T) {
	p := DefaultPolicy()
	p.Ignore = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	res, evs, err := run(t, p, conn{cookie: 1, peer: "203.0.113.5:9100", until: forever})
	if err != nil || res.Outcome != Drained || evs[len(evs)-1].Ignored != 1 {
		t.Fatalf("got %+v, %v", res, err)
	}
}

func TestEventsDescribeTheRemainingConnections(t *testing.T) {
	p := DefaultPolicy()
	p.Deadline = 3 * time.Second
	_, evs, _ := run(t, p,
		conn{cookie: 1, peer: "198.18.0.2:40001", path: conntable.PathForward, until: forever},
		conn{cookie: 2, peer: "198.18.0.2:40002", path: conntable.PathDirect, from: time.Second, until: forever},
		conn{cookie: 3, peer: "198.18.0.3:40003", path: conntable.PathDirect, until: forever},
		conn{cookie: 4, peer: "198.18.0.4:40004", path: conntable.PathDirect, until: forever, idle: time.Minute},
	)
	last := evs[len(evs)-1]
	if last.Active != 3 || last.Idle != 1 || last.ByPath[conntable.PathForward] != 1 || last.ByPath[conntable.PathDirect] != 2 {
		t.Errorf("counts: %+v", last)
	}
	if len(last.ByPeer) != 2 || last.ByPeer[0].Peer != netip.MustParseAddr("198.18.0.2") || last.ByPeer[0].Count != 2 {
		t.Errorf("by peer: %+v", last.ByPeer)
	}
	if last.Oldest == nil || last.Oldest.Age != 3*time.Second || (last.Oldest.Peer.Port() != 40001 && last.Oldest.Peer.Port() != 40003) {
		t.Errorf("oldest: %+v", last.Oldest)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].DeadlineIn > evs[i-1].DeadlineIn {
			t.Fatalf("deadline countdown went up: %v then %v", evs[i-1].DeadlineIn, evs[i].DeadlineIn)
		}
	}
	if last.DeadlineIn != 0 || last.Outcome != DeadlineProceed {
		t.Errorf("last event: deadline in %v, outcome %q", last.DeadlineIn, last.Outcome)
	}
}

func TestCancelAndErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	clock := &fakeClock{t: time.Unix(0, 0)}
	s := &script{clock: clock, start: clock.t, conns: []conn{{cookie: 1, peer: "198.18.0.2:1", until: forever}}}
	_, err := Wait(ctx, s, DefaultPolicy(), clock, func(Event) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: %v", err)
	}
	s.err = errors.New("netlink: permission denied")
	if _, err := Wait(context.Background(), s, DefaultPolicy(), clock, nil); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("table error: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Policy)
		want string
	}{
		{func(p *Policy) { p.Poll = 0 }, "poll interval"},
		{func(p *Policy) { p.IdleAfter = p.Poll }, "idle-after"},
		{func(p *Policy) { p.Deadline = time.Second }, "shorter than min-wait"},
		{func(p *Policy) { p.OnDeadline = "retry" }, `on-deadline "retry"`},
		{func(p *Policy) { p.Quiet = -1 }, "must not be negative"},
	} {
		p := DefaultPolicy()
		tc.mod(&p)
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate = %v, want %q", err, tc.want)
		}
	}
	if err := DefaultPolicy().Validate(); err != nil {
		t.Errorf("default policy: %v", err)
	}
}

// ParseOnDeadline is the one judge of on-deadline values: the policy, the
// config file, the flags and the API all refuse with its words.
func TestParseOnDeadline(t *testing.T) {
	for _, s := range []string{"proceed", "abort"} {
		if o, err := ParseOnDeadline(s); err != nil || string(o) != s {
			t.Errorf("ParseOnDeadline(%q) = %q, %v", s, o, err)
		}
	}
	for _, s := range []string{"", "later", "Abort", " proceed"} {
		o, err := ParseOnDeadline(s)
		if want := fmt.Sprintf("on-deadline %q: want proceed or abort", s); err == nil || err.Error() != want || o != "" {
			t.Errorf("ParseOnDeadline(%q) = %q, %v; want the error %q", s, o, err, want)
		}
	}
	p := DefaultPolicy()
	p.OnDeadline = "later"
	if err := p.Validate(); err == nil || err.Error() != `drain on-deadline "later": want proceed or abort` {
		t.Errorf("Validate: %v", err)
	}
}

// Durations are whole milliseconds in _ms fields, both ways.
func TestJSONDurationsInMilliseconds(t *testing.T) {
	ev := Event{Elapsed: 1500 * time.Millisecond, QuietFor: 250 * time.Millisecond, DeadlineIn: time.Minute, Active: 3,
		Oldest: &ConnSummary{Age: 2 * time.Second, Idle: 10 * time.Millisecond}}
	r := Result{Outcome: Drained, Elapsed: 3 * time.Second, Remaining: 1, Last: ev}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"elapsed_ms":3000`, `"elapsed_ms":1500`, `"quiet_for_ms":250`, `"deadline_in_ms":60000`, `"age_ms":2000`, `"idle_ms":10`, `"active":3`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s: no %s", b, want)
		}
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || back.Elapsed != r.Elapsed || back.Last.DeadlineIn != time.Minute || back.Last.Oldest.Age != 2*time.Second || back.Last.Active != 3 {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	pb, _ := json.Marshal(DefaultPolicy())
	var p Policy
	if err := json.Unmarshal(pb, &p); err != nil || p.Deadline != DefaultPolicy().Deadline || p.OnDeadline != Proceed || !strings.Contains(string(pb), `"deadline_ms":60000`) {
		t.Fatalf("policy %s: %+v, %v", pb, p, err)
	}
}

func runGated(t *testing.T, p Policy, gate <-chan Opening, conns ...conn) (Result, error) {
	t.Helper()
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	s := &script{clock: clock, start: clock.t, conns: conns}
	return WaitGated(context.Background(), s, p, gate, clock, nil)
}

func opened(o Opening) <-chan Opening {
	ch := make(chan Opening, 1)
	ch <- o
	return ch
}

// The load balancers' confirmation replaces min-wait: an idle server is
// drained after the gate's short quiet, well before min-wait.
func TestGateReplacesMinWait(t *testing.T) {
	p := DefaultPolicy()
	res, err := runGated(t, p, opened(Opening{Quiet: 500 * time.Millisecond}))
	if err != nil || res.Outcome != Drained || res.Elapsed != 500*time.Millisecond {
		t.Fatalf("got %+v, %v; want drained at 0.5 s, not min-wait's 2 s", res, err)
	}
	// Active users still hold it: drained only once they are gone.
	res, err = runGated(t, p, opened(Opening{Quiet: 500 * time.Millisecond}),
		conn{cookie: 1, peer: "198.18.0.2:40000", path: conntable.PathDirect, until: 3 * time.Second})
	if err != nil || res.Outcome != Drained || res.Elapsed != 3250*time.Millisecond {
		t.Fatalf("got %+v, %v; want drained at 3.25 s (last seen 2.75 s, quiet 0.5 s)", res, err)
	}
	// A gate that never opens ends at the deadline, whatever min-wait.
	p.Deadline = 5 * time.Second
	res, err = runGated(t, p, make(chan Opening))
	if err != nil || res.Outcome != DeadlineProceed || res.Elapsed != 5*time.Second {
		t.Fatalf("got %+v, %v; want deadline-proceed at 5 s", res, err)
	}
}

// A restart, once open: users who never leave are not waited for, only
// the requests in flight at the opening, at most for the grace.
func TestGateInFlightAndGrace(t *testing.T) {
	p := DefaultPolicy()
	open := Opening{Quiet: 500 * time.Millisecond, Grace: time.Second}
	sticky := conn{cookie: 1, peer: "198.18.0.2:40000", path: conntable.PathDirect, until: forever}
	// Between requests at the opening: go on at once.
	res, err := runGated(t, p, opened(open), sticky)
	if err != nil || res.Outcome != InFlightDone || res.Elapsed != 0 || res.Remaining != 1 {
		t.Fatalf("got %+v, %v; want in-flight-done at once with 1 active", res, err)
	}
	// A request in flight until 0.6 s: go on at the first poll after it.
	slow := sticky
	slow.cookie, slow.busyUntil = 2, 600*time.Millisecond
	res, err = runGated(t, p, opened(open), sticky, slow)
	if err != nil || res.Outcome != InFlightDone || res.Elapsed != 750*time.Millisecond {
		t.Fatalf("got %+v, %v; want in-flight-done at 0.75 s", res, err)
	}
	// One that never ends: the grace ends the wait.
	slow.busyUntil = forever
	res, err = runGated(t, p, opened(open), sticky, slow)
	if err != nil || res.Outcome != GraceProceed || res.Elapsed != time.Second || res.Remaining != 2 {
		t.Fatalf("got %+v, %v; want grace-proceed at 1 s with 2 active", res, err)
	}
}

// A request in flight, by the socket's times: a long answer written as it
// goes (a CGI's lines) counts even between two writes, when its socket
// is empty; a keep-alive user between requests does not.
func TestInFlight(t *testing.T) {
	for _, tc := range []struct {
		name       string
		recv, sent uint32 // ms since the last data in, out
		in, out    uint64 // bytes received, sent (and acknowledged)
		want       bool
	}{
		{"request being processed", 10, 500, 100, 1000, true},
		{"long answer between two writes", 3000, 50, 100, 1000, true},
		{"busy user just answered", 60, 50, 100, 1000, false},
		{"keep-alive between requests", 3000, 2990, 100, 1000, false},
		{"long answer ended 2 s ago", 5000, 2000, 100, 1000, false},
		{"new connection, request in, no answer yet, same tick", 200, 200, 100, 0, true},
		{"new connection, nothing yet", 200, 200, 0, 0, false},
		{"answered within the request's tick", 200, 200, 100, 1000, false},
	} {
		c := &conntable.Conn{Socket: conntable.Socket{Info: unix.TCPInfo{Last_data_recv: tc.recv, Last_data_sent: tc.sent,
			Bytes_received: tc.in, Bytes_sent: tc.out, Bytes_acked: tc.out}}}
		if got := inFlight(c); got != tc.want {
			t.Errorf("%s (recv %d ms ago, sent %d ms ago): in flight %v, want %v", tc.name, tc.recv, tc.sent, got, tc.want)
		}
	}
}

// An answer begun within a second of its request, at the opening, is
// watched until it tells: a long answer in its first second (a download
// streamed at once: between two lines its socket is empty, and its
// request is young) is waited for; a short exchange just done, and a
// keep-alive user's connection that gets its next request, are not.
func TestGateWatchesYoungAnswers(t *testing.T) {
	p := DefaultPolicy()
	open := Opening{Quiet: 500 * time.Millisecond, Grace: 10 * time.Second}
	at := func(d time.Duration) *time.Duration { return &d }
	// Its request 0.3 s before the opening, streaming until 3 s: in
	// flight until its last line is a second old (the long answer's
	// rule), so the drain goes on at 4 s, not at once.
	stream := conn{cookie: 1, peer: "198.18.0.2:40000", path: conntable.PathDirect, until: forever,
		req: at(-300 * time.Millisecond), sendUntil: 3 * time.Second}
	res, err := runGated(t, p, opened(open), stream)
	if err != nil || res.Outcome != InFlightDone || res.Elapsed != 4*time.Second {
		t.Fatalf("a stream in its first second at the opening: %+v, %v; want in-flight-done at 4 s", res, err)
	}
	// Answered 0.19 s before the opening, quiet since: let go once a
	// second and a poll went by since its request.
	short := conn{cookie: 2, peer: "198.18.0.3:40000", path: conntable.PathDirect, until: forever,
		req: at(-200 * time.Millisecond)}
	res, err = runGated(t, p, opened(open), short)
	if err != nil || res.Outcome != InFlightDone || res.Elapsed != 1250*time.Millisecond {
		t.Fatalf("a short exchange just done at the opening: %+v, %v; want in-flight-done at 1.25 s", res, err)
	}
	// A busy keep-alive user (a request every 50 ms): its next request
	// says the last was short; let go at the next poll.
	busy := conn{cookie: 3, peer: "198.18.0.4:40000", path: conntable.PathDirect, until: forever,
		req: at(-time.Second + 20*time.Millisecond), every: 50 * time.Millisecond}
	res, err = runGated(t, p, opened(open), busy)
	if err != nil || res.Outcome != InFlightDone || res.Elapsed != 250*time.Millisecond {
		t.Fatalf("a busy keep-alive user at the opening: %+v, %v; want in-flight-done at 0.25 s", res, err)
	}
}
