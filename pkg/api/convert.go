package api

// The boundary: the engine's values become the wire's (package apitype)
// when the server answers, and the wire's requests become the engine's
// when it calls the engine. Nothing of the engine's structs reaches the
// socket any other way, so an engine field added or renamed changes the
// API only when it is added here and to apitype (convert_test.go fails
// until then). Types whose fields are the wire's field for field
// (state.Holder, lbview.LB, runner.Output, pool.Claim …) are converted
// with Go's struct conversion: the compiler then checks that both sides
// still agree.

import (
	"errors"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/history"
	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/maintenance"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/runner"
	"github.com/drainctl/drainctl/pkg/state"
)

// EngineRequest is the engine's request for a wire request. The fields
// the server sets itself (who from the socket, the caller's pid, Done)
// are left to it.
func EngineRequest(r apitype.Request) maintenance.Request {
	return maintenance.Request{
		Who:           r.Who,
		Reason:        r.Reason,
		OnDeadline:    drain.OnDeadline(r.OnDeadline),
		Command:       r.Command,
		Log:           r.Log,
		CommandDone:   ptrOf(r.CommandDone, func(d apitype.CommandDone) maintenance.CommandDone { return maintenance.CommandDone(d) }),
		Force:         r.Force,
		IfRequired:    r.IfRequired,
		Window:        r.Window,
		OutsideWindow: r.OutsideWindow,
		TTL:           r.TTL,
		Deadline:      r.Deadline,
		PoolWait:      r.PoolWait,
		Unit:          r.Unit,
		Job:           r.Job,
	}
}

// StatusOf is the engine's status on the wire.
func StatusOf(st maintenance.Status) apitype.Status {
	return apitype.Status{
		State:      stateOf(st.State),
		Running:    st.Running,
		Forwards:   sliceOf(st.Forwards, forwardStatusOf),
		Backend:    st.Backend,
		LastDrain:  ptrOf(st.LastDrain, DrainEventOf),
		RunnerGone: st.RunnerGone,
		HealthChecks: ptrOf(st.HealthChecks, func(h maintenance.HealthChecks) apitype.HealthChecks {
			return apitype.HealthChecks{Ports: h.Ports, LoadBalancers: sliceOf(h.LoadBalancers, func(l lbview.LB) apitype.LB { return apitype.LB(l) })}
		}),
		Pool: ptrOf(st.Pool, func(p maintenance.StatusPool) apitype.StatusPool { return apitype.StatusPool(p) }),
	}
}

func stateOf(s state.State) apitype.State {
	return apitype.State{
		Version:   s.Version,
		Phase:     apitype.Phase(s.Phase),
		Op:        apitype.Op(s.Op),
		Holder:    ptrOf(s.Holder, holderOf),
		Backend:   s.Backend,
		Slot:      ptrOf(s.Slot, slotOf),
		Reboot:    ptrOf(s.Reboot, rebootOf),
		Owed:      ptrOf(s.Owed, func(o state.Owed) apitype.Owed { return apitype.Owed(o) }),
		LastError: s.LastError,
		History: sliceOf(s.History, func(t state.Transition) apitype.Transition {
			return apitype.Transition{Time: t.Time, Op: apitype.Op(t.Op), Phase: apitype.Phase(t.Phase), Note: t.Note}
		}),
	}
}

func holderOf(h state.Holder) apitype.Holder { return apitype.Holder(h) }

// PolicyAnswerOf is the engine's answer to policy-rc.d on the wire.
func PolicyAnswerOf(a maintenance.PolicyAnswer) apitype.PolicyAnswer {
	return apitype.PolicyAnswer{Defer: a.Defer, Note: a.Note, Owed: ptrOf(a.Owed, func(o state.Owed) apitype.Owed { return apitype.Owed(o) })}
}

func slotOf(s state.Slot) apitype.Slot {
	return apitype.Slot{Pool: s.Pool, Op: apitype.Op(s.Op), Since: s.Since, Release: s.Release}
}

func rebootOf(r state.Reboot) apitype.Reboot {
	return apitype.Reboot{BootID: r.BootID, Since: r.Since, Command: r.Command, Who: r.Who, Reason: r.Reason, Start: r.Start,
		Marks: sliceOf(r.Marks, func(m state.Mark) apitype.Mark { return apitype.Mark(m) }), OutOfRotation: r.OutOfRotation}
}

func forwardStatusOf(f forward.Status) apitype.ForwardStatus {
	return apitype.ForwardStatus{Forward: apitype.Forward(f.Forward), Applied: f.Applied, Withdrawn: f.Withdrawn,
		Redirected: f.Redirected, Refused: f.Refused, Held: f.Held, HeldAll: f.HeldAll, Rules: f.Rules, Want: f.Want, Problems: f.Problems}
}

