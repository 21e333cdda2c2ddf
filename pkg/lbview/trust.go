package lbview

// Which sources count, and which give way when the view is full. The
// capture sees a SYN before any firewall does, and a SYN's source address
// is whatever its sender wrote: anyone can send SYNs to the forward port
// "from" any address. So a source is not trusted for saying it checks:
//
//   - a steady load balancer (Steady: it checked at a steady interval for
//     SteadyAfter) or one remembered from before the agent started ranks
//     above every newcomer: a newcomer never evicts one that still
//     checks, and while one exists, sources first seen after it became
//     steady do not count (no confirmation waits for them, none makes the
//     host down) until they are steady themselves;
//   - a source whose checks were never answered (the host's SYN-ACK or
//     RST never seen: a firewall drops them) counts for nothing, is the
//     first to give way, and is forgotten after UnansweredTTL, never
//     saved: it cannot hold a confirmation, nor a pool slot;
//   - with Settings.Allow (health_checks.load_balancers) only its
//     addresses are recorded at all.
//
// docs/design.md ("A view nobody can steal") says why this ranking.

import (
	"net/netip"
	"time"
)

const (
	// SteadyAfter is how long a source must have checked, at a steady
	// interval, to be Steady: long enough that a burst of spoofed SYNs
	// is not, short enough that a load balancer added to the pool
	// counts within a minute.
	SteadyAfter = 20 * time.Second
	// SteadyChecks is the fewest checks a Steady source has sent (with
	// an interval known: the median of 8 gaps).
	SteadyChecks = keepTimes - 1
	// UnansweredTTL is how long a source whose checks were never answered
	// is kept: long enough for doctor to show a flood, far shorter than
	// ForgetAfter.
	UnansweredTTL = 2 * time.Minute
)

// Steady says whether l checked at a steady interval for a while, and
// was answered: at least SteadyChecks checks over SteadyAfter or more, an
// interval known, as many checks as that interval makes over SteadyAfter
// (within half: a few SYNs spread thin are not steady), and one answer
// at least (the host answered a check of its: not one a firewall drops).
func (l LB) Steady() bool {
	if l.Checks < SteadyChecks || l.Interval <= 0 || l.Last.Sub(l.First) < SteadyAfter || l.Accepted+l.Refused == 0 {
		return false
	}
	return l.Checks*2 >= uint64(SteadyAfter/l.Interval)
}

// allowed says whether a's checks are recorded (Settings.Allow).
func (v *View) allowed(a netip.Addr) bool {
	if len(v.s.Allow) == 0 {
		return true
	}
	for _, p := range v.s.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// trusted says whether s ranks above newcomers: remembered, or steady.
func (s *source) trusted() bool { return s.remembered || s.Steady() }

// answered says whether any of s's checks got the host's answer (in this
// run of the agent: a remembered source has none yet).
func (s *source) answered() bool { return s.Accepted+s.Refused > 0 }

// trustedSinceLocked says whether the view has a trusted source, and
// until when a source first seen counts as their peer: the earliest
// moment one of them became steady (a remembered one: its first check).
// Load balancers started together become steady within moments of each
// other; a flood begins later.
func (v *View) trustedSinceLocked() (peersUntil time.Time, any bool) {
	for _, s := range v.srcs {
		if !s.trusted() {
			continue
		}
		at := s.First
		if !s.remembered {
			at = at.Add(SteadyAfter)
		}
		if !any || at.Before(peersUntil) {
			peersUntil, any = at, true
		}
	}
	return peersUntil, any
}

// countsLocked says whether s counts as a load balancer: confirmations
// expect it and Down judges it. A source never answered does not (it
// cannot confirm anything: a firewall drops its checks, or its address
// is spoofed), unless remembered; while a trusted source exists, a source
// that is not trusted counts only if it was first seen as early as them.
func (v *View) countsLocked(s *source, trusted bool, peersUntil time.Time) bool {
	if s.remembered {
		return true
	}
	if !s.answered() {
		return false
	}
	return !trusted || s.trusted() || !s.First.After(peersUntil)
}

// rank is how firmly s keeps its place when a newcomer needs one: 0
// never answered, 1 not trusted, 2 trusted but silent (not Active at t),
// 3 trusted and checking (never evicted).
func (v *View) rank(s *source, t time.Time) int {
	switch {
	case !s.trusted() && !s.answered():
		return 0
	case !s.trusted():
		return 1
	case !v.activeAt(s.LB, t):
		return 2
	}
	return 3
}

// evictLocked makes room for a newcomer at t: the least recently seen of
// the lowest rank goes. False when every source ranks 3: the newcomer
// is not recorded.
func (v *View) evictLocked(t time.Time) bool {
	var worst *source
	worstRank := 3
	for _, s := range v.srcs {
		r := v.rank(s, t)
		if r < worstRank || (r == worstRank && worst != nil && s.Last.Before(worst.Last)) {
			worst, worstRank = s, r
		}
	}
	if worst == nil {
		return false
	}
	delete(v.srcs, worst.Key())
	return true
}

// pruneLocked forgets, at most once a second, the sources never answered
// whose first check is UnansweredTTL old: nothing they sent was a check
// the host could answer.
func (v *View) pruneLocked(t time.Time) {
	if t.Sub(v.pruned) < time.Second {
		return
	}
	v.pruned = t
	for k, s := range v.srcs {
		if !s.remembered && !s.answered() && t.Sub(s.First) >= UnansweredTTL {
			delete(v.srcs, k)
		}
	}
}
