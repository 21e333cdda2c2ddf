package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/drainctl/drainctl/pkg/internal/etcdtest"
)

// BenchmarkFleet: a pool at fleet scale (1,000, 2,500 and 5,000 members)
// on a 3-member etcd, simulated in this one process. Each member is a
// Pool of its own (its lease, member, seen and health keys, its Register
// loop, its waits in line), but fleetPerClient members share one etcd
// client: a client each would be 15,000 connections at 5,000.
//
// Idle: every member registered, its health published in service, and
// Register's check running at the agent's period (30 s), its health
// published again as often (unchanged: no write), for fleetIdle; reported,
// the revisions etcd made, per hour.
//
// Rolling: fleetOut members go out of service first (their health), then
// every member starts one maintenance at a random moment of the time the
// roll takes at full budget (each host's cron with a random delay), takes
// a slot of the pool's max_unavailable 10%, holds it fleetHold (30 s; the
// FLEET_HOLD environment variable changes it) and releases it. A watcher
// on its own client follows the pool's keys and counts, at every
// revision, the members out (holders, health out, gone): the benchmark
// fails if a grant left more out than the budget. It also times, from
// the events it sees, each unit of budget freed while hosts wait to its
// taking (release to grant). Reported: revisions per maintenance and per
// hour, release to grant p50/p99/max, the most members out at once,
// etcd's database size and CPU, and what one read of the whole pool
// costs (every decision to grant reads it). Figures in
// docs/benchmarks.md.
//
//	go test -run '^$' -bench 'Fleet/members=5000' -benchtime 1x -timeout 30m ./pkg/pool
func BenchmarkFleet(b *testing.B) {
	hold, idle := envDuration(b, "FLEET_HOLD", fleetHold), envDuration(b, "FLEET_IDLE", fleetIdle)
	sizes := []int{1000, 2500, 5000}
	if s := os.Getenv("FLEET_MEMBERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("FLEET_MEMBERS: %v", err)
		}
		sizes = []int{n}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			// etcd's own timers: the tests' fast elections make a
			// leader change at every stall of a machine this loaded.
			c := etcdtest.StartDefaultTimers(b, 3)
			for b.Loop() {
				r := fleet(b, c, n, hold, idle)
				r.report(b)
			}
		})
	}
}

// envDuration is the duration in the environment variable name, else def.
func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	return d
}

const (
	fleetPerClient = 100
	fleetPeriod    = 30 * time.Second // Register's check, as the agent's
	fleetIdle      = 60 * time.Second
	fleetHold      = 30 * time.Second // a maintenance
	fleetOut       = 10               // members out of service during the roll
	fleetStarts    = 50               // agents started a second
	fleetGiveUp    = time.Minute      // past the last start and its hold
	fleetMaxRSS    = 4 << 30          // an etcd member's memory, at most
	fleetLimit     = "10%"
)

type fleetResult struct {
	n, allowed                  int
	hold, spread                time.Duration
	setupFor, idleFor, rollFor  time.Duration
	idleRevs, idleRequests      int64
	rollRevs, rollRequests      int64
	setupCPU, idleCPU, rollCPU  float64 // etcd's CPU seconds, its three members
	readFor, decisionFor        time.Duration
	decisionKeys                int
	readCPU                     float64
	readBytes                   int
	handoffs                    []time.Duration
	maxOut, maxAtGrant, maxHeld int
	maxWaiting, gone, retries   int
	done                        int       // maintenances done
	swollen                     bool      // given up: etcd past fleetMaxRSS
	db                          []Storage // empty, registered, after idle, after the roll
}