// DrainEventOf is a drain's progress on the wire (also what
// wait-drained --json prints, with no agent).
func DrainEventOf(e drain.Event) apitype.DrainEvent {
	var byPath map[string]int
	if e.ByPath != nil {
		byPath = make(map[string]int, len(e.ByPath))
		for p, n := range e.ByPath {
			byPath[string(p)] = n
		}
	}
	return apitype.DrainEvent{
		Time:    e.Time,
		Active:  e.Active,
		ByPath:  byPath,
		ByPeer:  sliceOf(e.ByPeer, func(p drain.PeerCount) apitype.PeerCount { return apitype.PeerCount(p) }),
		Oldest:  ptrOf(e.Oldest, connOf),
		Idle:    e.Idle,
		New:     e.New,
		Ignored: e.Ignored,
		Outcome: string(e.Outcome), Elapsed: e.Elapsed, QuietFor: e.QuietFor, DeadlineIn: e.DeadlineIn,
	}
}

func connOf(c drain.ConnSummary) apitype.ConnSummary {
	return apitype.ConnSummary{Peer: c.Peer, Path: string(c.Path), Age: c.Age, Idle: c.Idle}
}

// EventOf is an engine event on the wire.
func EventOf(e maintenance.Event) apitype.Event {
	return apitype.Event{Time: e.Time, Op: apitype.Op(e.Op), Phase: apitype.Phase(e.Phase), Message: e.Message,
		Drain: ptrOf(e.Drain, DrainEventOf), Output: ptrOf(e.Output, outputOf)}
}

func outputOf(o runner.Output) apitype.Output { return apitype.Output(o) }

// ResultOf is an operation's result on the wire.
func ResultOf(r maintenance.Result) apitype.Result {
	return apitype.Result{
		Op:     apitype.Op(r.Op),
		Phase:  apitype.Phase(r.Phase),
		Holder: ptrOf(r.Holder, holderOf),
		Note:   r.Note,
		Drain: ptrOf(r.Drain, func(d drain.Result) apitype.DrainResult {
			return apitype.DrainResult{Outcome: string(d.Outcome), Remaining: d.Remaining, Last: DrainEventOf(d.Last), Elapsed: d.Elapsed}
		}),
		ConfigTest: ptrOf(r.ConfigTest, outputOf),
		Restart:    ptrOf(r.Restart, outputOf),
		Reboot:     ptrOf(r.Reboot, outputOf),
		Out:        ptrOf(r.Out, confirmationOf),
		Back:       ptrOf(r.Back, confirmationOf),
		Warnings:   r.Warnings,
		Elapsed:    r.Elapsed,
	}
}

func confirmationOf(c lbview.Confirmation) apitype.Confirmation {
	return apitype.Confirmation{Want: string(c.Want), Elapsed: c.Elapsed,
		LoadBalancers: sliceOf(c.LoadBalancers, func(c lbview.Confirmed) apitype.Confirmed { return apitype.Confirmed(c) })}
}

// ErrorOf is err on the wire: the engine's *maintenance.Error in its
// chain, else an internal error with err's message.
func ErrorOf(err error) *apitype.Error {
	var me *maintenance.Error
	if !errors.As(err, &me) {
		return &apitype.Error{Code: apitype.CodeInternal, Msg: err.Error()}
	}
	return &apitype.Error{Code: apitype.Code(me.Code), Msg: me.Msg, Holder: ptrOf(me.Holder, holderOf), Phase: apitype.Phase(me.Phase)}
}

// PoolStatusOf is the pool's status on the wire.
func PoolStatusOf(ps maintenance.PoolStatus) apitype.PoolStatus {
	return apitype.PoolStatus{
		Name: ps.Name,
		Members: sliceOf(ps.Members, func(m pool.Member) apitype.PoolMember {
			return apitype.PoolMember{ID: m.ID, Live: m.Live, LastSeen: m.LastSeen, Health: ptrOf(m.Health, func(h pool.Health) apitype.Health { return apitype.Health(h) })}
		}),
		Holders:     sliceOf(ps.Holders, func(c pool.Claim) apitype.Claim { return apitype.Claim(c) }),
		Unavailable: sliceOf(ps.Unavailable, func(o pool.Out) apitype.Unavailable { return apitype.Unavailable(o) }),
		Waiters: sliceOf(ps.Waiters, func(w pool.Waiter) apitype.Waiter {
			return apitype.Waiter{ID: w.ID, Op: w.Op, Since: w.Since}
		}),
		Paused:    ptrOf(ps.Paused, func(p pool.Pause) apitype.Pause { return apitype.Pause(p) }),
		Malformed: sliceOf(ps.Malformed, func(m pool.Malformed) apitype.MalformedKey { return apitype.MalformedKey(m) }),
		Settings: ptrOf(ps.Settings, func(s pool.Settings) apitype.PoolSettings {
			return apitype.PoolSettings{Version: s.Version, MaxUnavailable: s.MaxUnavailable.String(), By: s.By, Since: s.Since}
		}),
		SettingsError:            ps.SettingsError,
		ID:                       ps.ID,
		MaxUnavailable:           ps.MaxUnavailable,
		ConfiguredMaxUnavailable: ps.ConfiguredMaxUnavailable,
		Allowed:                  ps.Allowed,
		Slot:                     ptrOf(ps.Slot, slotOf),
	}
}

