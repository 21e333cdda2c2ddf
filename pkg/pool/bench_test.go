package pool

import (
	"context"
	"fmt"
	"slices"
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

func contend(b *testing.B, c *etcdtest.Cluster, n, slots int, hold time.Duration) contendResult {
	var r contendResult
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The line's order and the grants' order, by etcd's revisions.
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints()})
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	prefix := fmt.Sprintf("/drainctl/pools/bench%d/", time.Now().UnixNano())
	name := prefix[len("/drainctl/pools/") : len(prefix)-1]
	var held atomic.Int64
	var mu sync.Mutex
	var releases, grants []time.Time
	var joined, granted []string
	// Watch from a revision read now, so no event is missed however late
	// the watch is set up.
	now, err := cli.Get(ctx, "/")
	if err != nil {
		b.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for resp := range cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(now.Header.Revision+1)) {
			for _, ev := range resp.Events {
				k := string(ev.Kv.Key[len(prefix):])
				switch {
				case ev.Type == clientv3.EventTypePut && ev.IsCreate() && len(k) > 8 && k[:8] == "holders/":
					r.peak = max(r.peak, held.Add(1))
					granted = append(granted, k[8:])
				case ev.Type == clientv3.EventTypeDelete && len(k) > 8 && k[:8] == "holders/":
					held.Add(-1)
				case ev.Type == clientv3.EventTypePut && ev.IsCreate() && len(k) > 8 && k[:8] == "waiters/":
					joined = append(joined, k[8:])
				}
			}
		}
	}()
	counter := grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		atomic.AddInt64(&r.unary, 1)
		return invoker(ctx, method, req, reply, cc, opts...)
	})
	streams := grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		atomic.AddInt64(&r.streams, 1)
		return streamer(ctx, desc, cc, method, opts...)
	})
	limit, _ := ParseLimit(fmt.Sprint(slots))
	var pools []*Pool
	for i := range n {
		p, err := Open(Config{Endpoints: c.Endpoints(), Name: name, ID: fmt.Sprintf("h%03d", i), Limit: limit})
		if err != nil {
			b.Fatal(err)
		}
		// Count this client's requests (the Pool's own client is rebuilt
		// with the counters; Open's is closed).
		p.cli.Close()
		p.cli, err = clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialOptions: []grpc.DialOption{counter, streams}})
		if err != nil {
			b.Fatal(err)
		}
		pools = append(pools, p)
	}
	atomic.StoreInt64(&r.unary, 0) // not the connection set-up
	atomic.StoreInt64(&r.streams, 0)
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
	// Release to grant: for each grant after the first slots, the time
	// since the latest release that started before it.
	slices.SortFunc(releases, func(a, b time.Time) int { return a.Compare(b) })
	slices.SortFunc(grants, func(a, b time.Time) int { return a.Compare(b) })
	var handoffs []time.Duration
	for _, g := range grants[slots:] {
		i, _ := slices.BinarySearchFunc(releases, g, func(a, b time.Time) int { return a.Compare(b) })
		if i > 0 {
			handoffs = append(handoffs, g.Sub(releases[i-1]))
		}
	}
	slices.Sort(handoffs)
	if len(handoffs) > 0 {
		r.handoff = handoffs[len(handoffs)/2]
		r.handoff90 = handoffs[len(handoffs)*9/10]
	}
	// Served in the order they joined: when a waiter is granted, fewer
	// than slots of those who joined before it may still be waiting
	// (the first waiters up to the free slots race for them; no one
	// further back may pass them).
	rank := map[string]int{}
	for i, id := range joined {
		rank[id] = i
	}
	done := map[int]bool{}
	for _, id := range granted {
		i, ok := rank[id]
		if !ok {
			continue // took a free slot with nobody in line
		}
		before := 0
		for j := 0; j < i; j++ {
			if !done[j] {
				before++
			}
		}
		if before >= slots {
			r.outOfOrder++
		}
		done[i] = true
	}
	return r
}
