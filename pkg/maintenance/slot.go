package maintenance

// The pool's slot: taken before an operation takes the server out, given
// back once the server is back in rotation. Taking fails closed (no slot,
// nothing withdrawn); giving back never holds the server out: the restore
// comes first, and a release etcd does not answer is retried in the
// background until it does.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/state"
)

// Slots is the pool's semaphore (pool.Pool does it).
type Slots interface {
	// Acquire waits for a slot and takes it; a host that holds one gets
	// it back at once. Idempotent.
	Acquire(ctx context.Context, c pool.Claim, wait func(pool.Wait)) (pool.Claim, error)
	// Release gives this host's slot back. Idempotent.
	Release(ctx context.Context) error
	// Held is this host's claim, nil if it holds none.
	Held(ctx context.Context) (*pool.Claim, error)
	Name() string
}

// DefaultPoolWait is how long an operation waits for a pool slot unless
// told: long enough for a pool of 20 servers, started by cron at the same
// minute, to go through one by one with a 5-minute maintenance each.
const DefaultPoolWait = 2 * time.Hour

// WaitingForSlot is the phase of the events of an operation waiting for
// a pool slot. It is never written to the state: nothing was changed yet.
const WaitingForSlot state.Phase = "waiting-for-slot"

// takeSlot takes the pool's slot for this operation, waiting in line for
// at most the pool wait (not at all with now), and records it in the
// state before anything is withdrawn. Without a pool it does nothing.
func (r *opRun) takeSlot(now bool) error {
	e := r.e
	if e.d.Slots == nil {
		return nil
	}
	wait := cmp.Or(r.req.PoolWait, e.d.PoolWait, DefaultPoolWait)
	ctx, cancel := context.WithTimeout(e.ctx, wait)
	defer cancel()
	if r.req.Done != nil {
		// The caller gave up (Ctrl-C, the SSH session closed): a waiter
		// that left holds nothing.
		go func() {
			select {
			case <-r.req.Done:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	claim := pool.Claim{Op: string(r.op), Reason: r.req.Reason, By: r.req.Who, Since: e.clock.Now()}
	// The wait is a phase of the history (and the metrics' wait time),
	// though not of the state: nothing has changed while it lasts.
	e.led.mark(WaitingForSlot, claim.Since)
	inLine := false
	shown := func(w pool.Wait) {
		if now {
			inLine = true // the pool is full: leave the line at once
			cancel()
			return
		}
		r.publish(Event{Op: r.op, Phase: WaitingForSlot, Message: "waiting for a slot: " + w.Text(time.Now())})
	}
	got, err := e.d.Slots.Acquire(ctx, claim, shown)
	switch {
	case errors.Is(err, pool.ErrUnavailable):
		// A grant whose answer was lost may have committed, in etcd
		// only: the releaser asks the pool until it knows, and gives
		// back a slot it finds (the server never left).
		e.unrecorded.Store(true)
		e.kickReleaser()
		return fail(CodePoolUnavailable, state.InService, "%v; nothing was changed: the server stays in service", err)
	case err != nil && e.ctx.Err() != nil:
		return errStopping
	case err != nil && inLine:
		return fail(CodePoolBusy, state.InService, "busy: no slot of pool %s free now; nothing was changed", e.d.Slots.Name())
	case errors.Is(err, context.DeadlineExceeded):
		return fail(CodePoolBusy, state.InService, "busy: no slot of pool %s within %v; nothing was changed", e.d.Slots.Name(), wait)
	case err != nil:
		return fail(CodePoolBusy, state.InService, "gave up waiting for a slot of pool %s: %v; nothing was changed", e.d.Slots.Name(), err)
	}
	slot := &state.Slot{Pool: e.d.Slots.Name(), Op: state.Op(got.Op), Since: got.Since}
	if err := e.led.apply(func(st *state.State) { st.Slot = slot }); err != nil {
		// Not recorded, so not kept: a restart would not know it owes it.
		if rerr := e.d.Slots.Release(e.ctx); rerr != nil {
			// Only etcd knows of it now: the releaser asks the pool
			// until the slot is found (and given back) or gone.
			e.unrecorded.Store(true)
			e.kickReleaser()
			e.log.Warn("give back the pool slot not recorded", "pool", e.d.Slots.Name(), "err", rerr)
			return fail(CodeInternal, state.InService, "cannot write the state file (%v), and giving the pool slot back failed too (%v): the agent retries; nothing was changed", err, rerr)
		}
		return fail(CodeInternal, state.InService, "cannot write the state file, so the pool slot was given back: %v; nothing was changed", err)
	}
	r.publish(Event{Op: r.op, Phase: state.InService, Message: "pool " + e.d.Slots.Name() + ": slot taken"})
	return nil
}

// giveBack ends an operation that left the server in service: the slot
// goes back now if the load balancers confirmed the server back (or none
// checks it), else the releaser does it once they do. What became of it
// is kept for the result's note (done). Idempotent.
func (r *opRun) giveBack() {
	e := r.e
	if r.released != "" {
		return // tried already (putBack): a failed release is the releaser's now
	}
	if st := e.led.get(); e.d.Slots == nil || st.Slot == nil || st.Phase != state.InService {
		return
	}
	back := r.res != nil && (e.d.Rotation == nil || (r.res.Back != nil && r.res.Back.AllChecking()))
	if !back {
		// Not confirmed back (yet): the releaser waits for it.
		e.kickReleaser()
		return
	}
	r.released = e.release(e.ctx)
}

// done ends an operation: the slot given back if it can be (putBack did
// already, unless the operation ended in service another way: a withdraw
// rolled back, a restore that failed), and the result's note saying so.
func (r *opRun) done() {
	r.giveBack()
	if r.released == "" || r.res == nil {
		return
	}
	if r.res.Note != "" {
		r.res.Note += "; "
	}
	r.res.Note += r.released
}

// release gives the slot back and says how it went. A failure marks the
// release pending in the state and leaves it to the releaser.
func (e *Engine) release(ctx context.Context) string {
	name := e.d.Slots.Name()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := e.d.Slots.Release(ctx); err != nil {
		e.setSlot(func(s *state.Slot) *state.Slot { s.Release = true; return s })
		e.log.Warn("pool slot release pending: the agent retries until etcd answers", "pool", name, "err", err)
		e.kickReleaser()
		return fmt.Sprintf("pool %s: slot release pending (%v); the agent retries until etcd answers", name, err)
	}
	e.setSlot(func(*state.Slot) *state.Slot { return nil })
	e.log.Info("pool slot released", "pool", name)
	return "pool " + name + ": slot released"
}

// setSlot changes the state's slot, if it has one, and writes it at
// once: the release is not a phase, but a restart must know it is still
// owed.
func (e *Engine) setSlot(f func(*state.Slot) *state.Slot) {
	err := e.led.apply(func(st *state.State) {
		if st.Slot != nil {
			c := *st.Slot
			st.Slot = f(&c)
		}
	})
	if err != nil {
		e.log.Error("write the state file", "err", err)
	}
}

func (e *Engine) kickReleaser() {
	select {
	case e.releaseKick <- struct{}{}:
	default:
	}
}

// askPoolEvery is how many of the releaser's rounds go by between two
// questions to the pool when nothing says a slot may be there: a
// backstop, for whatever lost the news of a slot (an answer lost in a way
// nobody saw). One read of this host's own key, no write.
const askPoolEvery = 6

// releaser gives the slot back whenever the server is in service, no
// operation runs, and the load balancers confirm it back in rotation;
// it retries every period. It also asks the pool: at start (a slot taken
// just before a crash, with the state not yet written, is found there),
// at every round while a slot may be there unrecorded (a grant whose
// answer was lost), and every askPoolEvery rounds whatever: a slot in
// etcd that the host does not know of is given back within a bounded
// time, never left to stop the pool.
func (e *Engine) releaser(period time.Duration) {
	for round := 0; ; round++ {
		if e.ctx.Err() != nil {
			return
		}
		e.releaseOnce(round%askPoolEvery == 0 || e.unrecorded.Load())
		select {
		case <-e.ctx.Done():
			return
		case <-e.releaseKick:
		case <-time.After(period):
		}
	}
}

func (e *Engine) releaseOnce(askPool bool) {
	st, running := e.led.view()
	if running || st.Phase != state.InService {
		return
	}
	if st.Slot == nil {
		if !askPool {
			return
		}
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		c, err := e.d.Slots.Held(ctx)
		cancel()
		if err != nil {
			return // asked again at the next round if a slot is unrecorded
		}
		if c == nil {
			e.unrecorded.Store(false)
			return
		}
		// Owed: recorded, unless an operation began meanwhile (its own).
		found := &state.Slot{Pool: e.d.Slots.Name(), Op: state.Op(c.Op), Since: c.Since}
		if err := e.whileIdle(func(st state.State) bool { return st.Phase == state.InService && st.Slot == nil }, func() {
			if err := e.led.apply(func(st *state.State) { st.Slot = found }); err != nil {
				e.log.Error("write the state file", "err", err)
			}
		}); err != nil {
			return
		}
		if st = e.led.get(); st.Slot == nil {
			return
		}
		e.unrecorded.Store(false) // recorded now: owed as any other
	}
	if !st.Slot.Release && e.d.Rotation != nil {
		// Back in rotation first: the next host must not leave before
		// this one serves again.
		c := e.d.Rotation.Wait(e.ctx, lbview.Back, time.Now())
		if !c.AllChecking() {
			e.log.Warn("pool slot kept: not every load balancer confirmed the server back in rotation", "confirmation", c.Text())
			return
		}
	}
	// The wait may have lasted a minute: an operation that began meanwhile
	// took the same slot again (Acquire gives a holder its own claim back)
	// and is taking the server out. Release only if nothing began, and
	// claim the engine for the release itself, so nothing begins during it.
	since := st.Slot.Since
	e.whileIdle(func(st state.State) bool { //nolint:errcheck // nothing to release when an operation runs
		return st.Phase == state.InService && st.Slot != nil && st.Slot.Since.Equal(since)
	}, func() { e.release(e.ctx) })
}

// whileIdle claims the engine while no operation runs and ok says so of
// the state, runs f and lets the engine go: the releaser's changes are
// made between operations, never in one.
func (e *Engine) whileIdle(ok func(state.State) bool, f func()) error {
	_, err := e.led.claim(func(st state.State, running bool) error {
		if running || !ok(st) || e.ctx.Err() != nil { // stopping: nothing begins
			return errRunning
		}
		return nil
	}, nil)
	if err != nil {
		return err
	}
	defer e.led.release()
	f()
	return nil
}