func (r fleetResult) report(b *testing.B) {
	hour := func(v float64, d time.Duration) float64 { return v * float64(time.Hour) / float64(d) }
	b.ReportMetric(hour(float64(r.idleRevs), r.idleFor), "revisions/h-idle")
	b.ReportMetric(hour(float64(r.idleRequests)/float64(r.n), r.idleFor), "requests/member/h-idle")
	b.ReportMetric(r.idleCPU/r.idleFor.Seconds(), "etcd-cpu-cores-idle")
	b.ReportMetric(float64(r.done), "maintenances-done")
	b.ReportMetric(float64(b2i(r.swollen)), "given-up-etcd-over-4GB")
	b.ReportMetric(float64(r.rollRevs)/float64(max(1, r.done)), "revisions/maintenance")
	b.ReportMetric(hour(float64(r.rollRevs), r.rollFor), "revisions/h-rolling")
	b.ReportMetric(float64(r.rollRequests)/float64(max(1, r.done)), "requests/maintenance")
	b.ReportMetric(r.rollCPU/r.rollFor.Seconds(), "etcd-cpu-cores-rolling")
	b.ReportMetric(r.rollFor.Seconds(), "s-roll")
	b.ReportMetric(float64(len(r.handoffs)), "handoffs")
	b.ReportMetric(ms(percentile(r.handoffs, 50)), "ms-release-to-grant-p50")
	b.ReportMetric(ms(percentile(r.handoffs, 99)), "ms-release-to-grant-p99")
	b.ReportMetric(ms(percentile(r.handoffs, 100)), "ms-release-to-grant-max")
	b.ReportMetric(float64(r.allowed), "budget")
	b.ReportMetric(float64(r.maxAtGrant), "max-unavailable-at-a-grant")
	b.ReportMetric(float64(r.maxOut), "max-unavailable")
	b.ReportMetric(float64(r.maxHeld), "max-held")
	b.ReportMetric(float64(r.maxWaiting), "max-waiting")
	b.ReportMetric(float64(r.gone), "leases-lost-rolling")
	b.ReportMetric(float64(r.retries), "acquires-retried")
	b.ReportMetric(ms(r.readFor), "ms-read-pool")
	b.ReportMetric(ms(r.decisionFor), "ms-decision-read-midroll")
	b.ReportMetric(float64(r.decisionKeys), "keys-decision-read-midroll")
	b.ReportMetric(float64(r.readBytes)/1e3, "kB-pool")
	b.ReportMetric(r.readCPU*1000, "etcd-cpu-ms/read-pool")
	b.ReportMetric(r.setupFor.Seconds(), "s-setup")
	b.ReportMetric(r.setupCPU, "etcd-cpu-s-setup")
	for i, name := range []string{"empty", "registered", "idle", "rolled"} {
		if i < len(r.db) {
			b.ReportMetric(float64(r.db[i].DBSize)/1e6, "MB-db-"+name)
			b.ReportMetric(float64(r.db[i].DBSizeInUse)/1e6, "MB-db-in-use-"+name)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentile is the q-th percentile of ds (q 100: the largest).
func percentile(ds []time.Duration, q int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*q/100)]
}

// say tells how the benchmark goes, as it goes (it runs for minutes).
func say(n int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s fleet %d: %s\n", time.Now().Format("15:04:05"), n, fmt.Sprintf(format, args...))
}

// fleetPool is a Pool on a shared client, with Open's defaults: a test
// may run thousands of members in one process.
func fleetPool(cli *clientv3.Client, endpoints []string, name, id string) *Pool {
	cfg := Config{Endpoints: endpoints, Name: name, ID: id, Limit: MustLimit(fleetLimit), RequestTimeout: 5 * time.Second, TTL: 15 * time.Second}
	return &Pool{cfg: cfg, cli: cli, prefix: "/drainctl/pools/" + name + "/"}
}

// fleetClients opens the shared clients, as Open does, counting their
// requests (unary calls and streams opened) into requests, and the unary
// calls not answered yet into inflight.
func fleetClients(b *testing.B, c *etcdtest.Cluster, n int, requests, inflight *int64) []*clientv3.Client {
	counter := grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		atomic.AddInt64(requests, 1)
		atomic.AddInt64(inflight, 1)
		defer atomic.AddInt64(inflight, -1)
		return invoker(ctx, method, req, reply, cc, opts...)
	})
	streams := grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		atomic.AddInt64(requests, 1)
		return streamer(ctx, desc, cc, method, opts...)
	})
	var clis []*clientv3.Client
	for range (n + fleetPerClient - 1) / fleetPerClient {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints: c.Endpoints(), Logger: zap.NewNop(), DialTimeout: 5 * time.Second,
			DialKeepAliveTime: 5 * time.Second, DialKeepAliveTimeout: 5 * time.Second,
			DialOptions: []grpc.DialOption{counter, streams, grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: 5 * time.Second,
			})},
		})
		if err != nil {
			b.Fatal(err)
		}
		clis = append(clis, cli)
	}
	return clis
}

