package pool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/drainctl/drainctl/pkg/internal/etcdtest"
)

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]string{"1": "1", "3": "3", " 2 ": "2", "25%": "25%", "100%": "100%"} {
		l, err := ParseLimit(in)
		if err != nil || l.String() != want {
			t.Errorf("ParseLimit(%q) = %v, %v; want %s", in, l, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "0%", "101%", "x", "2.5", "%"} {
		if _, err := ParseLimit(in); err == nil {
			t.Errorf("ParseLimit(%q): no error", in)
		}
	}
	pct, _ := ParseLimit("25%")
	for members, want := range map[int]int{0: 1, 1: 1, 3: 1, 4: 1, 8: 2, 10: 2, 100: 25} {
		if got := pct.Allowed(members); got != want {
			t.Errorf("25%% of %d = %d, want %d", members, got, want)
		}
	}
	if (Limit{}).Allowed(50) != 1 {
		t.Error("the zero Limit allows more than one")
	}
}

func TestWaitText(t *testing.T) {
	now := time.Date(2026, 12, 1, 3, 4, 0, 0, time.UTC)
	w := Wait{Pool: "web", Allowed: 1, Holders: []Claim{{ID: "web3", Op: "reboot", Reason: "kernel update", By: "root", Since: now.Add(-4 * time.Minute)}}, Ahead: 2}
	if got, want := w.Text(now), "pool web: 1/1 unavailable — web3, kernel update, by root, 4m0s ago; 2 waiting ahead"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// open is a Pool of the cluster for host id.
func open(t *testing.T, c *etcdtest.Cluster, name, id, limit string) *Pool {
	t.Helper()
	l, err := ParseLimit(limit)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Open(Config{Endpoints: c.Endpoints(), Name: name, ID: id, Limit: l, RequestTimeout: 2 * time.Second, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// acquireAsync starts an Acquire and returns a channel of its result.
func acquireAsync(ctx context.Context, p *Pool, op string) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := p.Acquire(ctx, Claim{Op: op}, nil)
		ch <- err
	}()
	return ch
}

func waitingIDs(t *testing.T, p *Pool) []string {
	st, err := p.Status(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, w := range st.Waiters {
		ids = append(ids, w.ID)
	}
	return ids
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("after 10 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// One slot: the first host takes it, the others wait in the order they
// came, each is granted when the one before releases, and a host that
// holds its slot takes it again at once, from a new process.
func TestSlotsFirstComeFirstServed(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a, b, d, e := open(t, c, "web", "a", "1"), open(t, c, "web", "b", "1"), open(t, c, "web", "d", "1"), open(t, c, "web", "e", "1")
	ctx := ctxT(t, 60*time.Second)
	if _, err := a.Acquire(ctx, Claim{Op: "restart", Reason: "r", By: "root"}, nil); err != nil {
		t.Fatal(err)
	}
	var waits []Wait
	var mu sync.Mutex
	bch := make(chan error, 1)
	go func() {
		_, err := b.Acquire(ctx, Claim{Op: "restart"}, func(w Wait) { mu.Lock(); waits = append(waits, w); mu.Unlock() })
		bch <- err
	}()
	waitFor(t, "b waits", func() bool { return len(waitingIDs(t, a)) == 1 })
	dch := acquireAsync(ctx, d, "enter")
	waitFor(t, "d waits", func() bool { return len(waitingIDs(t, a)) == 2 })
	ech := acquireAsync(ctx, e, "enter")
	waitFor(t, "e waits", func() bool { return len(waitingIDs(t, a)) == 3 })
	if got := strings.Join(waitingIDs(t, a), ","); got != "b,d,e" {
		t.Fatalf("line %s, want b,d,e", got)
	}
	mu.Lock()
	if len(waits) == 0 || len(waits[0].Holders) != 1 || waits[0].Holders[0].ID != "a" || waits[0].Holders[0].Reason != "r" {
		t.Errorf("b was shown %+v, want a's claim", waits)
	}
	mu.Unlock()
	// A new Pool for a (the agent restarted) gets the slot at once.
	a2 := open(t, c, "web", "a", "1")
	if h, err := a2.Acquire(ctx, Claim{Op: "exit"}, nil); err != nil || h.Op != "restart" {
		t.Fatalf("a again: %+v %v; want its own claim back", h, err)
	}
	order := []struct {
		p  *Pool
		ch <-chan error
	}{{b, bch}, {d, dch}, {e, ech}}
	holder := a
	for _, o := range order {
		select {
		case err := <-o.ch:
			t.Fatalf("%s granted before %s released: %v", o.p.ID(), holder.ID(), err)
		case <-time.After(300 * time.Millisecond):
		}
		if err := holder.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-o.ch; err != nil {
			t.Fatalf("%s: %v", o.p.ID(), err)
		}
		holder = o.p
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatalf("release twice: %v", err)
	}
}

// A waiter that gives up, or whose agent dies, holds nothing and leaves
// the line; the next one is served.
func TestWaiterThatLeavesHoldsNothing(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a, b, d := open(t, c, "web", "a", "1"), open(t, c, "web", "b", "1"), open(t, c, "web", "d", "1")
	ctx := ctxT(t, 60*time.Second)
	if _, err := a.Acquire(ctx, Claim{Op: "restart"}, nil); err != nil {
		t.Fatal(err)
	}
	bctx, giveUp := context.WithCancel(ctx)
	bch := acquireAsync(bctx, b, "restart")
	waitFor(t, "b waits", func() bool { return len(waitingIDs(t, a)) == 1 })
	// d's agent dies while waiting: its lease ends, and with it its place.
	dctx, cancelD := context.WithCancel(ctx)
	defer cancelD()
	acquireAsync(dctx, d, "restart")
	waitFor(t, "d waits", func() bool { return len(waitingIDs(t, a)) == 2 })
	giveUp()
	if err := <-bch; !errors.Is(err, context.Canceled) {
		t.Fatalf("b gave up: %v", err)
	}
	waitFor(t, "b left the line", func() bool { return strings.Join(waitingIDs(t, a), ",") == "d" })
	d.session.Orphan() // as if the process died: no delete, no revoke
	d.cli.Close()
	waitFor(t, "d's lease expired", func() bool { return len(waitingIDs(t, a)) == 0 })
	st, _ := a.Status(ctx)
	if len(st.Holders) != 1 || st.Holders[0].ID != "a" {
		t.Fatalf("holders %+v, want only a", st.Holders)
	}
}

// A percentage counts the live members and the holders that are not.
func TestPercentOfMembers(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 60*time.Second)
	var ps []*Pool
	for i := range 8 {
		p := open(t, c, "web", fmt.Sprintf("h%d", i), "25%")
		if err := p.register(ctx); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	for _, p := range ps[:2] {
		if _, err := p.Acquire(ctx, Claim{Op: "restart"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	third := acquireAsync(ctx, ps[2], "restart")
	select {
	case err := <-third:
		t.Fatalf("a third of 8 at 25%% was granted: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	ps[0].Release(ctx)
	if err := <-third; err != nil {
		t.Fatal(err)
	}
}

// Pause stops new grants; held slots stay; resume lets the line on. Two
// pools on one etcd never block each other.
func TestPauseAndPools(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 60*time.Second)
	a, b := open(t, c, "web", "a", "2"), open(t, c, "web", "b", "2")
	other := open(t, c, "api", "a", "1")
	if err := a.Pause(ctx, Pause{By: "root", Reason: "bad patch"}); err != nil {
		t.Fatal(err)
	}
	var shown atomic.Value
	bch := make(chan error, 1)
	go func() {
		_, err := b.Acquire(ctx, Claim{Op: "restart"}, func(w Wait) { shown.Store(w.Text(time.Now())) })
		bch <- err
	}()
	if _, err := other.Acquire(ctx, Claim{Op: "restart"}, nil); err != nil {
		t.Fatalf("pool api blocked by pool web's pause: %v", err)
	}
	select {
	case err := <-bch:
		t.Fatalf("granted while paused: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	if s, _ := shown.Load().(string); !strings.Contains(s, "paused by root: bad patch") {
		t.Errorf("waiter shown %q", s)
	}
	if err := a.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-bch; err != nil {
		t.Fatal(err)
	}
}

// Freeing another host's slot: refused while its agent lives, unless
// forced; allowed once it is gone.
func TestReleaseFor(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 60*time.Second)
	a, ops := open(t, c, "web", "a", "1"), open(t, c, "web", "ops", "1")
	a.register(ctx)
	if _, err := a.Acquire(ctx, Claim{Op: "reboot"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.ReleaseFor(ctx, "a", false); !errors.Is(err, ErrLiveMember) {
		t.Fatalf("release of a live member's slot: %v", err)
	}
	a.session.Orphan()
	a.cli.Close()
	waitFor(t, "a's member key expired", func() bool {
		st, _ := ops.Status(ctx)
		return len(st.Members) == 1 && !st.Members[0].Live
	})
	h, err := ops.ReleaseFor(ctx, "a", false)
	if err != nil || h == nil || h.Op != "reboot" {
		t.Fatalf("release of a gone host: %+v %v", h, err)
	}
	if h, err := ops.ReleaseFor(ctx, "a", false); err != nil || h != nil {
		t.Fatalf("release again: %+v %v", h, err)
	}
}

// etcd unreachable: Acquire fails closed, naming the endpoints.
func TestUnreachableFailsClosed(t *testing.T) {
	p, err := Open(Config{Endpoints: []string{"http://127.0.0.1:1"}, Name: "web", ID: "a", RequestTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start := time.Now()
	_, err = p.Acquire(context.Background(), Claim{Op: "restart"}, nil)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to fail", d)
	}
}

// A 3-member cluster: one member killed changes nothing; with two of
// three gone (no quorum), Acquire is refused and nothing is held.
func TestClusterQuorum(t *testing.T) {
	c := etcdtest.Start(t, 3)
	ctx := ctxT(t, 90*time.Second)
	a, b := open(t, c, "web", "a", "1"), open(t, c, "web", "b", "1")
	c.Members[0].Kill()
	if _, err := a.Acquire(ctx, Claim{Op: "restart"}, nil); err != nil {
		t.Fatalf("one member down: %v", err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	c.Members[1].Kill()
	_, err := b.Acquire(ctx, Claim{Op: "restart"}, nil)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("no quorum: %v", err)
	}
	c.Members[1].Restart(t, c)
	c.WaitHealthy(t)
	if h, err := b.Held(ctx); err != nil || h != nil {
		t.Fatalf("b holds %+v after a refused acquire (%v)", h, err)
	}
}

// Many contenders for few slots: a watcher of the holders never sees more
// than the limit, and everyone is served.
func TestContendersNeverExceedTheLimit(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 120*time.Second)
	const n, slots = 30, 3
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	var peak, held atomic.Int64
	now, err := cli.Get(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for r := range cli.Watch(wctx, "/drainctl/pools/web/holders/", clientv3.WithPrefix(), clientv3.WithRev(now.Header.Revision+1)) {
			for _, ev := range r.Events {
				if ev.Type == clientv3.EventTypePut && ev.IsCreate() {
					peak.Store(max(peak.Load(), held.Add(1)))
				} else if ev.Type == clientv3.EventTypeDelete {
					held.Add(-1)
				}
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		p := open(t, c, "web", fmt.Sprintf("h%02d", i), fmt.Sprint(slots))
		wg.Go(func() {
			if _, err := p.Acquire(ctx, Claim{Op: "restart"}, nil); err != nil {
				errs <- err
				return
			}
			time.Sleep(20 * time.Millisecond)
			errs <- p.Release(ctx)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	stop()
	<-watched
	if peak.Load() > slots || peak.Load() < 2 {
		t.Errorf("peak holders %d, want 2..%d", peak.Load(), slots)
	}
}

// Failures are counted by kind for the metrics.
func TestErrorsCounted(t *testing.T) {
	p, err := Open(Config{Endpoints: []string{"http://127.0.0.1:1"}, Name: "web", ID: "a", RequestTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Acquire(context.Background(), Claim{Op: "restart"}, nil)
	if e := p.Errors(); e["timeout"] == 0 || len(e) != len(ErrorKinds) {
		t.Fatalf("errors %v", e)
	}
}

// Keys drainctl cannot read are reported and never fatal, and the
// budget is kept on what is there: a malformed holder key still holds a
// slot, a malformed pause still pauses; junk elsewhere is left aside.
func TestMalformedKeys(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := open(t, c, "web", "web1", "2")
	ctx := ctxT(t, 30*time.Second)
	if err := a.register(ctx); err != nil {
		t.Fatal(err)
	}
	cli := a.cli
	prefix := "/drainctl/pools/web/"
	for k, v := range map[string]string{
		"seen/zz":          "not json",
		"holders/bad":      "not json",
		"holders/a/b":      `{"op":"restart"}`,
		"unknown/thing":    "x",
		"members":          "",
		"waiters/late":     "{",
		"/drainctl/pools/": "",
	} {
		key := prefix + k
		if k == "/drainctl/pools/" {
			key = "/drainctl/pools/web2/holders/web1" // another pool's key: not this pool's
		}
		if _, err := cli.Put(ctx, key, v); err != nil {
			t.Fatal(err)
		}
	}
	st, err := a.Status(ctx)
	if err != nil {
		t.Fatalf("one bad key made the pool unreadable: %v", err)
	}
	got := map[string]string{}
	for _, m := range st.Malformed {
		got[strings.TrimPrefix(m.Key, prefix)] = m.Why
	}
	for k, made := range map[string]string{
		"seen/zz": "last seen is not known", "holders/bad": "counted as a held slot", "holders/a/b": "counted as a held slot",
		"unknown/thing": "left aside", "members": "left aside", "waiters/late": "left out of the line",
	} {
		if !strings.Contains(got[k], made) {
			t.Errorf("%s: reported %q, want %q", k, got[k], made)
		}
	}
	if len(st.Malformed) != 6 {
		t.Errorf("malformed: %+v", st.Malformed)
	}
	if len(st.Holders) != 2 {
		t.Fatalf("holders %+v: the two malformed holder keys must count", st.Holders)
	}
	// max 2, two held by malformed keys: web1 waits.
	if _, err := a.Acquire(ctxT(t, 1500*time.Millisecond), Claim{Op: "restart"}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire with the budget used by malformed holders: %v, want a wait", err)
	}
	if _, err := cli.Delete(ctx, prefix+"holders/bad"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire(ctxT(t, 5*time.Second), Claim{Op: "restart"}, nil); err != nil {
		t.Fatalf("acquire with one slot free, junk still there: %v", err)
	}
	if _, err := cli.Put(ctx, prefix+"paused", "{{"); err != nil {
		t.Fatal(err)
	}
	if st, err := a.Status(ctx); err != nil || st.Paused == nil {
		t.Fatalf("a malformed pause: %+v, %v; want paused", st.Paused, err)
	}
}

// Hosts whose ids are prefixes of each other (web1, web10) are never
// confused: each holds, sees and releases its own slot only.
func TestPrefixIDs(t *testing.T) {
	c := etcdtest.Start(t, 1)
	w1, w10 := open(t, c, "web", "web1", "2"), open(t, c, "web", "web10", "2")
	ctx := ctxT(t, 30*time.Second)
	if _, err := w10.Acquire(ctx, Claim{Op: "restart"}, nil); err != nil {
		t.Fatal(err)
	}
	if h, err := w1.Held(ctx); err != nil || h != nil {
		t.Fatalf("web1 holds %+v (%v): web10's slot read as web1's", h, err)
	}
	if err := w1.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if h, err := w10.Held(ctx); err != nil || h == nil || h.ID != "web10" {
		t.Fatalf("web10's slot after web1's release: %+v, %v", h, err)
	}
	if h, err := w1.ReleaseFor(ctx, "web1", true); err != nil || h != nil {
		t.Fatalf("release for web1 freed %+v, %v", h, err)
	}
	if h, err := w10.Held(ctx); err != nil || h == nil {
		t.Fatalf("web10's slot gone: %+v, %v", h, err)
	}
}

// A grant whose answer is lost (the transaction reaches etcd and
// commits; the reply never comes back) is found out: the host reads its
// own key before it says, and holds the slot it was granted. When the
// answers stay lost past the find-out, it says unavailable, and the
// slot it holds without knowing is there for Held to find later.
func TestGrantAnswerLost(t *testing.T) {
	c := etcdtest.Start(t, 1)
	prox := etcdtest.NewProxy(t, strings.TrimPrefix(c.Endpoints()[0], "http://"))
	p, err := Open(Config{Endpoints: []string{prox.Endpoint()}, Name: "web", ID: "a1", Limit: MustLimit("1"),
		RequestTimeout: time.Second, TTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	other := open(t, c, "web", "a2", "1")
	ctx := ctxT(t, 60*time.Second)
	// The grant's transaction is the only request with the holder key.
	holder := "/drainctl/pools/web/holders/a1"

	// Lost for 1.5 s: the grant times out at 1 s, the find-out reads
	// again once the answers flow.
	prox.LoseAnswerTo(holder, 1500*time.Millisecond)
	got, err := p.Acquire(ctx, Claim{Op: "restart", Reason: "lost answer"}, nil)
	if err != nil || got.Reason != "lost answer" {
		t.Fatalf("acquire whose answer was lost and found out: %+v, %v", got, err)
	}
	if prox.Lost() == 0 {
		t.Fatal("the proxy lost nothing: the test did not test")
	}
	if h, err := other.Held(ctx); err != nil || h != nil {
		t.Fatalf("a2: %+v, %v", h, err)
	}
	if st, err := other.Status(ctx); err != nil || len(st.Holders) != 1 || st.Holders[0].ID != "a1" {
		t.Fatalf("the pool: %+v, %v", st.Holders, err)
	}
	if err := p.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// Lost for longer than the find-out: unavailable, yet held in etcd.
	prox.LoseAnswerTo(holder, findOutFor+3*time.Second)
	_, err = p.Acquire(ctx, Claim{Op: "restart"}, nil)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "may still commit") {
		t.Fatalf("acquire with the answers lost: %v, want unavailable, maybe committed", err)
	}
	if st, err := other.Status(ctx); err != nil || len(st.Holders) != 1 || st.Holders[0].ID != "a1" {
		t.Fatalf("the pool after the lost grant: %+v, %v (the transaction committed)", st.Holders, err)
	}
	waitFor(t, "a1 finds its slot once etcd answers", func() bool {
		h, err := p.Held(ctxT(t, 2*time.Second))
		return err == nil && h != nil
	})
}

// etcd's storage as doctor reads it: the database's size, the revision,
// whether anything was ever compacted, the alarms.
func TestStorage(t *testing.T) {
	c := etcdtest.Start(t, 1)
	p := open(t, c, "web", "web1", "1")
	ctx := ctxT(t, 20*time.Second)
	for i := range 5 {
		if _, err := p.cli.Put(ctx, "/drainctl/pools/web/seen/x", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := p.Storage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.DBSize <= 0 || st.Revision < 6 || st.Compacted || len(st.Alarms) != 0 || st.Endpoint != c.Endpoints()[0] {
		t.Fatalf("before compaction: %+v", st)
	}
	if _, err := p.cli.Compact(ctx, st.Revision); err != nil {
		t.Fatal(err)
	}
	if st, err = p.Storage(ctx); err != nil || !st.Compacted {
		t.Fatalf("after compaction: %+v, %v", st, err)
	}
	if n := p.Errors(); n["timeout"]+n["auth"]+n["error"] != 0 {
		t.Errorf("a compacted revision counted as etcd's failure: %v", n)
	}
}
