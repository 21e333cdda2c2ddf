package pool

// The pool's own settings: what every member must agree on (its
// max_unavailable) lives in the pool, not in each host's file. A host's
// configured limit only seeds a pool that has none yet.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// SettingsVersion is the layout of the settings key this drainctl reads
// and writes. A key of another version is refused, never guessed at: no
// slot is granted on a layout this drainctl does not understand.
//
// Layout 2 (this drainctl) counts every member out against the budget
// (health.go), where layout 1 counted the slots alone: an agent of
// layout 1 would grant on a rule that lets the last server standing go.
// So the first agent of layout 2 moves the pool to it (migrate), and
// from then on layout 1's agents grant nothing, and say so, until they
// are upgraded: a budget on two rules is none.
const SettingsVersion = 2

// Settings are the pool's: the limit every member's grant decides on,
// who set it and when.
type Settings struct {
	// Version is the layout (SettingsVersion).
	Version int `json:"version"`
	// MaxUnavailable is the pool's limit: "2" or "25%".
	MaxUnavailable Limit `json:"max_unavailable"`
	// By is who set it: "seeded by ID" for the agent that made the pool's
	// settings from its configuration, else the person or program.
	By    string    `json:"by,omitempty"`
	Since time.Time `json:"since"`
}

// ErrNewerLayout refuses to rewrite settings of a layout this drainctl
// does not know (a newer drainctl's): that drainctl must set them.
var ErrNewerLayout = errors.New("pool settings of a layout this drainctl does not know")

// parseSettings reads the settings key: a known layout with a limit, or
// an error that says what is wrong with it.
func parseSettings(b []byte) (Settings, error) {
	var v struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return Settings{}, fmt.Errorf("pool settings: %w", err)
	}
	switch {
	case v.Version == nil:
		return Settings{}, errors.New("pool settings: no layout version")
	case *v.Version < 1 || *v.Version > SettingsVersion:
		return Settings{}, fmt.Errorf("pool settings of layout version %d, this drainctl knows 1 to %d only (a newer drainctl wrote them: upgrade this one): %w", *v.Version, SettingsVersion, ErrNewerLayout)
	}
	var s Settings
	if err := json.Unmarshal(b, &s); err != nil {
		return Settings{}, fmt.Errorf("pool settings: %w", err)
	}
	if s.MaxUnavailable.n == 0 {
		return Settings{}, errors.New("pool settings: no max_unavailable")
	}
	return s, nil
}

// settingsKey is the pool's settings key.
func (p *Pool) settingsKey() string { return p.prefix + "settings" }

// Allowed is how many slots the pool's own limit allows for its size
// now: 0 while the pool has no settings it can read (nothing is granted).
func (s State) Allowed() int {
	if s.Settings == nil || s.SettingsError != "" {
		return 0
	}
	return s.Settings.MaxUnavailable.Allowed(s.Size())
}

// Seed writes the pool's settings from this host's configured limit if
// the pool has none: a create-only transaction, so the first writer
// wins and every later host reads the pool's. It returns the pool's
// settings as they are after it (unreadable: nil and why) and whether
// this host wrote them.
func (p *Pool) Seed(ctx context.Context) (*Settings, bool, error) {
	s, seeded, _, err := p.seed(ctx)
	return s, seeded, err
}