// parallel runs f for each pool, width at a time.
func parallel(ps []*Pool, width int, f func(*Pool)) {
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	for _, p := range ps {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(p)
		})
	}
	wg.Wait()
}

func fleet(b *testing.B, c *etcdtest.Cluster, n int, hold, idle time.Duration) fleetResult {
	r := fleetResult{n: n, hold: hold}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	var requests, inflight int64
	clis := fleetClients(b, c, n, &requests, &inflight)
	defer func() {
		for _, cli := range clis {
			cli.Close()
		}
	}()
	name := fmt.Sprintf("fleet%d", time.Now().UnixNano())
	ps := make([]*Pool, n)
	for i := range ps {
		ps[i] = fleetPool(clis[i%len(clis)], c.Endpoints(), name, fmt.Sprintf("h%05d", i))
	}
	admin := ps[0]
	rev := func() int64 {
		resp, err := admin.cli.Get(ctx, "nothing")
		if err != nil {
			b.Fatal(err)
		}
		return resp.Header.Revision
	}
	storage := func() {
		s, err := admin.Storage(ctx)
		for try := 0; err != nil && try < 3; try++ {
			s, err = admin.Storage(ctx) // the machine is shared: a late answer is no failure
		}
		if err != nil {
			b.Fatal(err)
		}
		r.db = append(r.db, s)
		say(n, "etcd's database %.1f MB (%.1f MB in use), revision %d", float64(s.DBSize)/1e6, float64(s.DBSizeInUse)/1e6, s.Revision)
	}
	cpu := etcdCPU(b, c)
	storage()

	// Every member joins and says it is in service.
	start, cpu0 := time.Now(), cpu()
	if _, _, err := admin.Seed(ctx); err != nil {
		b.Fatal(err)
	}
	parallel(ps, 64, func(p *Pool) {
		if err := p.register(ctx); err != nil {
			b.Error(err)
		}
		if err := p.PublishHealth(ctx, Health{InService: true}); err != nil {
			b.Error(err)
		}
	})
	if b.Failed() {
		b.FailNow()
	}
	say(n, "registered in %v", time.Since(start).Round(time.Second))
	rctx, stopMembers := context.WithCancel(ctx)
	defer stopMembers()
	// The agents start over a while, fleetStarts a second, as a fleet's
	// agents come up (each reads one key at its start, its successor in
	// the ring of departures: an earlier form read every member, the
	// square of the pool in keys when all started at once).
	for i, p := range ps {
		if i%fleetStarts == fleetStarts-1 {
			time.Sleep(time.Second)
		}
		go p.Register(rctx, fleetPeriod)
		go func() {
			for rctx.Err() == nil {
				p.PublishHealth(rctx, Health{InService: true}) //nolint:errcheck // unchanged: no request at all
				sleep(rctx, fleetPeriod)
			}
		}()
	}
	// Until each member's first check and its read of the members are
	// answered: 3 s in a row with hardly a request in flight.
	for quiet, end := 0, time.Now().Add(5*time.Minute); quiet < 3; time.Sleep(time.Second) {
		if atomic.LoadInt64(&inflight) > int64(n/100) {
			quiet = 0
		} else {
			quiet++
		}
		if time.Now().After(end) {
			b.Fatalf("%d requests still unanswered after 5 min", atomic.LoadInt64(&inflight))
		}
	}
	r.setupFor, r.setupCPU = time.Since(start), cpu()-cpu0
	say(n, "members running in %v", r.setupFor.Round(time.Second))
	storage()
	r.readCost(ctx, b, admin, cpu)

	// Idle.
	rev0, req0, cpu0 := rev(), atomic.LoadInt64(&requests), cpu()
	start = time.Now()
	sleep(ctx, idle)
	r.idleFor = time.Since(start)
	r.idleRevs, r.idleRequests, r.idleCPU = rev()-rev0, atomic.LoadInt64(&requests)-req0, cpu()-cpu0
	say(n, "idle %v: %d revisions, %d requests", r.idleFor.Round(time.Second), r.idleRevs, r.idleRequests)
	storage()

	// The roll.
	r.roll(ctx, b, c, ps, rev, &requests, cpu)
	storage()
	return r
}

