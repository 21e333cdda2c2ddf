package lbview

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// downs says Down's answer at t as the reasons, for comparing.
func downs(v *View, t time.Time) []string {
	var out []string
	for _, d := range v.Down(t) {
		out = append(out, d.Why())
	}
	return out
}

// A load balancer sees the host down once Fall checks in a row were
// refused, and back only once Rise in a row were accepted: one accepted
// check after a refusal is not enough, one refused check among accepted
// ones takes nothing out.
func TestDownFollowsFallAndRise(t *testing.T) {
	v := New(Settings{Fall: 2, Rise: 3})
	now := time.Now().Add(-5 * time.Second)
	const every = 100 * time.Millisecond
	at := feed(v, lb4, now, every, 5, Accepted)
	if got := downs(v, at); got != nil {
		t.Fatalf("accepted checks: %v, want nobody seeing it down", got)
	}
	at = feed(v, lb4, at, every, 1, Refused)
	at = feed(v, lb4, at, every, 1, Accepted)
	if got := downs(v, at); got != nil {
		t.Fatalf("one refusal among acceptances (fall 2): %v", got)
	}
	at = feed(v, lb4, at, every, 2, Refused)
	refused := []string{"load balancer 10.0.0.2: checks on port 81 refused"}
	if got := downs(v, at); !slices.Equal(got, refused) {
		t.Fatalf("2 refusals in a row: %v, want %v", got, refused)
	}
	at = feed(v, lb4, at, every, 2, Accepted)
	rising := []string{"load balancer 10.0.0.2: not back in rotation yet (port 81)"}
	if got := downs(v, at); !slices.Equal(got, rising) {
		t.Fatalf("2 of rise 3 accepted: %v, want %v", got, rising)
	}
	at = feed(v, lb4, at, every, 1, Refused)
	at = feed(v, lb4, at, every, 2, Accepted)
	if got := downs(v, at); !slices.Equal(got, rising) {
		t.Fatalf("a refusal restarts the rise: %v, want %v", got, rising)
	}
	at = feed(v, lb4, at, every, 1, Accepted)
	if got := downs(v, at); got != nil {
		t.Fatalf("3 accepted in a row: %v, want back", got)
	}
	// A load balancer that stopped checking (no longer active) sees
	// nothing, whatever its last answers.
	feed(v, lb6, now, every, 3, Refused)
	if got := downs(v, at.Add(time.Minute)); got != nil {
		t.Fatalf("a minute after the last checks: %v", got)
	}
}

// A load balancer whose checks go unanswered (its SYNs dropped) sees the
// host down once Fall checks got no answer, the first AnswerGrace ago;
// the retransmissions of one check's SYN count once.
func TestDownUnanswered(t *testing.T) {
	v := New(Settings{Fall: 2, Rise: 2})
	start := time.Now().Add(-10 * time.Second)
	const every = 500 * time.Millisecond
	at := feed(v, lb4, start, every, 4, Accepted)
	attempt := func(t time.Time, port uint16) {
		v.Record(81, Packet{Time: t, Remote: netip.AddrPortFrom(lb4, port), Kind: Attempt})
	}
	first := at
	attempt(first, 50000)
	// Its SYN again after 1 s and 3 s: the same check.
	attempt(first.Add(time.Second), 50000)
	attempt(first.Add(3*time.Second), 50000)
	if got := downs(v, first.Add(4*time.Second)); got != nil {
		t.Fatalf("one check unanswered (retransmitted twice): %v, want nothing yet (fall 2)", got)
	}
	second := first.Add(3500 * time.Millisecond)
	attempt(second, 50001)
	unanswered := []string{"load balancer 10.0.0.2: checks on port 81 unanswered"}
	if got := downs(v, second.Add(time.Millisecond)); !slices.Equal(got, unanswered) {
		t.Fatalf("two checks unanswered, the first 3.5 s ago: %v, want %v", got, unanswered)
	}
	// Answered again (accepted): the answers decide again, and they say up.
	v.Record(81, Packet{Time: second.Add(time.Second), Remote: netip.AddrPortFrom(lb4, 50002), Kind: Attempt})
	v.Record(81, Packet{Time: second.Add(time.Second + time.Millisecond), Remote: netip.AddrPortFrom(lb4, 50002), Kind: Accepted})
	if got := downs(v, second.Add(2*time.Second)); got != nil {
		t.Fatalf("answered again: %v", got)
	}

	// Two checks just sent, their answers not captured yet: not down.
	w := New(Settings{Fall: 2, Rise: 2})
	at = feed(w, lb4, time.Now().Add(-2*time.Second), 100*time.Millisecond, 5, Accepted)
	w.Record(81, Packet{Time: at, Remote: netip.AddrPortFrom(lb4, 50000), Kind: Attempt})
	w.Record(81, Packet{Time: at.Add(10 * time.Millisecond), Remote: netip.AddrPortFrom(lb4, 50001), Kind: Attempt})
	if got := downs(w, at.Add(20*time.Millisecond)); got != nil {
		t.Fatalf("checks 20 ms old: %v, want no verdict before AnswerGrace", got)
	}
	if got := downs(w, at.Add(AnswerGrace)); !slices.Equal(got, unanswered) {
		t.Fatalf("the same, AnswerGrace later: %v, want %v", got, unanswered)
	}

	// A load balancer never answered since the agent started: the capture
	// may not see this host's answers; counting it would hold a healthy
	// host out. Nor a remembered one that has not checked since.
	x := New(Settings{Fall: 2, Rise: 2})
	for i := range 5 {
		x.Record(81, Packet{Time: start.Add(time.Duration(i) * every), Remote: netip.AddrPortFrom(lb4, uint16(40000+i)), Kind: Attempt})
	}
	x.Remember([]LB{{Addr: lb6, Port: 81, Last: start}}, start)
	if got := downs(x, start.Add(5*every)); got != nil {
		t.Fatalf("never answered, and remembered: %v, want nothing", got)
	}
}

// Views joins the views' answers: the forward port's, the agent-check's.
func TestViewsDown(t *testing.T) {
	a, b := New(Settings{}), New(Settings{Fall: 1, Rise: 1, Ports: []uint16{5555}})
	now := time.Now().Add(-time.Second)
	feed(a, lb4, now, 100*time.Millisecond, 4, Accepted)
	for i := range 3 {
		p := Packet{Time: now.Add(time.Duration(i) * 100 * time.Millisecond), Remote: netip.AddrPortFrom(lb6, uint16(40000+i))}
		p.Kind = Attempt
		b.Record(5555, p)
		p.Kind = Refused
		b.Record(5555, p)
	}
	got := Views{a, b}.Down(now.Add(time.Second))
	if len(got) != 1 || got[0].LB.Addr != lb6 || got[0].Why() != "load balancer fd00::2: checks on port 5555 refused" {
		t.Fatalf("%+v", got)
	}
}
