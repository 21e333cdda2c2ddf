package lab

// The pool, end to end: four app servers with their agents behind real
// HAProxy, a real 3-member etcd cluster (each member in its own
// namespace), the e2e load, and every host starting its patch at the
// same moment, as cron does at 03:00.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/haproxy"
)

// downWatch polls HAProxy every 10 ms and keeps the most primary entries
// seen DOWN at once (any status but UP: DOWN, going down, coming up).
type downWatch struct {
	peak atomic.Int64
	stop func()
	done chan struct{}
}

func watchDown(t *testing.T, l *Lab) *downWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &downWatch{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		for ctx.Err() == nil {
			if st, err := haproxy.ShowStat(l.stats); err == nil {
				n := int64(0)
				for _, w := range l.Webs {
					if s := st["app/"+w.Name]["status"]; s != "UP" {
						n++
					}
				}
				d.peak.Store(max(d.peak.Load(), n))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { d.stop(); <-d.done })
	return d
}

// patch is the cron job's command: it stops the web server for 3 s, as a
// reboot or a package's restart would.
func patch(w *Web) string {
	// -k stop returns before the old Apache is gone: start only once its
	// pid file is (else it says "already running" and exits).
	pid := w.dir + "/apache.pid"
	return fmt.Sprintf("apache2 -f %[1]s -k stop; for i in $(seq 100); do [ -e %[2]s ] || break; sleep 0.1; done; sleep 3; apache2 -f %[1]s -k start", w.conf, pid)
}

// runAll starts `maintenance run` on every host at once and waits for all.
func runAll(t *testing.T, ctx context.Context, l *Lab, midway func()) time.Duration {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	for _, w := range l.Webs {
		wg.Go(func() {
			// Bounded: a host that cannot get its slot gives up (busy).
			out, code, err := w.DrainctlIn(ctx, "maintenance", "run", "--reason", "cron 03:00", "--pool-wait", "3m", "--", "sh", "-c", patch(w))
			if err != nil || code != 0 {
				t.Errorf("maintenance run on %s: exit %d %v\n%s", w.Name, code, err, out)
			}
		})
	}
	if midway != nil {
		time.Sleep(4 * time.Second)
		midway()
	}
	wg.Wait()
	return time.Since(start)
}

// TestE2EPoolCron: four hosts run their patch at the same minute, the
// patch stopping the web server for 3 s. With max_unavailable 1 HAProxy
// never shows more than one primary DOWN, every run finishes and no
// request fails — with one etcd member killed -9 midway. With
// max_unavailable 2: never more than two, two at a time. Without a pool
// (the control): more than one out at once, and requests fail. The users
// of a server whose web server stops lose their session there (moved),
// as a reboot's do: reported, not asserted.
func TestE2EPoolCron(t *testing.T) {
	for _, c := range []struct {
		name  string
		pool  *PoolOptions
		limit int64
	}{{"max_unavailable=1", &PoolOptions{MaxUnavailable: "1"}, 1}, {"max_unavailable=2", &PoolOptions{MaxUnavailable: "2"}, 2}, {"no-pool", nil, 0}} {
		t.Run(c.name, func(t *testing.T) {
			l := startLabWith(t, Options{Backend: "nftables", Pattern: Recommended, Servers: 4, Pool: c.pool})
			ctx := context.Background()
			run := users(t, l)
			time.Sleep(time.Second)
			down := watchDown(t, l)
			var midway func()
			if c.limit == 1 {
				midway = func() { t.Log("etcd0 killed -9"); l.KillEtcd(0) }
			}
			took := runAll(t, ctx, l, midway)
			down.stop()
			<-down.done
			for _, w := range l.Webs {
				backInService(t, ctx, l, w)
			}
			time.Sleep(time.Second)
			res := run.Stop()
			report(t, res)
			t.Logf("%s: 4 runs in %v, at most %d primaries DOWN at once, %d of %d requests failed, %d of 20 users moved",
				c.name, took.Round(100*time.Millisecond), down.peak.Load(), res.Failed, res.Requests, res.Moved)
			if c.pool == nil {
				if down.peak.Load() < 2 {
					t.Fatalf("without a pool at most %d primary was DOWN at once: the runs did not overlap, the control proves nothing", down.peak.Load())
				}
				return
			}
			if down.peak.Load() != c.limit {
				t.Errorf("at most %d primaries DOWN at once, want %d", down.peak.Load(), c.limit)
			}
			if res.Failed != 0 {
				t.Errorf("%d failed requests, want 0", res.Failed)
			}
			ps := poolStatus(t, ctx, l.Webs[0])
			if len(ps.Holders) != 0 || len(ps.Waiters) != 0 || len(ps.Members) != 4 {
				t.Errorf("pool after the runs: %+v", ps)
			}
		})
	}
}

func poolStatus(t *testing.T, ctx context.Context, w *Web) apitype.PoolStatus {
	t.Helper()
	out, code, err := w.Drainctl(ctx, "pool", "status", "--json")
	var ps apitype.PoolStatus
	if err != nil || code != 0 || json.Unmarshal([]byte(out), &ps) != nil {
		t.Fatalf("pool status on %s: exit %d %v\n%s", w.Name, code, err, out)
	}
	return ps
}

func mustDrainctl(t *testing.T, ctx context.Context, w *Web, want int, args ...string) string {
	t.Helper()
	out, code, err := w.Drainctl(ctx, args...)
	if err != nil || code != want {
		t.Fatalf("drainctl %s on %s: exit %d (want %d) %v\n%s", strings.Join(args, " "), w.Name, code, want, err, out)
	}
	return out
}

// Exit codes of the pool (README's table).
const (
	exitPoolBusy        = 11
	exitPoolUnavailable = 12
)

// TestE2EPoolFailures: two pools on one etcd, each of two hosts, max 1.
//   - the pools do not block each other; a host of a full pool waits and
//     gives up after --pool-wait (busy, nothing changed);
//   - an agent killed -9 while holding keeps its slot; started again it
//     is still held, and its exit gives the slot back;
//   - pause stops new grants, resume lets the line on;
//   - etcd gone: enter is refused (its exit code, still in service), a
//     held server still comes back, its release pending until etcd
//     returns.
func TestE2EPoolFailures(t *testing.T) {
	l := startLabWith(t, Options{Backend: "nftables", Pattern: Recommended, Servers: 4,
		Pool: &PoolOptions{Names: []string{"a", "a", "b", "b"}}})
	ctx := context.Background()
	run := users(t, l)
	time.Sleep(time.Second)
	w1, w2, w3, w4 := l.Webs[0], l.Webs[1], l.Webs[2], l.Webs[3]

	mustDrainctl(t, ctx, w1, 0, "maintenance", "enter", "--reason", "pool a")
	mustDrainctl(t, ctx, w3, 0, "maintenance", "enter", "--reason", "pool b, at the same time")
	out := mustDrainctl(t, ctx, w2, exitPoolBusy, "maintenance", "enter", "--reason", "a is full", "--pool-wait", "1s")
	if !strings.Contains(out, "web1") || !strings.Contains(out, "pool a") {
		t.Errorf("the waiter was not told who holds the slot:\n%s", out)
	}
	if s, _ := l.Status(w2.Name); s != "UP" {
		t.Fatalf("web2 is %s after a refused enter", s)
	}

	// web1's agent dies holding its slot; started again it still holds it.
	w1.KillAgent()
	if err := l.StartAgent(w1); err != nil {
		t.Fatal(err)
	}
	ps := poolStatus(t, ctx, w2)
	if len(ps.Holders) != 1 || ps.Holders[0].ID != "web1" {
		t.Fatalf("after kill -9: holders %+v", ps.Holders)
	}
	mustDrainctl(t, ctx, w1, 0, "maintenance", "exit")
	mustDrainctl(t, ctx, w3, 0, "maintenance", "exit")

	// Pause pool b: web4 waits; resume lets it in.
	mustDrainctl(t, ctx, w4, 0, "pool", "pause", "--reason", "bad patch")
	done := make(chan string, 1)
	go func() {
		out, code, _ := w4.Drainctl(ctx, "maintenance", "enter", "--reason", "after resume")
		done <- fmt.Sprintf("exit %d\n%s", code, out)
	}()
	select {
	case out := <-done:
		t.Fatalf("granted while paused: %s", out)
	case <-time.After(2 * time.Second):
	}
	mustDrainctl(t, ctx, w3, 0, "pool", "resume")
	if out := <-done; !strings.HasPrefix(out, "exit 0") {
		t.Fatalf("enter after resume: %s", out)
	}

	// etcd gone: web2 cannot go out; web4, out, still comes back.
	for i := range l.etcd {
		l.KillEtcd(i)
	}
	out = mustDrainctl(t, ctx, w2, exitPoolUnavailable, "maintenance", "enter", "--reason", "etcd down")
	if !strings.Contains(out, "198.19.0.10:2379") {
		t.Errorf("the error does not name the endpoints:\n%s", out)
	}
	if s, _ := l.Status(w2.Name); s != "UP" {
		t.Fatalf("web2 is %s after a refused enter", s)
	}
	out = mustDrainctl(t, ctx, w4, 0, "maintenance", "exit")
	if !strings.Contains(out, "release pending") {
		t.Errorf("exit with etcd down does not say the release is pending:\n%s", out)
	}
	backInService(t, ctx, l, w4)
	for i := range l.etcd {
		if err := l.StartEtcd(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.WaitEtcd(ctx); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(30 * time.Second); ; {
		ps := poolStatus(t, ctx, w4)
		if len(ps.Holders) == 0 && ps.Slot == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the pending release was not done after etcd returned: %+v", ps)
		}
		time.Sleep(200 * time.Millisecond)
	}
	noLoss(t, l, run)
}
