package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/drainctl/drainctl/pkg/internal/etcdtest"
)

// checker reads every change of a pool from etcd's watch and judges each
// grant on the state it was made in: the members out (holders, health
// out of service, departures recorded) may never exceed the limit,
// unless the host granted was counted out already (mending it adds
// nothing). It also keeps when each grant was seen.
type checker struct {
	limit  int
	mu     sync.Mutex
	holds  map[string]bool
	sick   map[string]bool // health out of service
	live   map[string]bool // member key present
	gone   map[string]bool // departure recorded after the member key went
	grants []time.Time
	over   []string
}

func newChecker(limit int) *checker {
	return &checker{limit: limit, holds: map[string]bool{}, sick: map[string]bool{}, live: map[string]bool{}, gone: map[string]bool{}}
}

func (k *checker) out() map[string]bool {
	u := map[string]bool{}
	for _, s := range []map[string]bool{k.holds, k.sick, k.gone} {
		for id := range s {
			u[id] = true
		}
	}
	return u
}

// follow applies the pool's events from rev on until ctx ends.
func (k *checker) follow(ctx context.Context, cli *clientv3.Client, prefix string, rev int64) {
	for r := range cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev)) {
		k.mu.Lock()
		for _, ev := range r.Events {
			kind, id, _ := strings.Cut(strings.TrimPrefix(string(ev.Kv.Key), prefix), "/")
			del := ev.Type == clientv3.EventTypeDelete
			switch kind {
			case "holders":
				if del {
					delete(k.holds, id)
					continue
				}
				if !ev.IsCreate() {
					continue
				}
				u := k.out()
				if !u[id] && len(u)+1 > k.limit {
					k.over = append(k.over, fmt.Sprintf("rev %d: %s granted with %v out, limit %d", ev.Kv.ModRevision, id, u, k.limit))
				}
				k.holds[id] = true
				k.grants = append(k.grants, time.Now())
			case "health":
				var h Health
				if !del && json.Unmarshal(ev.Kv.Value, &h) == nil && !h.InService {
					k.sick[id] = true
				} else {
					delete(k.sick, id)
				}
			case "members":
				k.live[id] = !del
				if !del {
					delete(k.gone, id)
				}
			case "seen":
				if del {
					delete(k.gone, id)
				} else if !k.live[id] {
					k.gone[id] = true
				}
			}
		}
		k.mu.Unlock()
	}
}

// grantsAfter is how many grants were seen after t, and the first.
func (k *checker) grantsAfter(t time.Time) (int, time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n, first := 0, time.Time{}
	for _, g := range k.grants {
		if g.After(t) {
			if n == 0 {
				first = g
			}
			n++
		}
	}
	return n, first
}

// The pool under a fault, judged by a checker: three hosts cycle through
// one slot (take, hold 150 ms, give back) while host b is partitioned
// from etcd for 5 s, past its lease (2 s), in whatever it was doing
// (holding, waiting, idle). No grant takes the pool over its budget (b
// gone counts out until it is back), every host ends with nothing held
// and nobody in line, and the pool moves again soon after the partition
// heals.
func TestPoolPartitionNeverOver(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 60*time.Second)
	ids := []string{"a", "b", "c"}
	proxies := map[string]*etcdtest.Proxy{}
	hosts := map[string]*Pool{}
	for _, id := range ids {
		px := etcdtest.NewProxy(t, strings.TrimPrefix(c.Endpoints()[0], "http://"))
		p, err := Open(Config{Endpoints: []string{px.Endpoint()}, Name: "web", ID: id, Limit: MustLimit("1"), RequestTimeout: time.Second, TTL: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		proxies[id], hosts[id] = px, p
	}
	obs := open(t, c, "web", "observer", "1") // never registers: it only reads
	r0, err := obs.cli.Get(ctx, "nothing")
	if err != nil {
		t.Fatal(err)
	}
	k := newChecker(1)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go k.follow(wctx, obs.cli, "/drainctl/pools/web/", r0.Header.Revision+1)

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, id := range ids {
		p := hosts[id]
		go p.Register(runCtx, 200*time.Millisecond)
		if err := p.PublishHealth(ctx, Health{InService: true}); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for runCtx.Err() == nil {
				actx, cancel := context.WithTimeout(runCtx, 8*time.Second)
				_, err := p.Acquire(actx, Claim{Op: "restart"}, nil)
				cancel()
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				time.Sleep(150 * time.Millisecond)
				// Give back until it is done, whatever etcd does: an
				// operation ends in a definite state.
				for {
					rctx, cancel := context.WithTimeout(context.WithoutCancel(runCtx), time.Second)
					err := p.Release(rctx)
					cancel()
					if err == nil || !errors.Is(err, ErrUnavailable) {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	time.Sleep(3 * time.Second)
	if n, _ := k.grantsAfter(time.Time{}); n < 3 {
		t.Fatalf("only %d grants before the partition: the pool did not move", n)
	}
	t.Log("b partitioned from etcd for 5 s")
	cut := time.Now()
	proxies["b"].Partition(5 * time.Second)
	time.Sleep(5 * time.Second)
	healed := time.Now()
	during, _ := k.grantsAfter(cut)
	k.mu.Lock()
	t.Logf("%d grants while b was cut off; b counted gone at the heal: %v", during, k.gone["b"])
	if !k.gone["b"] {
		t.Error("b's departure was not recorded after 5 s cut off with a 2 s lease: the fault was not the one meant")
	}
	k.mu.Unlock()
	time.Sleep(6 * time.Second)
	stop()
	wg.Wait()

	n, first := k.grantsAfter(healed)
	if n == 0 {
		t.Fatal("no grant in the 6 s after the partition healed: the pool is stuck")
	}
	t.Logf("pool moved again %v after the partition healed (%d grants in 6 s)", first.Sub(healed).Round(time.Millisecond), n)
	time.Sleep(300 * time.Millisecond) // the last events reach the checker
	k.mu.Lock()
	over := k.over
	k.mu.Unlock()
	for _, o := range over {
		t.Error("over budget: " + o)
	}
	st, err := obs.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Holders) != 0 || len(st.Waiters) != 0 {
		t.Errorf("after the run: holders %+v, waiters %+v; want none", st.Holders, st.Waiters)
	}
}
