package pool

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/etcdtest"
)

// waitShown starts an Acquire and returns its result and what it was last
// shown while it waited.
func waitShown(ctx context.Context, p *Pool) (<-chan error, *atomic.Value) {
	var shown atomic.Value
	ch := make(chan error, 1)
	go func() {
		_, err := p.Acquire(ctx, Claim{Op: "restart"}, func(w Wait) { shown.Store(w) })
		ch <- err
	}()
	return ch, &shown
}

// notGranted says the Acquire is still waiting after a while.
func notGranted(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s: granted (%v)", what, err)
	case <-time.After(700 * time.Millisecond):
	}
}

func holders(t *testing.T, p *Pool) int {
	t.Helper()
	st, err := p.Status(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return len(st.Holders)
}

// Two hosts configured 1 and 3: the first seeds the pool with 1, and the
// second, whose file says 3, waits while the first holds the one slot —
// the pool's limit decides, not each host's. Setting the pool's limit to
// 2 lets both out.
func TestPoolLimitIsThePools(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 60*time.Second)
	a, b := open(t, c, "web", "a", "1"), open(t, c, "web", "b", "3")
	var seeded []Settings
	var mu sync.Mutex
	for _, p := range []*Pool{a, b} {
		p.OnSeed(func(s Settings) { mu.Lock(); seeded = append(seeded, s); mu.Unlock() })
	}
	if _, err := a.Acquire(ctx, Claim{Op: "restart"}, nil); err != nil {
		t.Fatal(err)
	}
	st, err := b.Status(ctx)
	if err != nil || st.Settings == nil || st.Settings.MaxUnavailable.String() != "1" || st.Settings.By != "seeded by a" || st.Settings.Version != SettingsVersion {
		t.Fatalf("the pool's settings after a's first acquire: %+v, %v; want 1, seeded by a", st.Settings, err)
	}
	if s, seededByB, err := b.Seed(ctx); err != nil || seededByB || s.MaxUnavailable.String() != "1" {
		t.Fatalf("b's seed: %+v %v %v; want the pool's 1, not b's 3 (first writer wins)", s, seededByB, err)
	}
	mu.Lock()
	if len(seeded) != 1 || seeded[0].By != "seeded by a" {
		t.Errorf("seeded: %+v, want a's only", seeded)
	}
	mu.Unlock()
	bch, shown := waitShown(ctx, b)
	notGranted(t, bch, "b configured 3 while a holds the pool's one slot")
	if w, _ := shown.Load().(Wait); w.Allowed != 1 || len(w.Holders) != 1 {
		t.Errorf("b was shown %+v, want 1/1 out", w)
	}
	if n := holders(t, a); n != 1 {
		t.Fatalf("%d holders with the pool's limit 1", n)
	}
	prev, err := a.SetLimit(ctx, MustLimit("2"), "root")
	if err != nil || prev == nil || prev.MaxUnavailable.String() != "1" {
		t.Fatalf("SetLimit: %+v %v", prev, err)
	}
	if err := <-bch; err != nil {
		t.Fatalf("b after the pool's limit went to 2: %v", err)
	}
	st, _ = a.Status(ctx)
	if len(st.Holders) != 2 || st.Allowed() != 2 || st.Settings.By != "root" {
		t.Fatalf("after SetLimit 2: holders %+v, allowed %d, settings %+v", st.Holders, st.Allowed(), st.Settings)
	}
	if s, why := b.Settings(); s == nil || s.MaxUnavailable.String() != "2" || why != "" {
		t.Errorf("b's last read settings: %+v %q", s, why)
	}
}

