package lbview

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Want is the change a confirmation waits for.
type Want string

const (
	// Out waits for every load balancer to have Fall checks refused since
	// the withdraw: then each has taken the server out of rotation.
	Out Want = "out"
	// Back waits for every load balancer to have Rise checks accepted
	// since the restore: then each has put the server back.
	Back Want = "back"
)

// Confirmation says which load balancers confirmed a change.
type Confirmation struct {
	Want          Want        `json:"want"`
	LoadBalancers []Confirmed `json:"load_balancers"`
	// Elapsed is the time from the change to the answer.
	Elapsed time.Duration `json:"elapsed_ms"`
}

// Confirmed is one load balancer's part of a confirmation.
type Confirmed struct {
	Addr      netip.Addr `json:"address"`
	Port      uint16     `json:"port"`
	Confirmed bool       `json:"confirmed"`
	// Need is how many answers confirm: Fall (out) or Rise (back).
	Need int `json:"need"`
	// Answers counts its checks refused (out) or accepted (back) since
	// the change.
	Answers int `json:"answers"`
	// Silent: it sent no check at all since the change (a load balancer
	// remembered from before the agent started that checks no more).
	Silent bool `json:"silent,omitempty"`
	// After is when it confirmed, from the change.
	After time.Duration `json:"after_ms,omitempty"`
}

// Count returns how many load balancers confirmed, of how many.
func (c Confirmation) Count() (confirmed, total int) {
	for _, l := range c.LoadBalancers {
		if l.Confirmed {
			confirmed++
		}
	}
	return confirmed, len(c.LoadBalancers)
}

// Ratio is "confirmed/total", e.g. "2/2"; "" for no confirmation (nil).
func (c *Confirmation) Ratio() string {
	if c == nil {
		return ""
	}
	n, total := c.Count()
	return fmt.Sprintf("%d/%d", n, total)
}

// All reports whether at least one load balancer was expected and every
// one confirmed.
func (c Confirmation) All() bool {
	n, total := c.Count()
	return total > 0 && n == total
}

// AllChecking reports whether every load balancer that checked since the
// change confirmed it; the silent ones do not count. True with none
// expected: nothing says the server is out anywhere.
func (c Confirmation) AllChecking() bool {
	for _, l := range c.LoadBalancers {
		if !l.Confirmed && !l.Silent {
			return false
		}
	}
	return true
}

// Text says it for people: "out of rotation on 2/2 load balancers
// (10.0.0.2 after 0.62 s, 10.0.0.3 after 0.71 s)". With no load balancer
// expected it is empty: the caller says why.
func (c Confirmation) Text() string {
	n, total := c.Count()
	if total == 0 {
		return ""
	}
	what, verb := "out of rotation", "refused"
	if c.Want == Back {
		what, verb = "back in rotation", "accepted"
	}
	var yes, no []string
	for _, l := range c.LoadBalancers {
		if l.Confirmed {
			yes = append(yes, fmt.Sprintf("%s after %s", l.Addr, Seconds(l.After)))
		} else {
			if l.Silent {
				no = append(no, fmt.Sprintf("%s: no check in %s", l.Addr, Seconds(c.Elapsed)))
				continue
			}
			no = append(no, fmt.Sprintf("%s: %d of %d checks %s in %s", l.Addr, l.Answers, l.Need, verb, Seconds(c.Elapsed)))
		}
	}
	s := fmt.Sprintf("%s on %d/%d load balancers", what, n, total)
	if len(yes) > 0 {
		s += " (" + strings.Join(yes, ", ") + ")"
	}
	if len(no) > 0 {
		s += "; not confirmed by " + strings.Join(no, "; ")
	}
	return s
}

// timeout is how long a confirmation may take at most: for the slowest
// load balancer, need checks and one more interval (the first check can
// come just before the change), and half a second for the network. An
// interval not known yet counts as 2 s. At most a minute.
func (v *View) timeout(w Want, lbs []LB) time.Duration {
	need := v.need(w)
	var longest time.Duration
	for _, l := range lbs {
		longest = max(longest, confirmTime(need, l.Interval))
	}
	return min(longest+500*time.Millisecond, MaxConfirm)
}

