package maintenance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/state"
)

func isDeadline(err error) bool { return errors.Is(err, drain.ErrDeadline) }

// Resume reads the state file and converges (see the package doc). It is
// called once, when the agent starts, before requests are served. It
// returns what it did, for the log.
func (e *Engine) Resume() (string, error) {
	note, err := e.resume()
	if err == nil && e.d.Slots != nil {
		// Once resumed, with the engine free: a slot owed (an operation
		// that ended, or was rolled back, before the agent stopped) is
		// given back when the server is back in rotation.
		go e.releaser(10 * time.Second)
	}
	if err == nil {
		// A restart owed (policy-rc.d's) is run once the package manager
		// is done and, in a pool, a slot comes; one owed before the
		// agent stopped is still owed.
		go e.owedLoop()
	}
	return note, err
}

func (e *Engine) resume() (string, error) {
	st, err := e.led.load()
	if err != nil {
		return "", err
	}
	// The engine is let go at the end, unless work is left to run in
	// the background (a reboot to finish): that work lets it go.
	var rest func()
	defer func() {
		if rest == nil {
			e.led.release()
			return
		}
		go func() { defer e.led.release(); rest() }()
	}()
	if st, err = e.recordBackend(st); err != nil {
		return "", err
	}
	e.releaseLeftHold()
	defer func() {
		// Forwards no longer configured go, after the configured ones
		// are in place (so NAT always has a rule for live connections).
		if err := e.fw.with(e.dropUnconfiguredNow); err != nil {
			e.log.Error("remove forwards that are no longer configured", "err", err)
		}
	}()
	switch {
	case st.Phase == state.InService:
		if err := e.fw.with(func(x fwx) error { return x.do(e.ctx, forward.Forwarder.Restore, x.all()...) }); err != nil {
			return "", fmt.Errorf("apply the forward: %w", err)
		}
		return "in service: forward applied", nil

	case st.Op == state.OpNone && st.Phase == state.Held, st.Op == state.OpEnter:
		if err := e.withdrawAll(); err != nil {
			return "", fmt.Errorf("withdraw the forward: %w", err)
		}
		note := "agent restarted: still in maintenance"
		if st.Op == state.OpEnter {
			note = "agent restarted while entering maintenance: withdrawn and held, as asked"
		}
		e.resuming(st.Op).hold(nil, st.LastError)
		return note + holderText(st.Holder), nil

	case st.Op == state.OpReboot:
		note, work, err := e.resumeReboot(st)
		rest = work
		return note, err

	case st.Op == state.OpRestart && (st.Phase == state.Withdrawing || st.Phase == state.Draining || st.Phase == state.ConfigTest):
		if err := e.withdrawAll(); err != nil {
			return "", fmt.Errorf("withdraw the forward: %w", err)
		}
		if err := e.resuming(state.OpRestart).putBack(closing{note: "agent restarted before the web server was restarted: rolling back"}); err != nil {
			return "restart interrupted; rollback failed: " + err.Error(), nil
		}
		return "restart interrupted before the web server was restarted: rolled back, in service", nil

	default: // a restart after the web server was touched, or an exit
		if err := e.withdrawAll(); err != nil {
			return "", fmt.Errorf("withdraw the forward: %w", err)
		}
		what := fmt.Sprintf("agent restarted during %s (%s): finishing", st.Op, st.Phase)
		if err := e.resuming(st.Op).putBack(closing{note: what}); err != nil {
			return what + "; the server stays out: " + err.Error(), nil
		}
		return what + "; in service", nil
	}
}

// recordBackend records which backend holds the rules from now on, before
// they move there (the first change of Resume moves them): an agent
// restarted with backend auto keeps it.
func (e *Engine) recordBackend(st state.State) (state.State, error) {
	b := e.fw.fw.Backend()
	if st.Backend == b {
		return st, nil
	}
	if st.Backend != "" {
		e.log.Warn("forward backend changed: drainctl's rules move", "from", st.Backend, "to", b)
	}
	if err := e.led.apply(func(st *state.State) { st.Backend = b }); err != nil {
		return st, fmt.Errorf("record the forward backend: %w", err)
	}
	return e.led.get(), nil
}

