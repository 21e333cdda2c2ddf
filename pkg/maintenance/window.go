package maintenance

// Maintenance windows: an operation that takes the server out may be
// told when it may go (Request.Window). The window is checked before the
// pool's line and again once a slot is granted: a host that waited past
// its window must not go then, at 9 a.m., because its turn came.

import (
	"fmt"
	"time"

	"github.com/drainctl/drainctl/pkg/state"
	"github.com/drainctl/drainctl/pkg/window"
)

// What an operation does outside its window (Request.OutsideWindow).
const (
	OutsideSkip = "skip" // change nothing: outside-window (the default)
	OutsideWait = "wait" // wait for the window to open
)

// takeSlotIn takes the pool slot as o says: within the request's window
// (o.window), where outside it, it waits for the window or gives up (the
// request says), and a slot granted once the window has closed is given
// back at once.
func (r *opRun) takeSlotIn(o opening) error {
	w := r.win
	if w.IsZero() || !o.window {
		return r.takeSlot(o.slotNow)
	}
	for {
		if err := r.waitWindow(w); err != nil {
			return err
		}
		if err := r.takeSlot(o.slotNow); err != nil {
			return err
		}
		if w.Contains(r.e.clock.Now()) {
			return nil
		}
		// Waited past the window for the slot: give it back, and go on
		// only at the next opening (wait) or not at all (skip).
		note := r.e.release(r.e.ctx)
		r.publish(Event{Op: r.op, Phase: WaitingForSlot, Message: "the slot came after the window " + w.String() + " closed: " + note})
		if r.req.OutsideWindow != OutsideWait {
			return fail(CodeOutsideWindow, state.InService,
				"the window %s closed while waiting for a pool slot; nothing was changed (--outside-window wait waits for the next one)", w)
		}
	}
}

// waitWindow returns once w is open: at once inside it; outside, it
// waits for it to open (wait) or fails (skip).
func (r *opRun) waitWindow(w window.Window) error {
	e := r.e
	now := e.clock.Now()
	if w.Contains(now) {
		return nil
	}
	next := w.Next(now)
	if r.req.OutsideWindow != OutsideWait {
		return fail(CodeOutsideWindow, state.InService,
			"outside the window %s (next opens %s); nothing was changed (--outside-window wait waits for it)", w, next.Format(time.RFC3339))
	}
	r.publish(Event{Op: r.op, Phase: WaitingForSlot, Message: fmt.Sprintf("outside the window %s: waiting until it opens, %s", w, next.Format(time.RFC3339))})
	select { // a nil Done (nobody waits for the answer) never fires
	case <-e.ctx.Done():
		return errStopping
	case <-r.req.Done:
		return fail(CodeOutsideWindow, state.InService, "gave up waiting for the window %s; nothing was changed", w)
	case <-time.After(next.Sub(now)):
	}
	return nil
}
