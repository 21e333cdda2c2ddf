package lbview

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// flood records n spoofed sources from 198.18.0.0/15 (the benchmarking
// range), 3 checks each, 10 ms apart, from at, each answered by kind.
func flood(v *View, at time.Time, n int, kind Kind) {
	for i := range n {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		feed(v, a, at.Add(time.Duration(i)*time.Millisecond), 10*time.Millisecond, 3, kind)
	}
}

func addrs(lbs []LB) []string {
	var out []string
	for _, l := range lbs {
		out = append(out, l.Addr.String())
	}
	return out
}

// A load balancer that has checked steadily is neither evicted nor
// outvoted by a flood of new sources: a flood of 200 answered sources
// into a view of 8 leaves it there, and only it counts (it is all a
// confirmation expects, and the flood's refused checks make nobody see
// the host down).
func TestSteadyLoadBalancerOutranksAFlood(t *testing.T) {
	v := New(Settings{Fall: 2, Rise: 2, MaxSources: 8})
	at := feed(v, lb4, time.Now().Add(-time.Minute), 500*time.Millisecond, 60, Accepted)
	if l := v.LoadBalancers(); len(l) != 1 || !l[0].Steady() {
		t.Fatalf("30 s of checks every 0.5 s: %+v, want one steady load balancer", l)
	}
	flood(v, at, 200, Refused)
	now := at.Add(time.Second)
	if got := addrs(v.LoadBalancers()); !slices.Contains(got, lb4.String()) || len(got) > 8 {
		t.Fatalf("after the flood the view holds %v: want %v kept, at most 8 sources", got, lb4)
	}
	if got := addrs(v.Active(now)); !slices.Equal(got, []string{lb4.String()}) {
		t.Errorf("expected by a confirmation: %v, want only %v", got, lb4)
	}
	if got := downs(v, now); got != nil {
		t.Errorf("the flood's refused checks: %v, want nobody seeing the host down", got)
	}
	if n := v.Newcomers(81); n < 200 {
		t.Errorf("newcomers on port 81: %d, want the flood's 200 and more (each evicted one counts again)", n)
	}
}

// A newcomer takes no place from a steady load balancer still checking:
// with every place taken by one, it is not recorded; once they fall
// silent, newcomers may take their places.
func TestNewcomerCannotEvictACheckingLoadBalancer(t *testing.T) {
	v := New(Settings{MaxSources: 2})
	start := time.Now().Add(-time.Minute)
	feed(v, lb4, start, 500*time.Millisecond, 60, Accepted)
	at := feed(v, lb6, start, 500*time.Millisecond, 60, Accepted)
	flood(v, at, 10, Accepted)
	if got := addrs(v.LoadBalancers()); !slices.Equal(got, []string{lb4.String(), lb6.String()}) {
		t.Fatalf("full of steady load balancers, a flood: %v, want them kept", got)
	}
	// An hour later both are silent: a newcomer takes a place.
	flood(v, at.Add(time.Hour), 1, Accepted)
	if got := addrs(v.LoadBalancers()); len(got) != 2 || !slices.Contains(got, "198.18.0.0") {
		t.Fatalf("an hour of silence later: %v, want the newcomer in", got)
	}
}

// A source whose checks are never answered (a firewall drops them, or
// the address is spoofed and nothing answers) holds nothing: no
// confirmation expects it, so a restore's confirmation (the pool slot's
// release) does not wait on it; it is forgotten after UnansweredTTL,
// and never saved to be remembered.
func TestUnansweredSourceHoldsNothing(t *testing.T) {
	v := New(Settings{Fall: 2, Rise: 2})
	dropped := netip.MustParseAddr("203.0.113.5")
	start := time.Now().Add(-40 * time.Second)
	feed(v, lb4, start, 500*time.Millisecond, 80, Accepted)
	syns := func(from time.Time, n int) {
		for i := range n {
			v.Record(81, Packet{Time: from.Add(time.Duration(i) * 200 * time.Millisecond), Remote: netip.AddrPortFrom(dropped, uint16(30000+i)), Kind: Attempt})
		}
	}
	syns(start, 200) // 40 s of steady checks, never answered
	if got := addrs(v.LoadBalancers()); !slices.Contains(got, dropped.String()) {
		t.Fatalf("learned %v, want the unanswered source shown (doctor shows it)", got)
	}
	if got := addrs(v.Active(time.Now())); !slices.Equal(got, []string{lb4.String()}) {
		t.Fatalf("expected by a confirmation: %v, want only %v", got, lb4)
	}
	restored := time.Now()
	go func() {
		syns(restored.Add(5*time.Millisecond), 5)
		feed(v, lb4, restored.Add(10*time.Millisecond), 50*time.Millisecond, 3, Accepted)
	}()
	c := v.Wait(context.Background(), Back, restored)
	if !c.All() || !c.AllChecking() {
		t.Fatalf("restore: %q, want confirmed by the real load balancer alone", c.Text())
	}
	path := filepath.Join(t.TempDir(), "loadbalancers.json")
	if err := Save(path, v.LoadBalancers()); err != nil {
		t.Fatal(err)
	}
	if lbs, err := Load(path); err != nil || !slices.Equal(addrs(lbs), []string{lb4.String()}) {
		t.Fatalf("saved %v (%v), want only the steady, answered one", addrs(lbs), err)
	}
	// UnansweredTTL after its first check, the next packet prunes it.
	feed(v, lb4, start.Add(UnansweredTTL+time.Second), time.Second, 1, Accepted)
	if got := addrs(v.LoadBalancers()); slices.Contains(got, dropped.String()) {
		t.Fatalf("%v after UnansweredTTL: want the unanswered source forgotten", got)
	}
}