// A limit lowered while a host waits is obeyed: two hold at 2, the pool
// goes to 1, one releases, and the waiter still waits until none holds.
func TestPoolLimitLoweredDuringWait(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 60*time.Second)
	a, b, d := open(t, c, "web", "a", "2"), open(t, c, "web", "b", "2"), open(t, c, "web", "d", "2")
	for _, p := range []*Pool{a, b} {
		if _, err := p.Acquire(ctx, Claim{Op: "restart"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	dch, _ := waitShown(ctx, d)
	waitFor(t, "d waits", func() bool { return len(waitingIDs(t, a)) == 1 })
	if _, err := a.SetLimit(ctx, MustLimit("1"), "root"); err != nil {
		t.Fatal(err)
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	notGranted(t, dch, "d with a holding and the limit lowered to 1")
	if n := holders(t, a); n != 1 {
		t.Fatalf("%d holders, limit 1", n)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-dch; err != nil {
		t.Fatal(err)
	}
}

// A grant racing a change of the pool's limit: b decides on limit 2 (one
// held), the limit goes to 1 before b's transaction, which must then fail
// on the settings key's revision and decide again — b waits. A grant that
// compared only the holders and the pause would take a second slot here.
func TestGrantComparesSettings(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 60*time.Second)
	a, b, admin := open(t, c, "web", "a", "2"), open(t, c, "web", "b", "2"), open(t, c, "web", "ops", "2")
	if _, err := a.Acquire(ctx, Claim{Op: "restart"}, nil); err != nil {
		t.Fatal(err)
	}
	var raced atomic.Int32
	beforeGrant = func() {
		if raced.Add(1) == 1 {
			if _, err := admin.SetLimit(context.Background(), MustLimit("1"), "root"); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(func() { beforeGrant = nil })
	bch, shown := waitShown(ctx, b)
	notGranted(t, bch, "b's grant decided on limit 2, the limit lowered to 1 before it committed")
	if raced.Load() == 0 {
		t.Fatal("no grant was tried: the test did not race anything")
	}
	if n := holders(t, a); n != 1 {
		t.Fatalf("%d holders with the limit lowered to 1 during the grant", n)
	}
	if w, _ := shown.Load().(Wait); w.Allowed != 1 {
		t.Errorf("b was shown %+v, want allowed 1", w)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-bch; err != nil {
		t.Fatal(err)
	}

	// Settings deleted between the decision and the grant: no limit to
	// grant on, the grant fails, and the host seeds the pool again
	// before it decides.
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	raced.Store(0)
	beforeGrant = func() {
		if raced.Add(1) == 1 {
			if _, err := admin.cli.Delete(context.Background(), "/drainctl/pools/web/settings"); err != nil {
				t.Error(err)
			}
		}
	}
	if _, err := b.Acquire(ctx, Claim{Op: "restart"}, nil); err != nil {
		t.Fatal(err)
	}
	if st, err := b.Status(ctx); err != nil || st.Settings == nil || st.Settings.By != "seeded by b" || raced.Load() < 2 {
		t.Fatalf("granted with the settings deleted under the decision: settings %+v (%v), %d grants tried", st.Settings, err, raced.Load())
	}
}

// Settings that cannot be read, or of a layout this drainctl does not
// know, grant nothing and say why; pool set mends a malformed key, never
// overwrites a newer layout; a waiter goes on once they are mended.
func TestMalformedSettingsFailClosed(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 60*time.Second)
	a := open(t, c, "web", "a", "1")
	key := "/drainctl/pools/web/settings"
	for _, bad := range []struct{ value, why string }{
		{"not json", "pool settings: invalid character"},
		{`{"version":1}`, "no max_unavailable"},
		{`{"max_unavailable":"1"}`, "no layout version"},
		{`{"version":1,"max_unavailable":"0"}`, "at least 1"},
		{`{"version":3,"max_unavailable":"5","zones":"x"}`, "layout version 3"}, // last: SetLimit below
	} {
		value, why := bad.value, bad.why
		if _, err := a.cli.Put(ctx, key, value); err != nil {
			t.Fatal(err)
		}
		st, err := a.Status(ctx)
		if err != nil {
			t.Fatalf("%s: %v", value, err)
		}
		if !strings.Contains(st.SettingsError, why) || st.Settings != nil || st.Allowed() != 0 {
			t.Errorf("%s: settings %+v, error %q; want %q", value, st.Settings, st.SettingsError, why)
		}
		if len(st.Malformed) != 1 || st.Malformed[0].Key != key || !strings.Contains(st.Malformed[0].Why, "no slot is granted") {
			t.Errorf("%s: reported %+v", value, st.Malformed)
		}
		ch, shown := waitShown(ctxT(t, 1500*time.Millisecond), a)
		if err := <-ch; !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: acquire: %v, want a wait", value, err)
		}
		if w, _ := shown.Load().(Wait); !strings.Contains(w.Text(time.Now()), "no slot is granted: "+st.SettingsError) {
			t.Errorf("%s: shown %q", value, w.Text(time.Now()))
		}
	}
	// The newer layout is left to the newer drainctl.
	if _, err := a.SetLimit(ctx, MustLimit("1"), "root"); !errors.Is(err, ErrNewerLayout) {
		t.Fatalf("SetLimit over layout 3: %v", err)
	}
	if _, err := a.cli.Put(ctx, key, "{"); err != nil {
		t.Fatal(err)
	}
	ch, _ := waitShown(ctx, a)
	notGranted(t, ch, "malformed settings")
	if prev, err := a.SetLimit(ctx, MustLimit("1"), "root"); err != nil || prev != nil {
		t.Fatalf("SetLimit mending a malformed key: %+v %v", prev, err)
	}
	if err := <-ch; err != nil {
		t.Fatalf("the waiter once the settings were mended: %v", err)
	}
}

// WatchSettings seeds a pool without settings, then tells each change:
// a SetLimit, settings that cannot be read, and a deleted key seeded
// again at once (the pool must not stay without settings).
func TestWatchSettings(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 60*time.Second)
	a, b := open(t, c, "web", "a", "2"), open(t, c, "web", "b", "3")
	var seeds atomic.Int32
	a.OnSeed(func(Settings) { seeds.Add(1) })
	var mu sync.Mutex
	var seen []string
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.WatchSettings(wctx, func(s *Settings, why string) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case s != nil:
				seen = append(seen, s.MaxUnavailable.String()+" "+s.By)
			default:
				seen = append(seen, "unreadable: "+why)
			}
		})
	}()
	last := func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return ""
		}
		return seen[len(seen)-1]
	}
	waitFor(t, "the seed", func() bool { return last() == "2 seeded by a" })
	if _, err := b.SetLimit(ctx, MustLimit("25%"), "root"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the change", func() bool { return last() == "25% root" })
	if _, err := b.cli.Put(ctx, "/drainctl/pools/web/settings", "{"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "unreadable settings", func() bool { return strings.HasPrefix(last(), "unreadable: pool settings") })
	if s, why := a.Settings(); s != nil || why == "" {
		t.Errorf("a's last read: %+v %q", s, why)
	}
	if _, err := b.cli.Delete(ctx, "/drainctl/pools/web/settings"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "seeded again", func() bool { return last() == "2 seeded by a" && seeds.Load() == 2 })
	stop()
	<-done
}

