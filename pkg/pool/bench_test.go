package pool

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/drainctl/drainctl/pkg/internal/etcdtest"
)

// BenchmarkContenders: 200 hosts (each its own etcd client, in this one
// process) contend for 10 slots on a 3-member cluster, each holding its
// slot 50 ms. Reported: the most slots a watcher saw held at once, the
// time from a release to the next grant, the etcd requests (unary calls
// and watch streams) per acquire-and-release, and whether the grants kept
// the order the waiters joined the line. Figures in docs/benchmarks.md.
//
//	go test -run '^$' -bench Contenders -benchtime 1x ./pkg/pool
func BenchmarkContenders(b *testing.B) {
	const n, slots, hold = 200, 10, 50 * time.Millisecond
	c := etcdtest.Start(b, 3)
	for b.Loop() {
		r := contend(b, c, n, slots, hold)
		b.ReportMetric(float64(r.peak), "max-held")
		b.ReportMetric(float64(r.handoff.Microseconds())/1000, "ms-release-to-grant-p50")
		b.ReportMetric(float64(r.handoff90.Microseconds())/1000, "ms-release-to-grant-p90")
		b.ReportMetric(float64(r.unary)/n, "requests/op")
		b.ReportMetric(float64(r.streams)/n, "watches/op")
		b.ReportMetric(float64(r.outOfOrder), "grants-out-of-order")
	}
}

type contendResult struct {
	peak               int64
	handoff, handoff90 time.Duration
	unary, streams     int64
	outOfOrder         int
}

// ledger is what a watcher of the pool's keys saw: the most holders at
// once, and the order hosts joined the line and were granted.
type ledger struct {
	held, peak      int64
	joined, granted []string
}

// watch records the pool's events under prefix from rev on, until ctx ends.
func (l *ledger) watch(ctx context.Context, cli *clientv3.Client, prefix string, rev int64) {
	for resp := range cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev)) {
		for _, ev := range resp.Events {
			kind, id, _ := strings.Cut(string(ev.Kv.Key[len(prefix):]), "/")
			switch {
			case kind == "holders" && ev.IsCreate():
				l.held++
				l.peak = max(l.peak, l.held)
				l.granted = append(l.granted, id)
			case kind == "holders" && ev.Type == clientv3.EventTypeDelete:
				l.held--
			case kind == "waiters" && ev.IsCreate():
				l.joined = append(l.joined, id)
			}
		}
	}
}

// outOfOrder counts grants that passed the line: when a waiter is
// granted, fewer than slots of those who joined before it may still be
// waiting (the first waiters up to the free slots race for them; no one
// further back may pass them).
func (l *ledger) outOfOrder(slots int) int {
	rank := map[string]int{}
	for i, id := range l.joined {
		rank[id] = i
	}
	done, n := map[int]bool{}, 0
	for _, id := range l.granted {
		i, ok := rank[id]
		if !ok {
			continue // took a free slot with nobody in line
		}
		before := 0
		for j := range i {
			if !done[j] {
				before++
			}
		}
		if before >= slots {
			n++
		}
		done[i] = true
	}
	return n
}

// handoffs is, for each grant after the first slots, the time since the
// latest release that started before it: median and 90th percentile.
func handoffs(grants, releases []time.Time, slots int) (p50, p90 time.Duration) {
	slices.SortFunc(releases, time.Time.Compare)
	slices.SortFunc(grants, time.Time.Compare)
	var hs []time.Duration
	for _, g := range grants[min(slots, len(grants)):] {
		if i, _ := slices.BinarySearchFunc(releases, g, time.Time.Compare); i > 0 {
			hs = append(hs, g.Sub(releases[i-1]))
		}
	}
	if len(hs) == 0 {
		return 0, 0
	}
	slices.Sort(hs)
	return hs[len(hs)/2], hs[len(hs)*9/10]
}

// countingPools opens n Pools whose etcd clients count their unary
// requests and watch streams into r.
func countingPools(b *testing.B, c *etcdtest.Cluster, name string, n, slots int, r *contendResult) []*Pool {
	counter := grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		atomic.AddInt64(&r.unary, 1)
		return invoker(ctx, method, req, reply, cc, opts...)
	})
	streams := grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		atomic.AddInt64(&r.streams, 1)
		return streamer(ctx, desc, cc, method, opts...)
	})
	limit := MustLimit(fmt.Sprint(slots))
	var pools []*Pool
	for i := range n {
		p, err := Open(Config{Endpoints: c.Endpoints(), Name: name, ID: fmt.Sprintf("h%03d", i), Limit: limit})
		if err != nil {
			b.Fatal(err)
		}
		// The Pool's own client is replaced by a counting one.
		p.cli.Close()
		if p.cli, err = clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialOptions: []grpc.DialOption{counter, streams}}); err != nil {
			b.Fatal(err)
		}
		pools = append(pools, p)
	}
	atomic.StoreInt64(&r.unary, 0) // not the connection set-up
	atomic.StoreInt64(&r.streams, 0)
	return pools
}

