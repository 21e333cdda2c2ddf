package maintenance

// Seeing and mending the pool from this host: its members, holders and
// waiters, freeing the slot of a host that is gone, pausing the pool.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/drainctl/drainctl/pkg/history"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/state"
)

// PoolAdmin is what `drainctl pool` asks of the pool (pool.Pool does it).
type PoolAdmin interface {
	Status(ctx context.Context) (pool.State, error)
	ReleaseFor(ctx context.Context, id string, force bool) (*pool.Claim, error)
	Pause(ctx context.Context, p pool.Pause) error
	Resume(ctx context.Context) error
	ID() string
	Limit() pool.Limit
}

// PoolStatus is `drainctl pool status`: the pool as etcd has it, with
// this host's view of it.
type PoolStatus struct {
	pool.State
	// ID is this host in the pool; MaxUnavailable its limit, and
	// Allowed the slots it allows for the pool's size now.
	ID             string `json:"id"`
	MaxUnavailable string `json:"max_unavailable"`
	Allowed        int    `json:"allowed"`
	// Slot is the slot this host's state says it holds, with a pending
	// release.
	Slot *state.Slot `json:"slot,omitempty"`
}

// ErrNoPool is returned by the pool's commands on a host without a pool.
var ErrNoPool = errors.New("no pool configured: this host decides alone (set pool: in the config file, or --pool-etcd)")

// PoolStatus reads the pool.
func (e *Engine) PoolStatus(ctx context.Context) (PoolStatus, error) {
	p, err := e.pool()
	if err != nil {
		return PoolStatus{}, err
	}
	return ReadPool(ctx, p, e.led.get().Slot)
}

// ReadPool reads pool p's status, with etcd's failures as the pool's
// commands report them (CodePoolUnavailable): the agent's, and drainctl
// doctor's when no agent answers.
func ReadPool(ctx context.Context, p PoolAdmin, slot *state.Slot) (PoolStatus, error) {
	st, err := p.Status(ctx)
	if err != nil {
		return PoolStatus{}, poolErr(err)
	}
	return PoolStatus{State: st, ID: p.ID(), MaxUnavailable: p.Limit().String(),
		Allowed: p.Limit().Allowed(st.Size()), Slot: slot}, nil
}

// PoolRelease frees the slot of host id, one that is gone for good (a
// live member's only with force), and records it in the history.
func (e *Engine) PoolRelease(ctx context.Context, id string, force bool, who string) (string, error) {
	p, err := e.pool()
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", fail(CodeBadRequest, "", "pool release: which host? (its id, as pool status lists it)")
	}
	start := e.clock.Now()
	c, err := p.ReleaseFor(ctx, id, force)
	if errors.Is(err, pool.ErrLiveMember) {
		return "", fail(CodeBusy, "", "%v", err)
	}
	if err != nil {
		return "", poolErr(err)
	}
	if c == nil {
		return id + " holds no slot: nothing to release", nil
	}
	note := fmt.Sprintf("freed the slot of %s (%s%s, since %s)", id, c.Op, reasonText(c.Reason), c.Since.Format(time.RFC3339))
	if id == p.ID() {
		// This host's own: the state must not owe it any more.
		e.setSlot(func(*state.Slot) *state.Slot { return nil })
	}
	e.recordAdmin(history.Entry{Op: "pool-release", Who: who, Reason: note, Start: start}, force)
	return note, nil
}

// PoolPause stops the pool granting slots; PoolResume lets it go on.
func (e *Engine) PoolPause(ctx context.Context, who, reason string) error {
	p, err := e.pool()
	if err != nil {
		return err
	}
	start := e.clock.Now()
	if err := p.Pause(ctx, pool.Pause{By: who, Reason: reason, Since: start}); err != nil {
		return poolErr(err)
	}
	e.recordAdmin(history.Entry{Op: "pool-pause", Who: who, Reason: reason, Start: start}, false)
	return nil
}

// PoolResume lets a paused pool grant slots again.
func (e *Engine) PoolResume(ctx context.Context, who string) error {
	p, err := e.pool()
	if err != nil {
		return err
	}
	start := e.clock.Now()
	if err := p.Resume(ctx); err != nil {
		return poolErr(err)
	}
	e.recordAdmin(history.Entry{Op: "pool-resume", Who: who, Start: start}, false)
	return nil
}

func (e *Engine) recordAdmin(entry history.Entry, force bool) {
	entry.End, entry.Outcome = e.clock.Now(), "ok"
	entry.Phase = string(e.Phase())
	if force {
		entry.Warnings = []string{"--force: the host's agent was alive"}
	}
	e.keep(entry)
}

// pool is the pool the admin operations act on, or the error of a host
// without one.
func (e *Engine) pool() (PoolAdmin, error) {
	if e.d.Pool == nil {
		return nil, fail(CodeBadRequest, "", "%v", ErrNoPool)
	}
	return e.d.Pool, nil
}

func poolErr(err error) error {
	if errors.Is(err, pool.ErrUnavailable) {
		return fail(CodePoolUnavailable, "", "%v", err)
	}
	return fail(CodeInternal, "", "%v", err)
}

func reasonText(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}