// Settings of layout 1 (the last release's, whose agents count the slots
// alone) are read, and moved to layout 2 by the first agent of this one
// that watches them, the limit and who set it kept; a layout 1 read by
// an agent of the last release would then refuse to grant.
func TestSettingsMigrated(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 30*time.Second)
	a := open(t, c, "web", "a", "3")
	key := "/drainctl/pools/web/settings"
	if _, err := a.cli.Put(ctx, key, `{"version":1,"max_unavailable":"2","by":"seeded by old1","since":"2026-12-01T03:00:00Z"}`); err != nil {
		t.Fatal(err)
	}
	st, err := a.Status(ctx)
	if err != nil || st.Settings == nil || st.Settings.Version != 1 || st.Allowed() != 2 {
		t.Fatalf("layout 1 read: %+v %q %v", st.Settings, st.SettingsError, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan *Settings, 4)
	go a.WatchSettings(wctx, func(s *Settings, _ string) { got <- s })
	if s := <-got; s == nil || s.Version != 2 || s.MaxUnavailable.String() != "2" || s.By != "seeded by old1" {
		t.Fatalf("watched: %+v, want layout 2, limit 2, by seeded by old1", s)
	}
	r, err := a.cli.Get(ctx, key)
	if err != nil || len(r.Kvs) != 1 || !strings.Contains(string(r.Kvs[0].Value), `"version":2`) {
		t.Fatalf("the key after the migration: %v %v", r, err)
	}
}
