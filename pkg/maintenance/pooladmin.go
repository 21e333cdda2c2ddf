package maintenance

// Seeing and mending the pool from this host: its members, holders and
// waiters, freeing the slot of a host that is gone, pausing the pool,
// setting the pool's limit.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drainctl/drainctl/pkg/freetext"
	"github.com/drainctl/drainctl/pkg/history"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/state"
)

// PoolAdmin is what `drainctl pool` asks of the pool (pool.Pool does it).
type PoolAdmin interface {
	Status(ctx context.Context) (pool.State, error)
	ReleaseFor(ctx context.Context, id string, force bool) (*pool.Claim, error)
	Forget(ctx context.Context, id string) (pool.Forgotten, error)
	Pause(ctx context.Context, p pool.Pause) error
	Resume(ctx context.Context) error
	SetLimit(ctx context.Context, l pool.Limit, by string) (*pool.Settings, error)
	// Settings are the pool's as last read, without a request.
	Settings() (*pool.Settings, string)
	// WatchSettings seeds a pool without settings, then tells f of them
	// and of each change until ctx ends.
	WatchSettings(ctx context.Context, f func(*pool.Settings, string))
	// OnSeed is told when this host seeds the pool's settings.
	OnSeed(f func(pool.Settings))
	ID() string
	// Limit is this host's configured limit: it only seeds the pool's.
	Limit() pool.Limit
}

// PoolStatus is `drainctl pool status`: the pool as etcd has it, with
// this host's view of it.
type PoolStatus struct {
	pool.State
	// Unavailable is every member counted against the budget
	// (pool.State.Unavailable), in the order the JSON has it.
	Unavailable []pool.Out `json:"unavailable"`
	// ID is this host in the pool. MaxUnavailable is the pool's limit,
	// which decides ("" while the pool has no settings it can read), and
	// Allowed the slots it allows for the pool's size now (0: none
	// granted). ConfiguredMaxUnavailable is this host's file's: it only
	// seeds a pool that has no settings.
	ID                       string `json:"id"`
	MaxUnavailable           string `json:"max_unavailable"`
	ConfiguredMaxUnavailable string `json:"configured_max_unavailable"`
	Allowed                  int    `json:"allowed"`
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
	ps := PoolStatus{State: st, Unavailable: st.Unavailable(), ID: p.ID(), ConfiguredMaxUnavailable: p.Limit().String(), Allowed: st.Allowed(), Slot: slot}
	if st.Settings != nil {
		ps.MaxUnavailable = st.Settings.MaxUnavailable.String()
	}
	return ps, nil
}

// LimitDiffers says how this host's configured limit differs from the
// pool's, which decides ("" when they agree or the pool's is not known).
func LimitDiffers(pools, configured string) string {
	if pools == "" || configured == "" || pools == configured {
		return ""
	}
	return fmt.Sprintf("this host's file says max_unavailable %s, the pool's is %s: the pool's decides (drainctl pool set max-unavailable changes it; the file only seeds a new pool)", configured, pools)
}

// PoolSet makes limit (N or P%) the pool's max_unavailable, for every
// member whatever its file says, and records it in the history.
func (e *Engine) PoolSet(ctx context.Context, limit, who string) (string, error) {
	p, err := e.adminPool(who, "", "")
	if err != nil {
		return "", err
	}
	l, err := pool.ParseLimit(limit)
	if err != nil {
		return "", fail(CodeBadRequest, "", "pool set: %v", err)
	}
	start := e.clock.Now()
	prev, err := p.SetLimit(ctx, l, who)
	if errors.Is(err, pool.ErrNewerLayout) {
		return "", fail(CodeBadRequest, "", "%v", err)
	}
	if err != nil {
		return "", poolErr(err)
	}
	note := SetNote(l, prev)
	e.recordAdmin(history.Entry{Op: "pool-set", Who: who, Reason: note, Start: start}, false)
	if d := LimitDiffers(l.String(), p.Limit().String()); d != "" {
		note += "; " + d
	}
	return note, nil
}

// FollowPoolSettings seeds the pool's settings with this host's limit
// if the pool has none (recorded in the log and the history when this
// host is the seeder), then follows them until ctx ends: it warns, at
// start and at each change, when this host's file says otherwise (told,
// never obeyed), and when the pool's settings cannot be read (nothing is
// granted). The agent runs it.
func (e *Engine) FollowPoolSettings(ctx context.Context) {
	p := e.d.Pool
	if p == nil {
		return
	}
	p.OnSeed(func(s pool.Settings) {
		start := e.clock.Now()
		e.recordAdmin(history.Entry{Op: "pool-seed", Who: "drainctl", Start: start,
			Reason: fmt.Sprintf("the pool had no settings: this host seeded them, max_unavailable %s from its configuration", s.MaxUnavailable)}, false)
	})
	var last string
	p.WatchSettings(ctx, func(s *pool.Settings, why string) {
		now := ""
		switch {
		case why != "":
			now = "unreadable: " + why
		case s != nil:
			now = s.MaxUnavailable.String()
		}
		if now == last {
			return
		}
		first := last == ""
		last = now
		switch {
		case why != "":
			e.log.Error("the pool's settings cannot be used: no slot is granted until they are mended (drainctl pool set max-unavailable)", "why", why)
		case s == nil:
			return // deleted: seeded again at once
		case !first:
			e.log.Info("the pool's max_unavailable changed", "max_unavailable", now, "by", s.By)
		}
		if s != nil {
			if d := LimitDiffers(now, p.Limit().String()); d != "" {
				e.log.Warn(d, "pool_max_unavailable", now, "configured_max_unavailable", p.Limit().String())
			}
		}
	})
}