// Load balancers started together count together: one steady a moment
// before the other does not make the other a newcomer.
func TestPeersStartedTogetherCount(t *testing.T) {
	v := New(Settings{})
	start := time.Now().Add(-21 * time.Second)
	feed(v, lb4, start, 500*time.Millisecond, 43, Accepted)
	feed(v, lb6, start.Add(2*time.Second), 500*time.Millisecond, 39, Accepted)
	now := start.Add(21500 * time.Millisecond)
	lbs := v.listAt(now)
	if len(lbs) != 2 || !lbs[0].Steady() || lbs[1].Steady() {
		t.Fatalf("%+v: want %v steady, %v not yet", lbs, lb4, lb6)
	}
	if got := addrs(v.Active(now)); len(got) != 2 {
		t.Errorf("expected: %v, want both", got)
	}
}

// With health_checks.load_balancers, only their sources are learned, and
// only they are remembered.
func TestAllowedLoadBalancersOnly(t *testing.T) {
	allow := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}
	v := New(Settings{Allow: allow})
	start := time.Now().Add(-30 * time.Second)
	feed(v, lb4, start, 500*time.Millisecond, 50, Accepted)
	feed(v, netip.MustParseAddr("10.0.1.2"), start, 500*time.Millisecond, 50, Accepted)
	feed(v, lb6, start, 500*time.Millisecond, 50, Accepted)
	if got := addrs(v.LoadBalancers()); !slices.Equal(got, []string{lb4.String()}) {
		t.Fatalf("learned %v, want only %v (within %v)", got, lb4, allow)
	}
	w := New(Settings{})
	feed(w, lb6, start, 500*time.Millisecond, 50, Accepted)
	after := New(Settings{Allow: allow})
	after.Remember(w.LoadBalancers(), time.Now())
	if got := after.LoadBalancers(); got != nil {
		t.Errorf("remembered %v from outside %v", addrs(got), allow)
	}
}

// Steady: enough checks, long enough, at the interval they claim, and
// answered.
func TestSteady(t *testing.T) {
	now := time.Now()
	steady := LB{Checks: 41, Accepted: 41, Interval: 500 * time.Millisecond, First: now.Add(-20 * time.Second), Last: now}
	if !steady.Steady() {
		t.Errorf("%+v: want steady", steady)
	}
	for name, change := range map[string]func(*LB){
		"too young":      func(l *LB) { l.First = now.Add(-19 * time.Second) },
		"too few checks": func(l *LB) { l.Checks = SteadyChecks - 1 },
		"no interval":    func(l *LB) { l.Interval = 0 },
		"never answered": func(l *LB) { l.Accepted = 0 },
		"spread thin":    func(l *LB) { l.Checks = 15 },
	} {
		l := steady
		change(&l)
		if l.Steady() {
			t.Errorf("%s: %+v counted steady", name, l)
		}
	}
}

// Load refuses a file far larger than Save ever writes, unread.
func TestLoadBoundsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loadbalancers.json")
	if err := os.WriteFile(path, []byte("["+strings.Repeat(" ", maxMemory)+"]"), 0o600); err != nil {
		t.Fatal(err)
	}
	if lbs, err := Load(path); err == nil || lbs != nil {
		t.Fatalf("a file over %d bytes: %v %v, want refused", maxMemory, lbs, err)
	}
}
