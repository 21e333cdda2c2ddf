package maintenance

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/pool"
)

// fakePoolAdmin is the pool as `drainctl pool` and the settings' follower
// see it: its settings, and what was asked of it.
type fakePoolAdmin struct {
	mu       sync.Mutex
	settings *pool.Settings
	setErr   error
	sets     []string // "limit by who"
	onSeed   func(pool.Settings)
	// changes are what WatchSettings tells, in order, after the seed.
	changes []*pool.Settings
	seed    bool // WatchSettings seeds the pool (the pool had none)
	// registered are the members Forget finds, each true while its agent
	// is live, held their slots; forgot the ids it was asked, and
	// forgetErr what etcd answers.
	registered map[string]bool
	// members and holders, when set, are the pool Status reads.
	members   []pool.Member
	holders   []pool.Claim
	held      map[string]*pool.Claim
	forgot    []string
	forgetErr error
}

// Forget does what pool.Forget does to the fake's members: a live one
// refused, an unknown one nothing, a gone one removed with its slot.
func (f *fakePoolAdmin) Forget(_ context.Context, id string) (pool.Forgotten, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgot = append(f.forgot, id)
	if f.forgetErr != nil {
		return pool.Forgotten{}, f.forgetErr
	}
	live, member := f.registered[id]
	if live {
		return pool.Forgotten{}, fmt.Errorf("pool web: %s is a live member (its agent runs): %w", id, pool.ErrLiveMember)
	}
	fg := pool.Forgotten{ID: id, Slot: f.held[id], Known: member || f.held[id] != nil}
	delete(f.registered, id)
	delete(f.held, id)
	return fg, nil
}

func (f *fakePoolAdmin) Status(context.Context) (pool.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.members != nil {
		return pool.State{Name: "web", Members: f.members, Holders: f.holders, Settings: f.settings}, nil
	}
	return pool.State{Name: "web", Members: []pool.Member{{ID: "web1", Live: true}}, Settings: f.settings}, nil
}
func (f *fakePoolAdmin) ReleaseFor(context.Context, string, bool) (*pool.Claim, error) {
	return nil, nil
}
func (f *fakePoolAdmin) Pause(context.Context, pool.Pause) error { return nil }
func (f *fakePoolAdmin) Resume(context.Context) error            { return nil }
func (f *fakePoolAdmin) ID() string                              { return "web1" }
func (f *fakePoolAdmin) Limit() pool.Limit                       { return pool.MustLimit("3") }
func (f *fakePoolAdmin) OnSeed(h func(pool.Settings))            { f.onSeed = h }

func (f *fakePoolAdmin) SetLimit(_ context.Context, l pool.Limit, by string) (*pool.Settings, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setErr != nil {
		return nil, f.setErr
	}
	prev := f.settings
	f.settings = &pool.Settings{Version: pool.SettingsVersion, MaxUnavailable: l, By: by}
	f.sets = append(f.sets, l.String()+" by "+by)
	return prev, nil
}

func (f *fakePoolAdmin) Settings() (*pool.Settings, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.settings, ""
}

func (f *fakePoolAdmin) WatchSettings(_ context.Context, h func(*pool.Settings, string)) {
	if f.seed {
		s := pool.Settings{Version: pool.SettingsVersion, MaxUnavailable: f.Limit(), By: "seeded by web1"}
		f.onSeed(s)
		h(&s, "")
	}
	for _, s := range f.changes {
		if s == nil {
			h(nil, "pool settings of layout version 2, this drainctl knows 1 only")
			continue
		}
		h(s, "")
	}
}

func poolAdminRig(t *testing.T, p *fakePoolAdmin) (*rig, *memHistory, *bytes.Buffer) {
	t.Helper()
	h := &memHistory{}
	var logs bytes.Buffer
	r := newRigDeps(t, context.Background(), nil, func(d *Deps) {
		d.Pool, d.Slots, d.History = p, &fakeSlots{}, h
		d.Log = slog.New(slog.NewTextHandler(&logs, nil))
	})
	return r, h, &logs
}

