package health

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/pool"
)

// steppedProber gives the watch one probe result at a time: each Probe
// says it was asked, then waits for the test's result. A probe asked is
// also the sign that the round before it (judge and publish) is over,
// so the test needs no sleeps.
type steppedProber struct {
	asked   chan struct{}
	results chan error
}

func (p steppedProber) Probe(ctx context.Context) error {
	select {
	case p.asked <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-p.results:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fakePool records what it is asked to publish, and fails while err is set.
type fakePool struct {
	mu    sync.Mutex
	calls []pool.Health
	err   error
}

func (f *fakePool) PublishHealth(_ context.Context, h pool.Health) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, h)
	return f.err
}

func (f *fakePool) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// taken returns the calls since the last taken.
func (f *fakePool) taken() []pool.Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

type fakeLBs struct {
	mu   sync.Mutex
	down []lbview.Down
}

func (f *fakeLBs) Down(time.Time) []lbview.Down {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down
}

func (f *fakeLBs) set(d ...lbview.Down) {
	f.mu.Lock()
	f.down = d
	f.mu.Unlock()
}

type fakePhase struct {
	mu  sync.Mutex
	in  bool
	why string
}

func (f *fakePhase) get() (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.in, f.why
}

func (f *fakePhase) set(in bool, why string) {
	f.mu.Lock()
	f.in, f.why = in, why
	f.mu.Unlock()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The watch publishes nothing until its first judgement is complete
// (rise probes passed: a restarted agent never says "out" of a healthy
// server), then its judgement every period, whatever it is — the pool
// writes only changes; the load balancers, the engine's phase and the
// readiness check each take the host out, and an etcd that fails is
// told once and tried again the next period.
func TestWatch(t *testing.T) {
	probe := steppedProber{asked: make(chan struct{}), results: make(chan error)}
	pub, lbs, phase := &fakePool{}, &fakeLBs{}, &fakePhase{in: true}
	var logs syncBuffer
	w := &Watch{Phase: phase.get, Ready: probe, LoadBalancers: lbs, Pool: pub, Fall: 2, Rise: 2,
		Period: time.Millisecond, FastPeriod: time.Millisecond, JudgeEvery: time.Hour, Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	<-probe.asked
	// round gives one probe result and waits for the round to end.
	round := func(err error) []pool.Health {
		t.Helper()
		probe.results <- err
		<-probe.asked
		return pub.taken()
	}
	expect := func(what string, got []pool.Health, want ...pool.Health) {
		t.Helper()
		if len(got) != len(want) || (len(want) > 0 && got[0] != want[0]) {
			t.Fatalf("%s: published %+v, want %+v", what, got, want)
		}
	}
	inService := pool.Health{InService: true}
	refused := errors.New(`Get "http://127.0.0.1:80/": connection refused`)
	// Even with a load balancer refusing, nothing before the readiness
	// check decided.
	lbs.set(refusing)
	expect("first probe passed", round(nil))
	lbs.set()
	expect("rise probes passed", round(nil), inService)
	expect("the same again", round(nil), inService)

	lbs.set(refusing)
	expect("a load balancer refuses", round(nil), pool.Health{Why: "load balancer 10.0.0.2: checks on port 81 refused"})
	lbs.set()
	expect("it accepts again", round(nil), inService)

	expect("one failed probe", round(refused), inService)
	webDown := pool.Health{Why: "web server not answering: " + refused.Error()}
	expect("fall failed probes", round(refused), webDown)

	phase.set(false, "in maintenance (restart)")
	expect("a restart", round(refused), pool.Health{Why: "in maintenance (restart)"})
	phase.set(true, "")
	expect("restored, the web server still failing its probes", round(refused), webDown)
	expect("one good probe", round(nil), webDown)
	expect("rise good probes", round(nil), inService)

	// etcd fails: tried every period, told once at warn.
	pub.fail(errors.New("etcd unavailable"))
	for range 3 {
		expect("etcd failing", round(nil), inService)
	}
	pub.fail(nil)
	expect("etcd back", round(nil), inService)
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings for 3 failures of etcd in a row, want 1:\n%s", n, logs.String())
	}
	for _, want := range []string{
		`msg="health: in service"`,
		`msg="health: out of service: load balancer 10.0.0.2: checks on port 81 refused"`,
		`msg="health: out of service: web server not answering: Get \"http://127.0.0.1:80/\": connection refused"`,
		`msg="health: out of service: in maintenance (restart)"`,
		`msg="health: published to the pool again"`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
	// A stop publishes nothing: the probe cut short says nothing.
	cancel()
	<-done
	expect("stopped", pub.taken())
}

// A probe whose failures come first makes a complete judgement after
// fall of them: the host is published out, not left unsaid.
func TestWatchFailingFromTheStart(t *testing.T) {
	probe := steppedProber{asked: make(chan struct{}), results: make(chan error)}
	pub := &fakePool{}
	w := &Watch{Phase: func() (bool, string) { return true, "" }, Ready: probe, Pool: pub, Period: time.Millisecond, FastPeriod: time.Millisecond, JudgeEvery: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	<-probe.asked
	for range 2 {
		probe.results <- errors.New("status 503, want 200-399")
		<-probe.asked
	}
	got := pub.taken()
	if len(got) != 1 || got[0] != (pool.Health{Why: "web server not answering: status 503, want 200-399"}) {
		t.Fatalf("published %+v after 2 failed probes (the default fall)", got)
	}
}

// Between probes the judgement is made again from what is in memory:
// a maintenance, or a load balancer that takes the host out, reaches
// the pool without waiting for the next probe (a Period away).
func TestWatchJudgesBetweenProbes(t *testing.T) {
	probe := steppedProber{asked: make(chan struct{}), results: make(chan error)}
	pub, lbs, phase := &fakePool{}, &fakeLBs{}, &fakePhase{in: true}
	w := &Watch{Phase: phase.get, Ready: probe, LoadBalancers: lbs, Pool: pub, Fall: 2, Rise: 2,
		Period: time.Hour, FastPeriod: time.Millisecond, JudgeEvery: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	for range 2 {
		<-probe.asked
		probe.results <- nil
	}
	// The next probe is an hour away: from now on only the judge runs.
	waitPublished := func(want pool.Health) {
		t.Helper()
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			got := pub.taken()
			if len(got) > 0 && got[len(got)-1] == want {
				return
			}
			if time.Now().After(end) {
				t.Fatalf("after 10 s: %+v not published", want)
			}
		}
	}
	waitPublished(pool.Health{InService: true})
	phase.set(false, "in maintenance (held)")
	waitPublished(pool.Health{Why: "in maintenance (held)"})
	phase.set(true, "")
	lbs.set(unanswered)
	waitPublished(pool.Health{Why: "load balancer 10.0.0.3: checks on port 81 unanswered"})
	lbs.set()
	waitPublished(pool.Health{InService: true})
}