// Reconcile makes the forwards match the state: in service → restored,
// otherwise → withdrawn. A firewall reload or flush that removed them is
// repaired here. It also ends a held maintenance whose TTL has passed.
// The agent calls it every few seconds.
func (e *Engine) Reconcile(ctx context.Context) (repaired bool, err error) {
	// An operation changes the forwards and writes the phase announcing
	// it in one forwards.with, so the phase read here is what the rules
	// should be.
	var st state.State
	var running bool
	err = e.fw.with(func(x fwx) error {
		st, running = e.led.view()
		fs, err := x.read(ctx)
		if err == nil {
			repaired, err = e.repair(ctx, x, st.Phase, fs)
		}
		return err
	})
	if err != nil {
		return repaired, err
	}
	e.expireTTL(st.Phase, running, st.Holder)
	return repaired, nil
}

// ExpireTTL ends a held maintenance whose TTL has passed (in the
// background: Exit checks readiness first). The agent calls it every
// reconcile interval; Reconcile calls it too.
func (e *Engine) ExpireTTL() {
	st, running := e.led.view()
	e.expireTTL(st.Phase, running, st.Holder)
}

func (e *Engine) expireTTL(phase state.Phase, running bool, holder *state.Holder) {
	if phase == state.Held && !running && holder != nil && !holder.Until.IsZero() && !e.clock.Now().Before(holder.Until) {
		go func() {
			if _, err := e.Exit(Request{Who: "drainctl (maintenance TTL expired)"}, nil); err != nil && CodeOf(err) != CodeBusy {
				e.log.Error("TTL exit failed", "err", err)
			}
		}()
	}
}

func (e *Engine) repair(ctx context.Context, x fwx, phase state.Phase, fs []forward.Status) (bool, error) {
	have := map[forward.Forward]forward.Status{}
	for _, s := range fs {
		have[s.Forward] = s
	}
	want := phase != state.InService // withdrawn
	repaired := false
	for _, f := range x.all() {
		s, ok := have[f]
		if ok && s.Applied && s.Withdrawn == want && s.Rules == s.Want && len(s.Problems) == 0 {
			continue
		}
		e.log.Warn("forward not as expected (firewall reload or flush?): putting it back",
			"forward", f, "state", s.State(), "phase", phase, "problems", s.Problems)
		op := forward.Forwarder.Restore
		if want {
			op = forward.Forwarder.Withdraw
		}
		if err := x.do(ctx, op, x.all()...); err != nil {
			return false, fmt.Errorf("repair the forward: %w", err)
		}
		repaired = true
		break
	}
	removed, err := e.dropUnconfigured(ctx, x, fs)
	return repaired || removed, err
}

// dropUnconfiguredNow reads the forwards and drops the unconfigured.
func (e *Engine) dropUnconfiguredNow(x fwx) error {
	fs, err := x.read(e.ctx)
	if err != nil {
		return err
	}
	_, err = e.dropUnconfigured(e.ctx, x, fs)
	return err
}

// dropUnconfigured removes the rules of forwards that are installed but
// no longer configured: left in place, an old REDIRECT would keep
// answering the load balancer's checks.
func (e *Engine) dropUnconfigured(ctx context.Context, x fwx, fs []forward.Status) (removed bool, err error) {
	for _, s := range fs {
		if !x.configured(s.Forward) {
			e.log.Warn("removing a forward that is no longer configured", "forward", s.Forward, "state", s.State())
			if err := x.do(ctx, forward.Forwarder.Remove, s.Forward); err != nil {
				return removed, fmt.Errorf("remove forward %s, no longer configured: %w", s.Forward, err)
			}
			removed = true
		}
	}
	return removed, nil
}
