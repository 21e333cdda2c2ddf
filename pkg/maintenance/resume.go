package maintenance

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	return note, err
}

func (e *Engine) resume() (string, error) {
	st, err := e.d.Store.Load()
	if err != nil {
		return "", err
	}
	e.mu.Lock()
	e.st = st
	e.running = true
	e.mu.Unlock()
	// The engine is let go at the end, unless work is left to run in
	// the background (a reboot to finish): that work lets it go.
	var rest func()
	defer func() {
		if rest == nil {
			e.end()
			return
		}
		go func() { defer e.end(); rest() }()
	}()
	if st, err = e.recordBackend(st); err != nil {
		return "", err
	}
	defer func() {
		// Forwards no longer configured go, after the configured ones
		// are in place (so NAT always has a rule for live connections).
		if err := e.dropUnconfigured(e.ctx); err != nil {
			e.log.Error("remove forwards that are no longer configured", "err", err)
		}
	}()
	switch {
	case st.Phase == state.InService:
		e.fwMu.Lock()
		defer e.fwMu.Unlock()
		if err := e.d.Forwarder.Restore(e.ctx, e.d.Forwards...); err != nil {
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
		if err := e.resuming(state.OpRestart).readyAndRestore("agent restarted before the web server was restarted: rolling back"); err != nil {
			return "restart interrupted; rollback failed: " + err.Error(), nil
		}
		return "restart interrupted before the web server was restarted: rolled back, in service", nil

	default: // a restart after the web server was touched, or an exit
		if err := e.withdrawAll(); err != nil {
			return "", fmt.Errorf("withdraw the forward: %w", err)
		}
		what := fmt.Sprintf("agent restarted during %s (%s): finishing", st.Op, st.Phase)
		if err := e.resuming(st.Op).readyAndRestore(what); err != nil {
			return what + "; the server stays out: " + err.Error(), nil
		}
		return what + "; in service", nil
	}
}

// recordBackend records which backend holds the rules from now on, before
// they move there (the first change of Resume moves them): an agent
// restarted with backend auto keeps it.
func (e *Engine) recordBackend(st state.State) (state.State, error) {
	b := e.d.Forwarder.Backend()
	if st.Backend == b {
		return st, nil
	}
	if st.Backend != "" {
		e.log.Warn("forward backend changed: drainctl's rules move", "from", st.Backend, "to", b)
	}
	st.Backend = b
	if err := e.d.Store.Save(st); err != nil {
		return st, fmt.Errorf("record the forward backend: %w", err)
	}
	e.mu.Lock()
	e.st = st
	e.mu.Unlock()
	return st, nil
}

// Reconcile makes the forwards match the state: in service → restored,
// otherwise → withdrawn. A firewall reload or flush that removed them is
// repaired here. It also ends a held maintenance whose TTL has passed.
// The agent calls it every few seconds.
func (e *Engine) Reconcile(ctx context.Context) (repaired bool, err error) {
	// An operation changes the forwards and writes the phase announcing
	// it in one step under fwMu, so the phase read here is what the rules
	// should be.
	e.fwMu.Lock()
	e.mu.Lock()
	phase, running, holder := e.st.Phase, e.running, e.st.Holder
	e.mu.Unlock()
	fs, err := e.readForwards(ctx)
	if err == nil {
		repaired, err = e.repair(ctx, phase, fs)
	}
	e.fwMu.Unlock()
	if err != nil {
		return repaired, err
	}
	e.expireTTL(phase, running, holder)
	return repaired, nil
}

// ExpireTTL ends a held maintenance whose TTL has passed (in the
// background: Exit checks readiness first). The agent calls it every
// reconcile interval; Reconcile calls it too.
func (e *Engine) ExpireTTL() {
	e.mu.Lock()
	phase, running, holder := e.st.Phase, e.running, e.st.Holder
	e.mu.Unlock()
	e.expireTTL(phase, running, holder)
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

func (e *Engine) repair(ctx context.Context, phase state.Phase, fs []forward.Status) (bool, error) {
	have := map[forward.Forward]forward.Status{}
	for _, s := range fs {
		have[s.Forward] = s
	}
	want := phase != state.InService // withdrawn
	repaired := false
	for _, f := range e.d.Forwards {
		s, ok := have[f]
		if ok && s.Applied && s.Withdrawn == want && s.Rules == s.Want && len(s.Problems) == 0 {
			continue
		}
		e.log.Warn("forward not as expected (firewall reload or flush?): putting it back",
			"forward", f, "state", s.State(), "phase", phase, "problems", s.Problems)
		op := e.d.Forwarder.Restore
		if want {
			op = e.d.Forwarder.Withdraw
		}
		if err := op(ctx, e.d.Forwards...); err != nil {
			return false, fmt.Errorf("repair the forward: %w", err)
		}
		repaired = true
		break
	}
	for _, s := range fs {
		if !slices.Contains(e.d.Forwards, s.Forward) {
			e.log.Warn("removing a forward that is no longer configured", "forward", s.Forward)
			if err := e.d.Forwarder.Remove(ctx, s.Forward); err != nil {
				return repaired, fmt.Errorf("remove forward %s, no longer configured: %w", s.Forward, err)
			}
			repaired = true
		}
	}
	return repaired, nil
}

// dropUnconfigured removes the rules of forwards that are installed but
// no longer configured: left in place, an old REDIRECT would keep
// answering the load balancer's checks.
func (e *Engine) dropUnconfigured(ctx context.Context) error {
	e.fwMu.Lock()
	defer e.fwMu.Unlock()
	fs, err := e.readForwards(ctx)
	if err != nil {
		return err
	}
	for _, s := range fs {
		if !slices.Contains(e.d.Forwards, s.Forward) {
			e.log.Warn("removing a forward that is no longer configured", "forward", s.Forward, "state", s.State())
			if err := e.d.Forwarder.Remove(ctx, s.Forward); err != nil {
				return fmt.Errorf("remove forward %s: %w", s.Forward, err)
			}
		}
	}
	return nil
}