// MaxConfirm bounds how long a confirmation is waited for.
const MaxConfirm = time.Minute

// confirmTime is how long need checks take at interval, with one more
// interval for the first check (2 s when the interval is not known).
func confirmTime(need int, interval time.Duration) time.Duration {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	return time.Duration(need+1) * interval
}

// Confirmable says whether need checks at interval can confirm a change
// before the wait for it ends (MaxConfirm): drainctl doctor's check of a
// load balancer's timings.
func Confirmable(need int, interval time.Duration) bool {
	return confirmTime(need, interval)+500*time.Millisecond <= MaxConfirm
}

func (v *View) need(w Want) int {
	if w == Back {
		return v.s.Rise
	}
	return v.s.Fall
}

// Wait waits until every load balancer that was checking at since has
// confirmed the change made then, or its timeout passes, or ctx ends, and
// says who confirmed. With no load balancer checking at since it returns
// at once, with none listed.
func (v *View) Wait(ctx context.Context, w Want, since time.Time) Confirmation {
	expected := v.Active(since)
	c := Confirmation{Want: w, LoadBalancers: []Confirmed{}}
	if len(expected) == 0 {
		return c
	}
	timer := time.NewTimer(time.Until(since.Add(v.timeout(w, expected))))
	defer timer.Stop()
	for {
		v.mu.Lock()
		c = v.confirmLocked(w, since, expected)
		changed := v.changed
		v.mu.Unlock()
		c.Elapsed = time.Since(since)
		if c.All() {
			return c
		}
		select {
		case <-ctx.Done():
		case <-timer.C:
		case <-changed:
			continue
		}
		c.Elapsed = time.Since(since)
		return c
	}
}

func (v *View) confirmLocked(w Want, since time.Time, expected []LB) Confirmation {
	c := Confirmation{Want: w, LoadBalancers: []Confirmed{}}
	need := v.need(w)
	for _, l := range expected {
		got := Confirmed{Addr: l.Addr, Port: l.Port, Need: need, Silent: true}
		if s := v.srcs[l.Key()]; s != nil {
			got.Silent = s.Last.Before(since)
			for _, a := range s.answers {
				if a.t.Before(since) || a.refused != (w == Out) {
					continue
				}
				got.Answers++
				if got.Answers == need {
					got.Confirmed, got.After = true, a.t.Sub(since)
				}
			}
		}
		c.LoadBalancers = append(c.LoadBalancers, got)
	}
	return c
}

// Views joins the views of several ways the load balancers check the
// host (the forward port's checks, HAProxy's agent-check), for the engine.
type Views []*View

// LoadBalancers lists every view's load balancers.
func (vs Views) LoadBalancers() []LB {
	var out []LB
	for _, v := range vs {
		out = append(out, v.LoadBalancers()...)
	}
	return out
}

// Ports lists every view's ports.
func (vs Views) Ports() []uint16 {
	var out []uint16
	for _, v := range vs {
		out = append(out, v.Ports()...)
	}
	return out
}

// Active lists every view's load balancers checking at t.
func (vs Views) Active(t time.Time) []LB {
	var out []LB
	for _, v := range vs {
		out = append(out, v.Active(t)...)
	}
	return out
}

// Wait waits on every view at once and joins their answers.
func (vs Views) Wait(ctx context.Context, w Want, since time.Time) Confirmation {
	cs := make([]Confirmation, len(vs))
	var wg sync.WaitGroup
	for i, v := range vs {
		wg.Go(func() { cs[i] = v.Wait(ctx, w, since) })
	}
	wg.Wait()
	out := Confirmation{Want: w, LoadBalancers: []Confirmed{}}
	for _, c := range cs {
		out.LoadBalancers = append(out.LoadBalancers, c.LoadBalancers...)
		out.Elapsed = max(out.Elapsed, c.Elapsed)
	}
	return out
}
