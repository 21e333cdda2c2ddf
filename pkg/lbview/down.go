package lbview

// Which load balancers see this host out of rotation now, from their
// checks: the agent publishes it as the host's health (pkg/health), so
// that a pool counts a server its load balancers took out whatever took
// it out (a web server that refuses, a firewall that drops the checks),
// not only the ones drainctl withdrew.

import (
	"fmt"
	"time"
)

// Down is one load balancer that sees this host out of rotation.
type Down struct {
	LB LB
	// Unanswered: its checks get no answer at all (dropped on the way,
	// or by a firewall), rather than refused.
	Unanswered bool
	// Rising: it took the host out and its checks are accepted again,
	// but not yet Rise in a row: it has not put it back yet.
	Rising bool
}

// Why says it for people and for the pool's record, in words that stay
// the same while the cause does (no counts): each change of it is a
// write to etcd.
func (d Down) Why() string {
	switch {
	case d.Unanswered:
		return fmt.Sprintf("load balancer %s: checks on port %d unanswered", d.LB.Addr, d.LB.Port)
	case d.Rising:
		return fmt.Sprintf("load balancer %s: not back in rotation yet (port %d)", d.LB.Addr, d.LB.Port)
	}
	return fmt.Sprintf("load balancer %s: checks on port %d refused", d.LB.Addr, d.LB.Port)
}

// AnswerGrace is how long a check may wait for its answer before it
// counts as unanswered: the host answers a SYN within a millisecond, and
// the capture sees both; a second covers a loaded host.
const AnswerGrace = time.Second

// Down lists the load balancers checking at t (Active) that see this
// host out of rotation, by address:
//
//   - refused: the answers the view kept, played through the load
//     balancer's own rule (HAProxy's fall and rise: a server starts up,
//     Fall refusals in a row take it down, Rise acceptances in a row put
//     it back), end down. Not only "the last Fall refused": after a
//     restore the host is out until Rise checks were accepted;
//   - unanswered: Fall checks or more since its last answer got none
//     (each check counted once, not its SYN's retransmissions), the
//     first of them AnswerGrace ago or more. Only for a load balancer
//     whose checks were answered before in this view: one never answered
//     since the agent started may be one whose answers the capture cannot
//     see, and counting it would hold a healthy host out for as long as
//     the agent runs (an agent restart must never do that).
//
// A load balancer remembered from before the agent started that has not
// checked since has no answers: it sees nothing, and is not listed.
func (v *View) Down(t time.Time) []Down {
	var out []Down
	for _, l := range v.listAt(t) {
		if !l.Active {
			continue
		}
		v.mu.Lock()
		s := v.srcs[l.Key()]
		var d Down
		down := false
		if s != nil {
			switch {
			case s.pending >= v.s.Fall && len(s.answers) > 0 && t.Sub(s.pendingSince) >= AnswerGrace:
				d, down = Down{LB: l, Unanswered: true}, true
			default:
				if isDown, rising := v.playLocked(s.answers); isDown {
					d, down = Down{LB: l, Rising: rising}, true
				}
			}
		}
		v.mu.Unlock()
		if down {
			out = append(out, d)
		}
	}
	return out
}

// playLocked plays answers through the load balancer's fall and rise
// from up, and says whether it ends down, and if so whether its last
// answer was an acceptance (on its way back).
func (v *View) playLocked(answers []answer) (down, rising bool) {
	refused, accepted := 0, 0
	for _, a := range answers {
		if a.refused {
			refused, accepted = refused+1, 0
			if refused >= v.s.Fall {
				down = true
			}
		} else {
			accepted, refused = accepted+1, 0
			if accepted >= v.s.Rise {
				down = false
			}
		}
	}
	return down, down && accepted > 0
}

// Down lists every view's load balancers that see this host out.
func (vs Views) Down(t time.Time) []Down {
	var out []Down
	for _, v := range vs {
		out = append(out, v.Down(t)...)
	}
	return out
}