// readCost times one read of the whole pool (what each decision to grant
// reads), and its size.
func (r *fleetResult) readCost(ctx context.Context, b *testing.B, p *Pool, cpu func() float64) {
	resp, err := p.cli.Get(ctx, p.prefix, clientv3.WithPrefix())
	if err != nil {
		b.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		r.readBytes += len(kv.Key) + len(kv.Value)
	}
	const reads = 20
	start, cpu0 := time.Now(), cpu()
	for range reads {
		_, err := p.read(ctx)
		for try := 0; err != nil && try < 3; try++ {
			_, err = p.read(ctx) // the machine is shared: a late answer is no failure
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	r.readFor, r.readCPU = time.Since(start)/reads, (cpu()-cpu0)/reads
	say(r.n, "one read of the pool: %d keys, %d kB, %v, etcd's CPU %.1f ms", len(resp.Kvs), r.readBytes/1000, r.readFor.Round(time.Millisecond), r.readCPU*1000)
}

// decisionCost times the decision's read (readBudget) in the middle of
// the roll, when the budget is in use: what it reads then is the
// holders, the members out of service and the line.
func (r *fleetResult) decisionCost(ctx context.Context, p *Pool) {
	const reads = 5
	start := time.Now()
	for range reads {
		st, err := p.readBudget(ctx)
		if err != nil {
			say(r.n, "decision's read: %v", err)
			return
		}
		r.decisionKeys = max(r.decisionKeys, len(st.Holders)+len(st.Members)+len(st.Waiters))
	}
	r.decisionFor = time.Since(start) / reads
	say(r.n, "one decision's read mid-roll: %d keys, %v", r.decisionKeys, r.decisionFor.Round(time.Millisecond))
}

// roll takes every member out once, each starting at a random moment of
// the time the roll takes at full budget, and checks the budget with a
// watcher.
func (r *fleetResult) roll(ctx context.Context, b *testing.B, c *etcdtest.Cluster, ps []*Pool, rev func() int64, requests *int64, cpu func() float64) {
	out := map[int]bool{}
	for i := range fleetOut {
		out[i*r.n/fleetOut+r.n/(2*fleetOut)] = true
	}
	for i := range out {
		if err := ps[i].PublishHealth(ctx, Health{Why: "bench: out of service"}); err != nil {
			b.Fatal(err)
		}
	}
	w, err := watchBudget(ctx, ps[0])
	if err != nil {
		b.Fatal(err)
	}
	r.allowed = w.allowed()
	r.spread = time.Duration(float64(r.hold) * float64(r.n) / float64(r.allowed))
	say(r.n, "rolling: budget %d, %v each, starts spread over %v", r.allowed, r.hold, r.spread)
	rng := rand.New(rand.NewPCG(uint64(r.n), 26))
	var retries, done int64
	rev0, req0, cpu0 := rev(), atomic.LoadInt64(requests), cpu()
	start := time.Now()
	// A roll that does not end a while after the last start is given up
	// (an overloaded etcd): what was done is reported, and the budget
	// checked all the same.
	rctx, giveUp := context.WithTimeout(ctx, r.spread+r.hold+fleetGiveUp)
	defer giveUp()
	// So is one whose etcd swells past fleetMaxRSS (an overloaded etcd
	// buffering its slow watchers' events): at 5,000 members each of the
	// three grew to 11 GB and took the machine's memory.
	var swollen atomic.Bool
	go func() {
		for rctx.Err() == nil {
			if rss := etcdRSS(c); rss > fleetMaxRSS {
				say(r.n, "etcd holds %d MB: the roll is given up", rss>>20)
				swollen.Store(true)
				giveUp()
			}
			sleep(rctx, 2*time.Second)
		}
	}()
	var wg sync.WaitGroup
	wg.Go(func() {
		sleep(rctx, r.spread/2)
		r.decisionCost(rctx, ps[0])
	})
	// What the waiters do, every 10 s: where etcd's work comes from.
	var tmu sync.Mutex
	traces := map[string]int{}
	trace = func(what string) { tmu.Lock(); traces[what]++; tmu.Unlock() }
	defer func() { trace = nil }()
	grants := 0
	beforeGrant = func() { tmu.Lock(); grants++; tmu.Unlock() }
	defer func() { beforeGrant = nil }()
	wg.Go(func() {
		for rctx.Err() == nil {
			sleep(rctx, 10*time.Second)
			tmu.Lock()
			say(r.n, "last 10 s: %d grants tried, %v; %d waiting, %d out", grants, traces, w.nowWaiting.Load(), w.nowOut.Load())
			clear(traces)
			grants = 0
			tmu.Unlock()
		}
	})
	for i, p := range ps {
		delay := time.Duration(rng.Int64N(int64(r.spread)))
		wg.Go(func() {
			sleep(rctx, delay)
			for {
				_, err := p.Acquire(rctx, Claim{Op: "bench"}, nil)
				if err == nil {
					break
				}
				if rctx.Err() != nil {
					return
				}
				if !errors.Is(err, ErrUnavailable) {
					b.Error(err)
					return
				}
				// The agent says so and its maintenance fails; its cron
				// tries again later. Here, a second later.
				if atomic.AddInt64(&retries, 1)%100 == 1 {
					say(r.n, "acquire: %v", err)
				}
				sleep(rctx, time.Second)
			}
			// As an agent's: its server withdrawn, its health says so;
			// restored, it says in service, then the slot is given back.
			health := func(h Health) {
				if !out[i] {
					for p.PublishHealth(ctx, h) != nil && ctx.Err() == nil {
						time.Sleep(100 * time.Millisecond)
					}
				}
			}
			health(Health{Why: "bench: in maintenance"})
			time.Sleep(r.hold)
			health(Health{InService: true})
			for p.Release(ctx) != nil && ctx.Err() == nil {
				time.Sleep(100 * time.Millisecond)
			}
			if d := atomic.AddInt64(&done, 1); d%int64(r.n/10) == 0 {
				say(r.n, "%d done, %d retried", d, atomic.LoadInt64(&retries))
			}
		})
	}
	wg.Wait()
	r.rollFor = time.Since(start)
	r.rollRevs, r.rollRequests, r.rollCPU = rev()-rev0, atomic.LoadInt64(requests)-req0, cpu()-cpu0
	r.retries, r.done, r.swollen = int(retries), int(done), swollen.Load()
	say(r.n, "rolled in %v: %d of %d done, %d revisions; etcd holds %d MB", r.rollFor.Round(time.Second), done, r.n, r.rollRevs, etcdRSS(c)>>20)
	for i := range out {
		if err := ps[i].PublishHealth(ctx, Health{InService: true}); err != nil {
			b.Fatal(err)
		}
	}
	over := w.stop(rev())
	r.maxOut, r.maxAtGrant, r.maxHeld, r.maxWaiting, r.gone, r.handoffs = w.maxOut, w.maxAtGrant, w.maxHeld, w.maxWaiting, w.gone, w.handoffs
	if b.Failed() {
		b.FailNow()
	}
	if over != "" {
		b.Fatalf("more members out than the budget: %s", over)
	}
}

// budgetWatch follows a pool's keys on its own client and counts, at
// every revision, the members out (holders, health out, gone), and times
// each unit of budget freed while hosts wait to the grant that takes it.
type budgetWatch struct {
	cli     *clientv3.Client
	prefix  string
	limit   Limit
	members map[string]*fleetMember
	size    int // members known (any key), and holders that are none
	count   int // of those, out
	held    int
	waiting int
	// freed are the moments units of budget were freed while hosts
	// waited, not taken yet, oldest first.
	freed                                         []time.Time
	handoffs                                      []time.Duration
	maxOut, maxAtGrant, maxHeld, maxWaiting, gone int
	over                                          string
	rev                                           atomic.Int64
	nowWaiting, nowOut                            atomic.Int64 // for the progress lines
	done                                          chan struct{}
	cancel                                        context.CancelFunc
}

type fleetMember struct {
	live, seen, holder, health, outOfService, goneRecord, waiting bool
}

func (m *fleetMember) known() bool { return m.live || m.seen || m.health || m.holder }

// out is State.Unavailable's rule.
func (m *fleetMember) out() bool {
	return m.holder || (m.health && m.outOfService && (!m.goneRecord || !m.live)) || (!m.live && (m.seen || m.health))
}

func watchBudget(ctx context.Context, p *Pool) (*budgetWatch, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: p.cfg.Endpoints, Logger: zap.NewNop()})
	if err != nil {
		return nil, err
	}
	resp, err := cli.Get(ctx, p.prefix, clientv3.WithPrefix())
	if err != nil {
		cli.Close()
		return nil, err
	}
	w := &budgetWatch{cli: cli, prefix: p.prefix, members: map[string]*fleetMember{}, done: make(chan struct{})}
	for _, kv := range resp.Kvs {
		w.apply(string(kv.Key), kv.Value, false)
	}
	if w.limit.n == 0 {
		cli.Close()
		return nil, errors.New("the pool has no settings")
	}
	w.maxOut = w.count
	wctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	go func() {
		defer close(w.done)
		for r := range cli.Watch(wctx, p.prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
			was, grant := w.count, false
			for i, ev := range r.Events {
				grant = w.apply(string(ev.Kv.Key), ev.Kv.Value, ev.Type == clientv3.EventTypeDelete) || grant
				// One transaction's events share a revision: counted
				// once all of it is applied.
				if i == len(r.Events)-1 || r.Events[i+1].Kv.ModRevision != ev.Kv.ModRevision {
					w.check(was, grant, time.Now())
					was, grant = w.count, false
				}
			}
			w.rev.Store(r.Header.Revision)
		}
	}()
	return w, nil
}

