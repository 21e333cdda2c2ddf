// Package lbview is the load balancers' view of this host, seen from the
// host: which load balancers health-check the forward port, how often,
// and whether their checks get through (the forward redirects them) or
// are refused (the forward is withdrawn). From it drainctl confirms that
// every load balancer took the server out of rotation after a withdraw
// (each had its checks refused `fall` times) and put it back after a
// restore (`rise` checks accepted), instead of waiting a fixed time on
// the hope that they noticed.
//
// A load balancer is known by its address and the forward port it
// checks. In the recommended HAProxy pattern only health checks arrive on
// the forward port; where traffic goes through it too, its new
// connections count as checks (docs/design.md says what that changes).
package lbview

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Settings of a View. Zero values take the defaults.
type Settings struct {
	// Fall and Rise are the load balancers' check settings (HAProxy's
	// fall and rise): refusals that take a server out, acceptances that
	// put it back. Default 2 and 2.
	Fall, Rise int
	// MinChecks is how many checks a source must have sent to count as a
	// load balancer (one SYN from a port scan does not). Default 3.
	MinChecks int
	// Active: a load balancer is expected to confirm a withdraw when its
	// last check is more recent than max(Active, 4 check intervals).
	// Default 10 s.
	Active time.Duration
	// MaxSources bounds the sources kept. When it is reached a newcomer
	// takes the place of the least trusted source (trust.go): one never
	// answered, else one not steady yet, else a steady one gone silent;
	// never that of a steady load balancer still checking (the newcomer
	// is dropped instead). Default 64.
	MaxSources int
	// Allow, when not empty, are the only addresses or networks whose
	// checks the view records (health_checks.load_balancers): the
	// load balancers the operator names. Empty: any source may be learned.
	Allow []netip.Prefix
	// Ports are the ports whose checks the view is fed (for messages).
	Ports []uint16
}

func (s *Settings) defaults() {
	if s.Fall <= 0 {
		s.Fall = 2
	}
	if s.Rise <= 0 {
		s.Rise = 2
	}
	if s.MinChecks <= 0 {
		s.MinChecks = 3
	}
	if s.Active <= 0 {
		s.Active = 10 * time.Second
	}
	if s.MaxSources <= 0 {
		s.MaxSources = 64
	}
}

// Key names a load balancer: its address and the forward port it checks.
type Key struct {
	Addr netip.Addr
	Port uint16
}

// String is the address, with the port when there is one: how messages
// name a load balancer.
func (k Key) String() string {
	if k.Port == 0 {
		return k.Addr.String()
	}
	return fmt.Sprintf("%s (port %d)", k.Addr, k.Port)
}

// LB is what the view knows of one load balancer.
type LB struct {
	Addr netip.Addr `json:"address"`
	Port uint16     `json:"port"` // the forward port it checks
	// Local is this host's address its checks go to (the last seen):
	// the one its haproxy.cfg names.
	Local    netip.Addr    `json:"local_address,omitzero"`
	Checks   uint64        `json:"checks"`
	Accepted uint64        `json:"accepted"`
	Refused  uint64        `json:"refused"`
	Interval time.Duration `json:"interval_ms"` // 0: not known yet
	First    time.Time     `json:"first"`
	Last     time.Time     `json:"last"`
	// Active: it was checking when listed (its last check recent enough
	// for another to be due); a withdraw waits for the active ones.
	Active bool `json:"active"`
}

// Key is the load balancer's key.
func (l LB) Key() Key { return Key{l.Addr, l.Port} }

// Describe says it for people, e.g. "10.0.0.2 checks port 81 every
// 0.5 s, last 0.2 s ago (120 checks, 4 refused)".
func (l LB) Describe(now time.Time) string {
	every := "interval not known yet"
	if l.Interval > 0 {
		every = "every " + Seconds(l.Interval)
	}
	return fmt.Sprintf("%s checks port %d %s, last %s ago (%d checks, %d refused)",
		l.Addr, l.Port, every, Seconds(now.Sub(l.Last)), l.Checks, l.Refused)
}

// PortsText names ports for people: "port 81", "ports 81, 8081".
func PortsText(ports []uint16) string {
	ps := make([]string, len(ports))
	for i, p := range ports {
		ps[i] = strconv.Itoa(int(p))
	}
	if len(ps) == 1 {
		return "port " + ps[0]
	}
	return "ports " + strings.Join(ps, ", ")
}

// Seconds says a duration for people as the view does: "0.5 s", "2 s".
func Seconds(d time.Duration) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", d.Seconds()), "0"), ".") + " s"
}

// answer is one SYN-ACK or RST sent to a load balancer.
type answer struct {
	t       time.Time
	refused bool
}

type source struct {
	LB
	times   []time.Time // last attempts, oldest first (for the interval)
	answers []answer    // last answers, oldest first
	lastPkt Packet      // for dropping copies of one packet
	// remembered: known from before the agent started (Remember), not
	// seen checking since. Expected by confirmations until ForgetAfter.
	remembered bool
	// pending counts the checks since the last answer (each once: a
	// SYN retransmitted comes from the same port), since pendingSince,
	// the first of them; lastAttempt is the last check's address.
	pending      int
	pendingSince time.Time
	lastAttempt  netip.AddrPort
}