func contend(b *testing.B, c *etcdtest.Cluster, n, slots int, hold time.Duration) contendResult {
	var r contendResult
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints()})
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	prefix := fmt.Sprintf("/drainctl/pools/bench%d/", time.Now().UnixNano())
	// Watch from a revision read now, so no event is missed however late
	// the watch is set up.
	now, err := cli.Get(ctx, "/")
	if err != nil {
		b.Fatal(err)
	}
	var l ledger
	wctx, stop := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() { defer close(watched); l.watch(wctx, cli, prefix, now.Header.Revision+1) }()
	pools := countingPools(b, c, prefix[len("/drainctl/pools/"):len(prefix)-1], n, slots, &r)
	var mu sync.Mutex
	var releases, grants []time.Time
	var wg sync.WaitGroup
	for _, p := range pools {
		wg.Go(func() {
			if _, err := p.Acquire(ctx, Claim{Op: "bench"}, nil); err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			grants = append(grants, time.Now())
			mu.Unlock()
			time.Sleep(hold)
			start := time.Now()
			if err := p.Release(ctx); err != nil {
				b.Error(err)
			}
			mu.Lock()
			releases = append(releases, start)
			mu.Unlock()
		})
	}
	wg.Wait()
	time.Sleep(200 * time.Millisecond)
	stop()
	<-watched
	for _, p := range pools {
		p.Close()
	}
	r.peak, r.outOfOrder = l.peak, l.outOfOrder(slots)
	r.handoff, r.handoff90 = handoffs(grants, releases, slots)
	return r
}

// BenchmarkIdleMembers: 1,000 agents (each its own etcd client, in this
// one process) in one pool on a 3-member cluster, checking their member
// key every second (the agent does it every 30 s), idle for 10 s: the
// revisions etcd made meanwhile (the first form of Register wrote one per
// agent per check: 10,000 here), then the revisions in the 3 s after one
// member's lease ends.
// Figures in docs/benchmarks.md.
//
//	go test -run '^$' -bench IdleMembers -benchtime 1x ./pkg/pool
func BenchmarkIdleMembers(b *testing.B) {
	const n, period, idle = 1000, time.Second, 10 * time.Second
	c := etcdtest.Start(b, 3)
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		ps := make([]*Pool, n)
		for i := range ps {
			p, err := Open(Config{Endpoints: c.Endpoints(), Name: "idle", ID: fmt.Sprintf("h%04d", i), Limit: MustLimit("10%"), TTL: 15 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			ps[i] = p
			go p.Register(ctx, period)
		}
		rev := func() int64 {
			r, err := ps[0].cli.Get(context.Background(), "nothing")
			if err != nil {
				b.Fatal(err)
			}
			return r.Header.Revision
		}
		// Every member joined, and its watch of the members set up.
		for end := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
			st, err := ps[0].Status(context.Background())
			live := 0
			for _, m := range st.Members {
				if m.Live {
					live++
				}
			}
			if err == nil && live == n {
				break
			}
			if time.Now().After(end) {
				b.Fatalf("%d of %d members live after 2 min", live, n)
			}
		}
		time.Sleep(2 * period)
		before := rev()
		time.Sleep(idle)
		idleRevs := rev() - before
		// One departure: its lease revoked (as when it expires).
		lease, err := ps[n-1].lease(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		cancelLast := rev()
		if _, err := ps[0].cli.Revoke(context.Background(), lease); err != nil {
			b.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		// The deletion and its record; its own agent (still running here)
		// may also have joined again on a new lease by then.
		departure := rev() - cancelLast
		cancel()
		for _, p := range ps {
			p.Close()
		}
		b.ReportMetric(float64(idleRevs), "revisions-idle-10s")
		b.ReportMetric(float64(n)*float64(idle/period), "revisions-idle-10s-first-form")
		b.ReportMetric(float64(departure), "revisions-3s-after-a-departure")
	}
}