// pool set: the limit is checked, set for the pool, and recorded; a
// host whose file says otherwise is told in the answer; a layout this
// drainctl does not know is the request's fault, etcd away is
// pool-unavailable.
func TestPoolSet(t *testing.T) {
	p := &fakePoolAdmin{settings: &pool.Settings{Version: 1, MaxUnavailable: pool.MustLimit("1")}}
	r, h, _ := poolAdminRig(t, p)
	ctx := context.Background()
	for _, bad := range []string{"0", "x", "101%", ""} {
		if _, err := r.e.PoolSet(ctx, bad, "alice"); CodeOf(err) != CodeBadRequest {
			t.Errorf("pool set %q: %v", bad, err)
		}
	}
	note, err := r.e.PoolSet(ctx, "2", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(note, "max_unavailable 2 (was 1)") || !strings.Contains(note, "this host's file says max_unavailable 3, the pool's is 2") {
		t.Errorf("note %q", note)
	}
	if len(p.sets) != 1 || p.sets[0] != "2 by alice" {
		t.Errorf("sets %v", p.sets)
	}
	if len(h.entries) != 1 || h.entries[0].Op != "pool-set" || h.entries[0].Who != "alice" || !strings.Contains(h.entries[0].Reason, "max_unavailable 2 (was 1)") || h.entries[0].Outcome != "ok" {
		t.Errorf("history %+v", h.entries)
	}
	if note, err := r.e.PoolSet(ctx, "3", "bob"); err != nil || strings.Contains(note, "this host's file says") {
		t.Errorf("pool set to this host's own: %q %v", note, err)
	}
	p.setErr = fmt.Errorf("pool web: %w", pool.ErrNewerLayout)
	if _, err := r.e.PoolSet(ctx, "2", "alice"); CodeOf(err) != CodeBadRequest {
		t.Errorf("over a newer layout: %v", err)
	}
	p.setErr = fmt.Errorf("pool web: etcd at x: %w", pool.ErrUnavailable)
	if _, err := r.e.PoolSet(ctx, "2", "alice"); CodeOf(err) != CodePoolUnavailable {
		t.Errorf("etcd away: %v", err)
	}
	if len(h.entries) != 2 {
		t.Errorf("refused sets recorded: %+v", h.entries)
	}
}

// The pool's status and the host's status carry the pool's limit, which
// decides, and this host's file's beside it.
func TestPoolLimitShown(t *testing.T) {
	p := &fakePoolAdmin{settings: &pool.Settings{Version: 1, MaxUnavailable: pool.MustLimit("1")}}
	r, _, _ := poolAdminRig(t, p)
	ps, err := r.e.PoolStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ps.MaxUnavailable != "1" || ps.ConfiguredMaxUnavailable != "3" || ps.Allowed != 1 {
		t.Errorf("pool status: limit %q, configured %q, allowed %d", ps.MaxUnavailable, ps.ConfiguredMaxUnavailable, ps.Allowed)
	}
	if LimitDiffers(ps.MaxUnavailable, ps.ConfiguredMaxUnavailable) == "" {
		t.Error("1 and 3 do not differ")
	}
	st := r.e.Snapshot()
	if st.Pool == nil || st.Pool.MaxUnavailable != "1" || st.Pool.ConfiguredMaxUnavailable != "3" {
		t.Errorf("status' pool %+v", st.Pool)
	}
	p.settings = nil
	if ps, _ := r.e.PoolStatus(context.Background()); ps.MaxUnavailable != "" || ps.Allowed != 0 {
		t.Errorf("a pool without settings: limit %q, allowed %d", ps.MaxUnavailable, ps.Allowed)
	}
}

// The agent's follower: the seed is recorded (log and history) when this
// host made it; a host whose file differs from the pool's is warned at
// start and at each change to a value that still differs; settings it
// cannot use are logged as an error.
func TestFollowPoolSettings(t *testing.T) {
	p := &fakePoolAdmin{seed: true, changes: []*pool.Settings{
		{Version: 1, MaxUnavailable: pool.MustLimit("3"), By: "root"},
		{Version: 1, MaxUnavailable: pool.MustLimit("3"), By: "root"}, // no change: nothing said
		{Version: 1, MaxUnavailable: pool.MustLimit("25%"), By: "ops", Since: time.Now()},
		nil,
	}}
	r, h, logs := poolAdminRig(t, p)
	r.e.FollowPoolSettings(context.Background())
	if len(h.entries) != 1 || h.entries[0].Op != "pool-seed" || h.entries[0].Who != "drainctl" || !strings.Contains(h.entries[0].Reason, "this host seeded them, max_unavailable 3 from its configuration") {
		t.Errorf("history %+v", h.entries)
	}
	out := logs.String()
	for _, want := range []string{
		`msg="the pool's max_unavailable changed" max_unavailable=25% by=ops`,
		`level=WARN msg="this host's file says max_unavailable 3, the pool's is 25%`,
		`level=ERROR msg="the pool's settings cannot be used`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "the pool's max_unavailable changed"); n != 1 {
		t.Errorf("%d changes logged, want 1 (3 → 3 is none; the seed is no change):\n%s", n, out)
	}
	if strings.Count(out, "level=WARN") != 1 {
		t.Errorf("warned %d times, want once (25%%; the pool's 3 is this host's):\n%s", strings.Count(out, "level=WARN"), out)
	}
}

// pool forget: a gone host is removed, its slot freed with it, and it is
// recorded (pool-forget, with who); a live member is busy as release's
// refusal is, an unknown id says there is nothing to forget and records
// nothing, an id no host can have is refused before etcd is asked, and
// etcd away is pool-unavailable.
func TestPoolForget(t *testing.T) {
	since := time.Date(2026, 12, 7, 3, 2, 0, 0, time.UTC)
	p := &fakePoolAdmin{
		registered: map[string]bool{"web1": true, "web3": false, "web4": false},
		held:       map[string]*pool.Claim{"web3": {ID: "web3", Op: "reboot", Reason: "kernel", By: "root", Since: since}},
	}
	r, h, _ := poolAdminRig(t, p)
	ctx := context.Background()

	note, err := r.e.PoolForget(ctx, "web3", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(note, "forgot web3: it no longer counts against the pool's budget nor in its size; freed its slot (reboot: kernel, since 2026-12-07T03:02:00Z)") {
		t.Errorf("note %q", note)
	}
	if len(h.entries) != 1 || h.entries[0].Op != "pool-forget" || h.entries[0].Who != "alice" || h.entries[0].Outcome != "ok" ||
		!strings.Contains(h.entries[0].Reason, "forgot web3") || !strings.Contains(h.entries[0].Reason, "freed its slot") {
		t.Errorf("history %+v", h.entries)
	}
	if _, still := p.registered["web3"]; still || p.held["web3"] != nil {
		t.Errorf("web3 still in the pool: %v %v", p.registered, p.held)
	}

	// A gone member without a slot: forgotten, no slot said.
	if note, err := r.e.PoolForget(ctx, "web4", "bob"); err != nil || strings.Contains(note, "slot (") || !strings.HasPrefix(note, "forgot web4") {
		t.Errorf("forget web4: %q %v", note, err)
	}

	// Forgotten already, or never there: nothing to forget, nothing recorded.
	if note, err := r.e.PoolForget(ctx, "web3", "alice"); err != nil || note != "web3 is not a member of the pool: nothing to forget" {
		t.Errorf("forget web3 again: %q %v", note, err)
	}

	// A live member: busy, as release's, and the member stays.
	_, err = r.e.PoolForget(ctx, "web1", "alice")
	if CodeOf(err) != CodeBusy || !strings.Contains(err.Error(), "web1 is a live member") {
		t.Errorf("forget a live member: %v", err)
	}
	if !p.registered["web1"] {
		t.Error("the live member was removed")
	}

	// Ids no host can have: the request's fault, etcd not asked.
	asked := len(p.forgot)
	for _, bad := range []string{"", "web1/holders", "../web1"} {
		if _, err := r.e.PoolForget(ctx, bad, "alice"); CodeOf(err) != CodeBadRequest {
			t.Errorf("forget %q: %v", bad, err)
		}
	}
	if len(p.forgot) != asked {
		t.Errorf("the pool was asked to forget %v", p.forgot[asked:])
	}

	p.forgetErr = fmt.Errorf("pool web: etcd at x: %w", pool.ErrUnavailable)
	if _, err := r.e.PoolForget(ctx, "web9", "alice"); CodeOf(err) != CodePoolUnavailable {
		t.Errorf("etcd away: %v", err)
	}
	if len(h.entries) != 2 {
		t.Errorf("recorded %d entries, want 2 (web3, web4): %+v", len(h.entries), h.entries)
	}
}

// pool status says what uses the budget: the holder, a member out of
// service and a gone one, each once, while the slots held are one.
func TestPoolStatusCountsEveryMemberOut(t *testing.T) {
	down := time.Date(2026, 12, 7, 3, 2, 0, 0, time.UTC)
	p := &fakePoolAdmin{settings: &pool.Settings{Version: 1, MaxUnavailable: pool.MustLimit("1")},
		members: []pool.Member{
			{ID: "web1", Live: true, Health: &pool.Health{InService: true}},
			{ID: "web2", Live: true, Health: &pool.Health{InService: false, Why: "web server not answering", Since: down}},
			{ID: "web3", LastSeen: down},
			{ID: "web4", Live: true, Health: &pool.Health{InService: false, Why: "load balancers refuse its checks"}},
		},
		holders: []pool.Claim{{ID: "web4", Op: "enter", Since: down}}}
	r, _, _ := poolAdminRig(t, p)
	ps, err := r.e.PoolStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range ps.Unavailable {
		got = append(got, o.ID+": "+o.Why)
	}
	want := []string{"web4: holds a slot (enter)", "web2: web server not answering", "web3: agent gone"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") || len(ps.Holders) != 1 || ps.Allowed != 1 {
		t.Errorf("unavailable %q, want %q; holders %d, allowed %d", got, want, len(ps.Holders), ps.Allowed)
	}
}
