package health

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/etcdtest"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/ready"
)

// counted counts the publishes that etcd answered (written or not).
type counted struct {
	*pool.Pool
	n atomic.Int64
}

func (c *counted) PublishHealth(ctx context.Context, h pool.Health) error {
	err := c.Pool.PublishHealth(ctx, h)
	if err == nil {
		c.n.Add(1)
	}
	return err
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(15 * time.Second); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("after 15 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// On a real etcd: an in-service judgement makes no record, and,
// published again and again, no revision; a new agent process (a new Pool, as after a restart) that
// judges the same writes nothing either, so a restart never shows a
// healthy host out, not even for a moment; a change (the web server
// answering 503) is in the pool's status within fall periods and a
// request, the agent's own period (1 s).
func TestWatchOnEtcd(t *testing.T) {
	c := etcdtest.Start(t, 1)
	var status atomic.Int32
	status.Store(http.StatusOK)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(status.Load())) }))
	t.Cleanup(web.Close)
	check := ready.Check{URL: web.URL + "/"}
	openPool := func() *pool.Pool {
		p, err := pool.Open(pool.Config{Endpoints: c.Endpoints(), Name: "web", ID: "web1", Limit: pool.MustLimit("1"), RequestTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	// watch runs a Watch on p until the returned stop.
	watch := func(p *pool.Pool, period time.Duration) (*counted, func()) {
		pub := &counted{Pool: p}
		w := &Watch{Phase: func() (bool, string) { return true, "" }, Ready: check, Pool: pub, Log: slog.New(slog.DiscardHandler),
			Period: period, FastPeriod: min(period, FastPeriod), JudgeEvery: min(period, JudgeEvery)}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); w.Run(ctx) }()
		stop := func() { cancel(); <-done }
		t.Cleanup(stop)
		return pub, stop
	}
	health := func(p *pool.Pool) (*pool.Health, int64) {
		st, err := p.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range st.Members {
			if m.ID == "web1" {
				return m.Health, st.Revision
			}
		}
		return nil, st.Revision
	}
	const fast = 20 * time.Millisecond

	// In service, the pool keeps no record of it: the judgement,
	// published 20 times, writes nothing at all.
	p1 := openPool()
	_, rev := health(p1)
	pub, stop := watch(p1, fast)
	waitFor(t, "20 publishes", func() bool { return pub.n.Load() >= 20 })
	if h, after := health(p1); after != rev || h != nil {
		t.Fatalf("an in-service judgement published 20 times made %d revisions (%+v); want none, and no record", after-rev, h)
	}
	stop()

	// The agent restarts: a new process, a new client.
	p2 := openPool()
	pub, stop = watch(p2, fast)
	waitFor(t, "the new agent's first 10 publishes", func() bool { return pub.n.Load() >= 10 })
	if h, after := health(p2); after != rev || h != nil {
		t.Fatalf("a restarted agent judging the same made %d revisions (%+v)", after-rev, h)
	}
	stop()

	// A change, at the agent's own pace.
	pub, stop = watch(p2, Period)
	waitFor(t, "a first judgement", func() bool { return pub.n.Load() >= 1 })
	status.Store(http.StatusServiceUnavailable)
	changed := time.Now()
	var h *pool.Health
	waitFor(t, "web1 out of service in the pool", func() bool { h, _ = health(p2); return h != nil && !h.InService })
	took := time.Since(changed)
	if want := "web server not answering: " + web.URL + "/: status 503, want 200-399"; h.Why != want {
		t.Errorf("why %q, want %q", h.Why, want)
	}
	// Fall probes (the change may come just after one) and a request.
	if bound := 3*Period + 2*time.Second; took > bound {
		t.Errorf("the change took %v to reach the pool, want within %v", took, bound)
	}
	t.Logf("a web server answering 503 was out in the pool after %v", took)
	stop()
	_, rev = health(p2)

	p3 := openPool()
	pub, stop = watch(p3, fast)
	waitFor(t, "the third agent's first 10 publishes", func() bool { return pub.n.Load() >= 10 })
	if h, after := health(p3); after != rev || h == nil || h.InService || !strings.Contains(h.Why, "status 503") {
		t.Fatalf("a restarted agent judging the same (out) made %d revisions (%+v)", after-rev, h)
	}
	// Back: the record goes, in one revision.
	status.Store(http.StatusOK)
	waitFor(t, "web1's record gone", func() bool { h, _ := health(p3); return h == nil })
	if _, after := health(p3); after != rev+1 {
		t.Errorf("back in service made %d revisions, want 1 (the record's deletion)", after-rev)
	}
	stop()
}