const (
	keepTimes   = 9  // 8 gaps for the interval's median
	keepAnswers = 64 // far more than any fall or rise
)

// View folds captured packets into per-load-balancer state. Its methods
// are safe for concurrent use.
type View struct {
	s       Settings
	mu      sync.Mutex
	srcs    map[Key]*source
	changed chan struct{} // closed and replaced at every packet
	pruned  time.Time     // the last pruneLocked
	// newcomers counts the sources new to the view, by port: each time
	// one is recorded for the first time (or again after it was evicted),
	// or refused a place. A flood bigger than the view shows here, not in
	// its list (its sources evict each other before their third check).
	newcomers map[uint16]int
}

// New returns an empty view.
func New(s Settings) *View {
	s.defaults()
	return &View{s: s, srcs: map[Key]*source{}, changed: make(chan struct{}), newcomers: map[uint16]int{}}
}

// Newcomers says how many times a source new to the view checked port
// since the view began (a source evicted and seen again counts again):
// doctor's measure of a flood.
func (v *View) Newcomers(port uint16) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.newcomers[port]
}

// Ports are the ports whose checks the view is fed.
func (v *View) Ports() []uint16 { return v.s.Ports }

// Record adds one packet seen on forward port port.
func (v *View) Record(port uint16, p Packet) {
	v.mu.Lock()
	defer v.mu.Unlock()
	k := Key{p.Remote.Addr().Unmap(), port}
	if !v.allowed(k.Addr) {
		return
	}
	v.pruneLocked(p.Time)
	src := v.srcs[k]
	if src == nil {
		v.newcomers[port]++
		if len(v.srcs) >= v.s.MaxSources && !v.evictLocked(p.Time) {
			return // every place is a steady load balancer's
		}
		src = &source{LB: LB{Addr: k.Addr, Port: port, First: p.Time}}
		v.srcs[k] = src
	}
	// A packet crossing a bridge, bond or VLAN device is captured once
	// per device: the same segment again within a moment is a copy.
	if src.lastPkt.Remote == p.Remote && src.lastPkt.Kind == p.Kind && p.Time.Sub(src.lastPkt.Time) < 50*time.Millisecond {
		return
	}
	src.lastPkt = p
	switch p.Kind {
	case Attempt:
		src.remembered = false
		if p.Local.IsValid() {
			src.Local = p.Local.Unmap()
		}
		src.Checks++
		src.Last = p.Time
		src.times = appendBounded(src.times, p.Time, keepTimes)
		src.Interval = median(src.times)
		if p.Remote != src.lastAttempt {
			if src.pending == 0 {
				src.pendingSince = p.Time
			}
			src.pending++
			src.lastAttempt = p.Remote
		}
	case Accepted, Refused:
		if p.Kind == Accepted {
			src.Accepted++
		} else {
			src.Refused++
		}
		src.answers = appendBounded(src.answers, answer{p.Time, p.Kind == Refused}, keepAnswers)
		// The next check counts even from the same port (a load balancer
		// with a fixed source port).
		src.pending, src.lastAttempt = 0, netip.AddrPort{}
	}
	close(v.changed)
	v.changed = make(chan struct{})
}

func appendBounded[T any](s []T, x T, n int) []T {
	if len(s) >= n {
		s = slices.Delete(s, 0, len(s)-n+1)
	}
	return append(s, x)
}

// median is the median gap between successive times: the check interval,
// robust to a lost or extra check.
func median(ts []time.Time) time.Duration {
	if len(ts) < 3 {
		return 0
	}
	gaps := make([]time.Duration, 0, len(ts)-1)
	for i := 1; i < len(ts); i++ {
		gaps = append(gaps, ts[i].Sub(ts[i-1]))
	}
	slices.Sort(gaps)
	return gaps[len(gaps)/2]
}

// LoadBalancers lists the sources learned (MinChecks checks or more), by
// address, with Active as of now: what the agent's status and doctor
// show, flood included. Active is true only of the ones that count
// (trust.go): the ones a confirmation waits for.
func (v *View) LoadBalancers() []LB { return v.listAt(time.Now()) }

func (v *View) listAt(t time.Time) []LB {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []LB
	peersUntil, trusted := v.trustedSinceLocked()
	for _, s := range v.srcs {
		if s.Checks >= uint64(v.s.MinChecks) {
			l := s.LB
			l.Active = v.activeAt(l, t) && v.countsLocked(s, trusted, peersUntil)
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Addr != out[j].Addr {
			return out[i].Addr.Less(out[j].Addr)
		}
		return out[i].Port < out[j].Port
	})
	return out
}

// activeAt says whether l was checking at t: its last check is recent
// enough for another to be due, or it is remembered from before the
// agent started and not yet forgotten.
func (v *View) activeAt(l LB, t time.Time) bool {
	window := max(v.s.Active, 4*l.Interval)
	if s := v.srcs[l.Key()]; s != nil && s.remembered {
		window = ForgetAfter
	}
	return l.Checks >= uint64(v.s.MinChecks) && t.Sub(l.Last) <= window
}

// Active lists the load balancers checking at t.
func (v *View) Active(t time.Time) []LB {
	var out []LB
	for _, l := range v.listAt(t) {
		if l.Active {
			out = append(out, l)
		}
	}
	return out
}