func (w *budgetWatch) allowed() int { return w.limit.Allowed(w.size) }

// apply counts one key's change; true for a slot granted.
func (w *budgetWatch) apply(key string, v []byte, del bool) bool {
	kind, id, _ := strings.Cut(strings.TrimPrefix(key, w.prefix), "/")
	if kind == "settings" {
		if s, err := parseSettings(v); err == nil && !del {
			w.limit = s.MaxUnavailable
		}
		return false
	}
	m := w.members[id]
	if m == nil {
		m = &fleetMember{}
		w.members[id] = m
	}
	known, out, holder, waiting := m.known(), m.out(), m.holder, m.waiting
	switch kind {
	case "members":
		if m.live && del {
			w.gone++
		}
		m.live = !del
	case "seen":
		m.seen = !del
	case "holders":
		m.holder = !del
	case "waiters":
		m.waiting = !del
	case "health":
		var h Health
		m.health = !del && json.Unmarshal(v, &h) == nil
		m.outOfService, m.goneRecord = !h.InService, h.Gone
	default:
		return false
	}
	w.size += b2i(m.known()) - b2i(known)
	w.count += b2i(m.out()) - b2i(out)
	w.held += b2i(m.holder) - b2i(holder)
	w.waiting += b2i(m.waiting) - b2i(waiting)
	return m.holder && !holder
}

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}

