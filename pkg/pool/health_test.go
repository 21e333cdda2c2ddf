package pool

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/etcdtest"
)

// waitingFor starts an Acquire of p and returns its result and the last
// wait it was shown.
func waitingFor(ctx context.Context, p *Pool) (<-chan error, func() string) {
	ch := make(chan error, 1)
	shown := make(chan string, 100)
	go func() {
		_, err := p.Acquire(ctx, Claim{Op: "restart"}, func(w Wait) { shown <- w.Text(time.Now()) })
		ch <- err
	}()
	last := ""
	return ch, func() string {
		for {
			select {
			case s := <-shown:
				last = s
			default:
				return last
			}
		}
	}
}

func mustPublish(t *testing.T, p *Pool, h Health) {
	t.Helper()
	if err := p.PublishHealth(ctxT(t, 5*time.Second), h); err != nil {
		t.Fatal(err)
	}
}

func granted(t *testing.T, ch <-chan error, after string) {
	t.Helper()
	select {
	case err := <-ch:
		if err != nil {
			t.Fatalf("after %s: %v", after, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("not granted 10 s after %s", after)
	}
}

// The budget counts every member out, not only the slots: a member whose
// agent says its web server does not answer, and a member whose agent is
// gone, each block a maintenance of a pool with max_unavailable 1 until
// it is back (or forgotten), and the waiter is told why.
func TestBudgetCountsEveryMemberOut(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 90*time.Second)
	a, b, d := open(t, c, "web", "a", "1"), open(t, c, "web", "b", "1"), open(t, c, "web", "d", "1")
	for _, p := range []*Pool{a, b, d} {
		if err := p.register(ctx); err != nil {
			t.Fatal(err)
		}
		mustPublish(t, p, Health{InService: true})
	}

	// d's web server stops answering: a waits, and is told why.
	mustPublish(t, d, Health{InService: false, Why: "web server not answering: connection refused"})
	ch, shown := waitingFor(ctx, a)
	notGranted(t, ch, "d is out of service")
	if s := shown(); !strings.Contains(s, "pool web: 1/1 unavailable — d: web server not answering: connection refused since ") {
		t.Errorf("a was shown %q", s)
	}
	mustPublish(t, d, Health{InService: true})
	granted(t, ch, "d back in service")
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// d's agent is gone (its lease ended): a waits until d is forgotten.
	dl, err := d.lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.cli.Revoke(ctx, dl); err != nil {
		t.Fatal(err)
	}
	ch, shown = waitingFor(ctx, a)
	notGranted(t, ch, "d's agent is gone")
	if s := shown(); !strings.Contains(s, "d: agent gone since ") {
		t.Errorf("a was shown %q", s)
	}
	if _, err := a.Forget(ctx, "a"); !errors.Is(err, ErrLiveMember) {
		t.Errorf("forget a live member: %v, want ErrLiveMember", err)
	}
	f, err := b.Forget(ctx, "d")
	if err != nil || !f.Known {
		t.Fatalf("forget d: %+v, %v", f, err)
	}
	granted(t, ch, "d forgotten")
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 2 || st.member("d") != nil {
		t.Errorf("after forgetting d: size %d, members %+v", st.Size(), st.Members)
	}
	if f, err := b.Forget(ctx, "nobody"); err != nil || f.Known {
		t.Errorf("forget an unknown id: %+v, %v; want nothing known, no error", f, err)
	}
}

// A member already counted out takes a slot at once, whoever holds the
// budget: mending it adds nothing to what is out. A gone member keeps its
// place in a percentage's base.
func TestOutMemberTakesItsSlot(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 60*time.Second)
	var ps []*Pool
	for _, id := range []string{"a", "b", "c", "d"} {
		p := open(t, c, "web", id, "50%")
		if err := p.register(ctx); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	a, b, cc, d := ps[0], ps[1], ps[2], ps[3]
	// d gone: 4 members still, 50% allows 2, d uses one.
	dl, err := d.lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.cli.Revoke(ctx, dl); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire(ctx, Claim{Op: "restart"}, nil); err != nil {
		t.Fatal(err)
	}
	st, err := a.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 4 || st.Allowed() != 2 || len(st.Unavailable()) != 2 {
		t.Fatalf("size %d allowed %d unavailable %+v: a gone member must stay in the base and count out", st.Size(), st.Allowed(), st.Unavailable())
	}
	ch, _ := waitingFor(ctx, cc)
	notGranted(t, ch, "a holds and d is gone (2 of 2)")
	// b's web server fails: 3 out of 2 allowed, and b still takes its
	// slot at once, ahead of c who waits.
	mustPublish(t, b, Health{InService: false, Why: "web server not answering"})
	if _, err := b.Acquire(ctxT(t, 5*time.Second), Claim{Op: "restart"}, nil); err != nil {
		t.Fatalf("a member counted out could not take its slot: %v", err)
	}
	notGranted(t, ch, "a and b hold, d gone")
}

// A member that goes out between a waiter's decision and its
// transaction is counted: the grant compares the members' health, and
// decides again.
func TestGrantComparesHealth(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 60*time.Second)
	a, b := open(t, c, "web", "a", "1"), open(t, c, "web", "b", "1")
	for _, p := range []*Pool{a, b} {
		if err := p.register(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := a.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	once := false
	beforeGrant = func() {
		if !once {
			once = true
			mustPublish(t, b, Health{Why: "load balancer 10.0.0.2 refuses its checks"})
		}
	}
	t.Cleanup(func() { beforeGrant = nil })
	ch, shown := waitingFor(ctx, a)
	notGranted(t, ch, "b went out between a's decision and its transaction")
	if s := shown(); !strings.Contains(s, "b: load balancer 10.0.0.2 refuses its checks") {
		t.Errorf("a was shown %q", s)
	}
	mustPublish(t, b, Health{InService: true})
	granted(t, ch, "b back")
}

// Health is written when it changes, never because it is asked again:
// the same account, from this agent or a new one, makes no revision.
func TestHealthWrittenOnChangeOnly(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 30*time.Second)
	a := open(t, c, "web", "a", "1")
	rev := func() int64 {
		r, err := a.cli.Get(ctx, "nothing")
		if err != nil {
			t.Fatal(err)
		}
		return r.Header.Revision
	}
	mustPublish(t, a, Health{InService: false, Why: "web server not answering"})
	r0 := rev()
	for range 20 {
		mustPublish(t, a, Health{InService: false, Why: "web server not answering"})
	}
	again := open(t, c, "web", "a", "1") // the agent restarted
	mustPublish(t, again, Health{InService: false, Why: "web server not answering"})
	if r := rev(); r != r0 {
		t.Fatalf("the same health 21 times made %d revisions", r-r0)
	}
	st, _ := a.Status(ctx)
	since := st.member("a").Health.Since
	mustPublish(t, again, Health{InService: false, Why: "load balancer 10.0.0.2 refuses its checks"})
	st, _ = a.Status(ctx)
	if h := st.member("a").Health; h.Why != "load balancer 10.0.0.2 refuses its checks" || !h.Since.Equal(since) {
		t.Errorf("out for another reason: %+v; want the new why, out since %v", h, since)
	}
	mustPublish(t, again, Health{InService: true})
	if r := rev(); r != r0+2 {
		t.Errorf("two changes made %d revisions", r-r0)
	}
}

// With a lease file, an agent that stops and starts again within the
// lease is never seen gone: its member key stays, on the same lease, and
// its return writes nothing.
func TestLeaseKeptAcrossRestart(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 30*time.Second)
	file := filepath.Join(t.TempDir(), "pool-lease")
	openL := func() *Pool {
		p, err := Open(Config{Endpoints: c.Endpoints(), Name: "web", ID: "a", Limit: MustLimit("1"), RequestTimeout: 2 * time.Second, TTL: 15 * time.Second, LeaseFile: file})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := openL()
	if err := first.register(ctx); err != nil {
		t.Fatal(err)
	}
	watcher := open(t, c, "web", "w", "1")
	r0, err := watcher.cli.Get(ctx, "nothing")
	if err != nil {
		t.Fatal(err)
	}
	first.Close()
	second := openL()
	t.Cleanup(func() { second.Close() })
	if err := second.register(ctx); err != nil {
		t.Fatal(err)
	}
	r1, err := watcher.cli.Get(ctx, "nothing")
	if err != nil {
		t.Fatal(err)
	}
	if r1.Header.Revision != r0.Header.Revision {
		t.Errorf("a restart made %d revisions (the member left and joined again)", r1.Header.Revision-r0.Header.Revision)
	}
	st, err := watcher.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.member("a"); m == nil || !m.Live || len(st.Unavailable()) != 0 {
		t.Errorf("after a restart: %+v, unavailable %+v", m, st.Unavailable())
	}
}