// seed is Seed, with the revision etcd answered at.
func (p *Pool) seed(ctx context.Context) (*Settings, bool, int64, error) {
	s := Settings{Version: SettingsVersion, MaxUnavailable: p.cfg.Limit, By: "seeded by " + p.cfg.ID, Since: time.Now().UTC()}
	if s.MaxUnavailable.n == 0 {
		s.MaxUnavailable = MustLimit("1")
	}
	v, _ := json.Marshal(s)
	k := p.settingsKey()
	resp, err := call(ctx, p, "seed the pool's settings", func(ctx context.Context, cli *clientv3.Client) (*clientv3.TxnResponse, error) {
		return cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
			Then(clientv3.OpPut(k, string(v))).Else(clientv3.OpGet(k)).Commit()
	})
	if errors.Is(err, rpctypes.ErrPermissionDenied) {
		// Under etcd's RBAC the settings are the admin's: a host may
		// not seed them, and must not guess a limit (fail closed).
		why := fmt.Sprintf("pool %s has no settings and this host (%s) may not seed them: an admin runs drainctl pool set max-unavailable N", p.cfg.Name, p.cfg.ID)
		p.known(nil, why)
		return nil, false, 0, fmt.Errorf("%s (%w)", why, err)
	}
	if err != nil {
		return nil, false, 0, err
	}
	rev := resp.Header.Revision
	if resp.Succeeded {
		p.known(&s, "")
		p.mu.Lock()
		hook := p.onSeed
		p.mu.Unlock()
		if hook != nil {
			hook(s)
		}
		return &s, true, rev, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, false, rev, errors.New("pool settings: gone as they were read")
	}
	got, err := parseSettings(kvs[0].Value)
	if err != nil {
		p.known(nil, err.Error())
		return nil, false, rev, err
	}
	p.known(&got, "")
	return &got, false, rev, nil
}

// OnSeed is called with the settings this host seeded the pool with,
// whenever it does (at the agent's start, or by an Acquire that found
// the pool without settings): the agent logs and records it.
func (p *Pool) OnSeed(f func(Settings)) {
	p.mu.Lock()
	p.onSeed = f
	p.mu.Unlock()
}

// SetLimit makes l the pool's limit, by who. Settings of a layout this
// drainctl does not know are not overwritten (ErrNewerLayout); malformed
// ones are (that mends them). It returns the settings it replaced (nil:
// none, or unreadable). A grant decided on the old limit and not yet
// committed fails and decides again: the grant compares the settings
// key.
func (p *Pool) SetLimit(ctx context.Context, l Limit, by string) (*Settings, error) {
	k := p.settingsKey()
	for {
		resp, err := call(ctx, p, "read the pool's settings", func(ctx context.Context, cli *clientv3.Client) (*clientv3.GetResponse, error) {
			return cli.Get(ctx, k)
		})
		if err != nil {
			return nil, err
		}
		var prev *Settings
		var rev int64
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
			s, err := parseSettings(resp.Kvs[0].Value)
			if errors.Is(err, ErrNewerLayout) {
				return nil, fmt.Errorf("pool %s: %w", p.cfg.Name, err)
			}
			if err == nil {
				prev = &s
			}
		}
		s := Settings{Version: SettingsVersion, MaxUnavailable: l, By: by, Since: time.Now().UTC()}
		v, _ := json.Marshal(s)
		txn, err := call(ctx, p, "set the pool's settings", func(ctx context.Context, cli *clientv3.Client) (*clientv3.TxnResponse, error) {
			return cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).Then(clientv3.OpPut(k, string(v))).Commit()
		})
		if err != nil {
			return nil, err
		}
		if txn.Succeeded {
			p.known(&s, "")
			return prev, nil
		}
		// Changed between the read and the write: read again, so that a
		// newer layout written meanwhile is not overwritten.
	}
}

// Settings are the pool's settings as this host last read them, without
// asking etcd (nil: not read yet, or unreadable; then why).
func (p *Pool) Settings() (*Settings, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last, p.lastErr
}

func (p *Pool) known(s *Settings, why string) {
	p.mu.Lock()
	p.last, p.lastErr = s, why
	p.mu.Unlock()
}