// check looks at the pool after one revision: was members were out
// before it; grant, a slot was granted in it.
func (w *budgetWatch) check(was int, grant bool, now time.Time) {
	w.nowWaiting.Store(int64(w.waiting))
	w.nowOut.Store(int64(w.count))
	w.maxOut, w.maxHeld, w.maxWaiting = max(w.maxOut, w.count), max(w.maxHeld, w.held), max(w.maxWaiting, w.waiting)
	if grant {
		w.maxAtGrant = max(w.maxAtGrant, w.count)
		if w.count > w.allowed() && w.over == "" {
			w.over = fmt.Sprintf("a grant left %d out (%d holding a slot) for a budget of %d", w.count, w.held, w.allowed())
		}
		for range w.count - was {
			if len(w.freed) == 0 {
				break
			}
			w.handoffs = append(w.handoffs, now.Sub(w.freed[0]))
			w.freed = w.freed[1:]
		}
	}
	if w.waiting == 0 {
		w.freed = w.freed[:0] // budget free, and nobody waits for it
		return
	}
	for range was - w.count {
		w.freed = append(w.freed, now)
	}
	// A unit freed and taken by something else than a grant (a member
	// gone, or out of service): the latest freed is the one taken.
	w.freed = w.freed[:min(len(w.freed), max(0, w.allowed()-w.count))]
}