// HistoryOf is the history on the wire.
func HistoryOf(es []history.Entry) []apitype.HistoryEntry { return sliceOf(es, historyEntryOf) }

func historyEntryOf(e history.Entry) apitype.HistoryEntry {
	return apitype.HistoryEntry{
		Op: e.Op, Who: e.Who, Reason: e.Reason, Start: e.Start, End: e.End, DurationMS: e.DurationMS,
		Outcome: e.Outcome, Error: e.Error, Phase: e.Phase,
		Phases:         sliceOf(e.Phases, func(p history.Phase) apitype.HistoryPhase { return apitype.HistoryPhase(p) }),
		ConfigTestExit: e.ConfigTestExit, RestartExit: e.RestartExit,
		Command: e.Command, CommandExit: e.CommandExit, CommandOutput: e.CommandOutput,
		OutOfRotation: e.OutOfRotation, BackInRotation: e.BackInRotation, Warnings: e.Warnings,
		OverBudget: e.OverBudget,
		Action:     e.Action,
	}
}

// The wire carries the facts; the rules that sum them up stay in their
// packages, and clients apply them through these.

// ForwardState names a forward's condition in one word (absent,
// in-service, withdrawn, partial) by forward.Status.State's rule.
func ForwardState(f apitype.ForwardStatus) string {
	return forward.Status{Forward: forward.Forward(f.Forward), Applied: f.Applied, Withdrawn: f.Withdrawn,
		Redirected: f.Redirected, Refused: f.Refused, Held: f.Held, HeldAll: f.HeldAll, Rules: f.Rules, Want: f.Want, Problems: f.Problems}.State()
}

// PoolSize is the pool's size by pool.State.Size's rule: its registered
// members, live or gone, and any other holder.
func PoolSize(ps apitype.PoolStatus) int {
	return pool.State{
		Members: sliceOf(ps.Members, func(m apitype.PoolMember) pool.Member {
			return pool.Member{ID: m.ID, Live: m.Live, LastSeen: m.LastSeen}
		}),
		Holders: sliceOf(ps.Holders, func(c apitype.Claim) pool.Claim { return pool.Claim(c) }),
	}.Size()
}

// PoolUnavailable is what uses the pool's budget: ps.Unavailable, or,
// from an agent older than the health count (it sends none), its
// holders in pool.State.Unavailable's words: what that agent counted.
// A newer agent's list always has its holders, so an empty one beside
// holders can only be an older agent's.
func PoolUnavailable(ps apitype.PoolStatus) []apitype.Unavailable {
	if len(ps.Unavailable) > 0 || len(ps.Holders) == 0 {
		return ps.Unavailable
	}
	st := pool.State{Holders: sliceOf(ps.Holders, func(c apitype.Claim) pool.Claim { return pool.Claim(c) })}
	return sliceOf(st.Unavailable(), func(o pool.Out) apitype.Unavailable { return apitype.Unavailable(o) })
}

// CommandOutcome says how a maintenance run's command ended, for people
// ("succeeded", "failed with exit status N", "was killed by SIGNAL"), by
// maintenance.CommandDone.Outcome's rule.
func CommandOutcome(d *apitype.CommandDone) string { return (*maintenance.CommandDone)(d).Outcome() }

// sliceOf converts each element with f; nil stays nil (the wire sends
// null there, and [] for an empty list).
func sliceOf[E, T any](s []E, f func(E) T) []T {
	if s == nil {
		return nil
	}
	out := make([]T, len(s))
	for i, e := range s {
		out[i] = f(e)
	}
	return out
}

// ptrOf converts what p points to with f; nil stays nil.
func ptrOf[E, T any](p *E, f func(E) T) *T {
	if p == nil {
		return nil
	}
	v := f(*p)
	return &v
}

// PoolLimitDiffers says how this host's configured max_unavailable
// differs from the pool's, which decides ("" when they agree, or the
// pool's is not known), by maintenance.LimitDiffers' rule.
func PoolLimitDiffers(ps apitype.PoolStatus) string {
	return maintenance.LimitDiffers(ps.MaxUnavailable, ps.ConfiguredMaxUnavailable)
}