// PoolRelease frees the slot of host id, one that is gone for good (a
// live member's only with force), and records it in the history.
func (e *Engine) PoolRelease(ctx context.Context, id string, force bool, who string) (string, error) {
	p, err := e.adminPool(who, "", id)
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
	note := ReleaseNote(id, c)
	if c == nil {
		return note, nil
	}
	if id == p.ID() {
		// This host's own: the state must not owe it any more.
		e.setSlot(func(*state.Slot) *state.Slot { return nil })
	}
	e.recordAdmin(history.Entry{Op: "pool-release", Who: who, Reason: note, Start: start}, force)
	return note, nil
}

// PoolForget removes host id from the pool for good: a host that is
// gone (its agent's lease ended) counts against the budget, and in a
// percentage's base, until it is back or forgotten, so a host retired
// for good must be forgotten or it holds the pool's budget forever. Its
// record, health, place in line and slot go in one transaction, which
// holds only while the host stays gone. A live member is refused as
// release refuses it (busy): its agent would count it again at its next
// change. An id the pool does not know changes nothing and is not
// recorded: nothing happened.
func (e *Engine) PoolForget(ctx context.Context, id, who string) (string, error) {
	p, err := e.adminPool(who, "", id)
	if err != nil {
		return "", err
	}
	// Host ids never hold "/" (pool.Open refuses one): such an id names
	// no member, and is the caller's mistake rather than etcd's.
	if id == "" || strings.Contains(id, "/") {
		return "", fail(CodeBadRequest, "", "pool forget: %q is not a host id (pool status lists them)", id)
	}
	start := e.clock.Now()
	f, err := p.Forget(ctx, id)
	if errors.Is(err, pool.ErrLiveMember) {
		return "", fail(CodeBusy, "", "%v", err)
	}
	if err != nil {
		return "", poolErr(err)
	}
	note, told := ForgetNote(f)
	if !f.Known {
		return told, nil
	}
	e.recordAdmin(history.Entry{Op: "pool-forget", Who: who, Reason: note, Start: start}, false)
	return told, nil
}

// PoolPause stops the pool granting slots; PoolResume lets it go on.
func (e *Engine) PoolPause(ctx context.Context, who, reason string) error {
	p, err := e.adminPool(who, reason, "")
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
	p, err := e.adminPool(who, "", "")
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

// The notes of the pool's administration, said the same whether the
// agent did it or an admin's drainctl did it on etcd directly.

// SetNote says a limit set, and what it replaced (nil: none readable).
func SetNote(l pool.Limit, prev *pool.Settings) string {
	was := "the pool had no readable settings"
	if prev != nil {
		was = "was " + prev.MaxUnavailable.String()
	}
	return fmt.Sprintf("max_unavailable %s (%s): every member's grants obey it, whatever its file says", l, was)
}

// ReleaseNote says the slot of id freed (c), or that it held none (nil).
func ReleaseNote(id string, c *pool.Claim) string {
	if c == nil {
		return id + " holds no slot: nothing to release"
	}
	return fmt.Sprintf("freed the slot of %s (%s%s, since %s)", id, c.Op, reasonText(c.Reason), c.Since.Format(time.RFC3339))
}

// ForgetNote says a member forgotten: the record the history keeps, and
// what the caller is told (with what happens if it comes back).
func ForgetNote(f pool.Forgotten) (record, told string) {
	if !f.Known {
		return "", f.ID + " is not a member of the pool: nothing to forget"
	}
	note := "forgot " + f.ID + ": it no longer counts against the pool's budget nor in its size"
	if c := f.Slot; c != nil {
		note += fmt.Sprintf("; freed its slot (%s%s, since %s)", c.Op, reasonText(c.Reason), c.Since.Format(time.RFC3339))
	}
	return note, note + " (if its agent starts again, it joins the pool again)"
}

func reasonText(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

// adminPool is the pool for an administration by who, for reason, of
// host id (""; none): their free text bounded and clean
// (freetext.Check) as an operation's is, for the history, the journal
// and the pool's own records.
func (e *Engine) adminPool(who, reason, id string) (PoolAdmin, error) {
	if err := checkText(Request{Who: who, Reason: reason}); err != nil {
		return nil, err
	}
	if err := freetext.Check("id", id, MaxID); err != nil {
		return nil, badField("id", "%v; nothing was changed", err)
	}
	return e.pool()
}