// WatchSettings calls f with the pool's settings now and at each change
// (nil and why when they are unreadable or absent), until ctx ends. It
// seeds a pool that has none first. etcd being away only delays it.
func (p *Pool) WatchSettings(ctx context.Context, f func(s *Settings, why string)) {
	k := p.settingsKey()
	for ctx.Err() == nil {
		s, rev, why, err := p.current(ctx)
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
		f(s, why)
		// Watched from the revision they were read at: no change is
		// missed between the two. A watch that ends (etcd away, a
		// compaction past rev) reads again.
		cli, err := p.client(ctx)
		if err != nil {
			continue // read again: current makes the client or fails
		}
		wctx, cancel := context.WithCancel(ctx)
		for r := range cli.Watch(clientv3.WithRequireLeader(wctx), k, clientv3.WithRev(rev+1)) {
			if r.Err() != nil {
				break
			}
			if deleted(r.Events) {
				break // seed again: the pool must not stay without settings
			}
			for _, ev := range r.Events {
				s, err := parseSettings(ev.Kv.Value)
				if err != nil {
					p.known(nil, err.Error())
					f(nil, err.Error())
					continue
				}
				p.known(&s, "")
				f(&s, "")
			}
		}
		cancel()
		sleep(ctx, time.Second)
	}
}

// current reads the pool's settings, seeding them if there are none:
// the settings (nil and why when unusable or absent) and the revision
// they were read at. A host that may not seed them (etcd's RBAC: the
// settings are the admin's) is told why and watches for the admin's:
// it does not ask again every second, each a refused request. err is
// etcd away.
func (p *Pool) current(ctx context.Context) (*Settings, int64, string, error) {
	k := p.settingsKey()
	resp, err := call(ctx, p, "read the pool's settings", func(ctx context.Context, cli *clientv3.Client) (*clientv3.GetResponse, error) {
		return cli.Get(ctx, k)
	})
	if err != nil {
		return nil, 0, "", err
	}
	if len(resp.Kvs) > 0 {
		s, err := parseSettings(resp.Kvs[0].Value)
		if err != nil {
			p.known(nil, err.Error())
			return nil, resp.Header.Revision, err.Error(), nil
		}
		if s.Version < SettingsVersion {
			if m, rev, ok := p.migrate(ctx, s, resp.Kvs[0].ModRevision); ok {
				return m, rev, "", nil
			}
		}
		p.known(&s, "")
		return &s, resp.Header.Revision, "", nil
	}
	// Seeded only when there are none: under RBAC the seed's write is
	// refused even when its compare would not hold, and a refusal at
	// every start would count as an etcd error.
	s, _, rev, err := p.seed(ctx)
	switch {
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		_, why := p.Settings()
		return nil, resp.Header.Revision, why, nil
	case errors.Is(err, ErrUnavailable):
		return nil, 0, "", err
	case err != nil:
		return nil, rev, err.Error(), nil
	}
	return s, rev, "", nil
}

// migrate rewrites settings of an older layout as this drainctl's, the
// limit and who set it kept, if nobody changed them since rev: true and
// the new settings and revision if it did. Refused (etcd's RBAC: the
// settings are the admin's) or failed, they stay as they are, readable
// by both, until an admin's drainctl pool set writes this layout.
func (p *Pool) migrate(ctx context.Context, old Settings, rev int64) (*Settings, int64, bool) {
	s := old
	s.Version = SettingsVersion
	v, _ := json.Marshal(s)
	k := p.settingsKey()
	resp, err := call(ctx, p, "move the pool's settings to layout "+fmt.Sprint(SettingsVersion), func(ctx context.Context, cli *clientv3.Client) (*clientv3.TxnResponse, error) {
		return cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).Then(clientv3.OpPut(k, string(v))).Commit()
	})
	if err != nil || !resp.Succeeded {
		if err != nil {
			slog.Info("pool settings stay of layout 1 (agents of the last release still grant on the slots alone)", "pool", p.cfg.Name, "err", err)
		}
		return nil, 0, false
	}
	slog.Warn("pool settings moved to layout 2: the budget counts every member out; agents of the last release grant nothing until upgraded", "pool", p.cfg.Name, "max_unavailable", s.MaxUnavailable.String())
	p.known(&s, "")
	return &s, resp.Header.Revision, true
}

func deleted(evs []*clientv3.Event) bool {
	for _, ev := range evs {
		if ev.Type == clientv3.EventTypeDelete {
			return true
		}
	}
	return false
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