// stop ends the watch once it saw revision rev, and says how the budget
// was exceeded by a grant ("": never).
func (w *budgetWatch) stop(rev int64) string {
	for end := time.Now().Add(time.Minute); w.rev.Load() < rev && time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
	}
	w.cancel()
	<-w.done
	w.cli.Close()
	if w.rev.Load() < rev {
		return fmt.Sprintf("the watcher saw revision %d, not %d", w.rev.Load(), rev)
	}
	return w.over
}

// etcdProcs are the /proc directories of the cluster's etcd processes
// (found by their client URL on their command line).
func etcdProcs(c *etcdtest.Cluster) []string {
	var procs []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmd, err := os.ReadFile(d + "/cmdline")
		if err != nil || !strings.HasPrefix(string(cmd), "etcd\x00") {
			continue
		}
		for _, ep := range c.Endpoints() {
			if strings.Contains(string(cmd), "\x00"+ep+"\x00") {
				procs = append(procs, d)
				break
			}
		}
	}
	return procs
}

// etcdCPU returns what reads the CPU seconds the cluster's etcd processes
// used so far.
func etcdCPU(b *testing.B, c *etcdtest.Cluster) func() float64 {
	procs := etcdProcs(c)
	if len(procs) != len(c.Members) {
		b.Logf("etcd's processes: found %d of %d; its CPU is not counted", len(procs), len(c.Members))
		return func() float64 { return 0 }
	}
	return func() float64 {
		var ticks float64
		for _, d := range procs {
			raw, err := os.ReadFile(d + "/stat")
			if err != nil {
				continue
			}
			// After the command's name in parentheses: the state is
			// field 3, utime and stime fields 14 and 15.
			f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
			for _, i := range []int{14 - 3, 15 - 3} {
				v, _ := strconv.ParseFloat(f[i], 64)
				ticks += v
			}
		}
		return ticks / 100 // USER_HZ
	}
}

// etcdRSS is the most memory (resident, in bytes) one of the cluster's
// etcd processes holds now.
func etcdRSS(c *etcdtest.Cluster) int64 {
	var most int64
	for _, d := range etcdProcs(c) {
		raw, err := os.ReadFile(d + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				most = max(most, kb<<10)
			}
		}
	}
	return most
}
