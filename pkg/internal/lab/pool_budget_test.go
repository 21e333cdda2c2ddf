package lab

// The pool's budget, end to end: it counts every server out, not only
// drainctl's slots. Three app servers in one pool (max_unavailable 1) on
// a 3-member etcd, behind HAProxy, under load; HAProxy's stats polled
// every 10 ms all along.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// unavailable is the pool's budget use as web w's agent reads it: id →
// why.
func unavailable(t *testing.T, ctx context.Context, w *Web) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, u := range poolStatus(t, ctx, w).Unavailable {
		out[u.ID] = u.Why
	}
	return out
}

// waitUnavailable waits until w's pool status counts exactly ids out,
// each with a reason containing why[id].
func waitUnavailable(t *testing.T, ctx context.Context, w *Web, within time.Duration, why map[string]string) {
	t.Helper()
	var got map[string]string
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		got = unavailable(t, ctx, w)
		ok := len(got) == len(why)
		for id, s := range why {
			ok = ok && strings.Contains(got[id], s)
		}
		if ok {
			return
		}
	}
	t.Fatalf("after %v the pool counts out %v, want %v", within, got, why)
}

// runAsync starts `maintenance run` on w (the cron patch) and returns its
// output once done.
func runAsync(ctx context.Context, w *Web, reason string) <-chan string {
	done := make(chan string, 1)
	go func() {
		out, code, err := w.DrainctlIn(ctx, "maintenance", "run", "--reason", reason, "--pool-wait", "2m", "--", "true")
		done <- fmt.Sprintf("exit %d %v\n%s", code, err, out)
	}()
	return done
}

func stillWaiting(t *testing.T, l *Lab, done <-chan string, w *Web, why string) {
	t.Helper()
	select {
	case out := <-done:
		t.Fatalf("%s went out while %s: %s", w.Name, why, out)
	case <-time.After(3 * time.Second):
	}
	if s, _ := l.Status(w.Name); s != "UP" {
		t.Fatalf("%s is %s while %s: it must wait in service", w.Name, s, why)
	}
}

func finished(t *testing.T, done <-chan string, w *Web, after string, want ...string) {
	t.Helper()
	select {
	case out := <-done:
		if !strings.HasPrefix(out, "exit 0 ") {
			t.Fatalf("%s's run after %s: %s", w.Name, after, out)
		}
		for _, s := range want {
			if !strings.Contains(out, s) {
				t.Errorf("%s's run was not told %q:\n%s", w.Name, s, out)
			}
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("%s's run did not finish 90 s after %s", w.Name, after)
	}
}

// TestE2EPoolBudget: with max_unavailable 1,
//   - web3's web server crashes: web1's cron run waits, told why, and goes
//     out once web3 serves again;
//   - web3 powered off (agent gone, links down): once its lease has
//     ended (15 s) web1 waits, told why, and goes out once web3 is
//     forgotten (pool forget);
//   - web2 configured with max_unavailable 3 (a half-rolled config), a
//     junk key under the pool's prefix: the three hosts' cron runs at
//     once still go one by one.
//
// Throughout, HAProxy never shows more than one primary entry DOWN: the
// budget holds whoever took the server out.
func TestE2EPoolBudget(t *testing.T) {
	l := startLabWith(t, Options{Backend: "nftables", Pattern: Recommended, Servers: 3, Pool: &PoolOptions{MaxUnavailable: "1"}})
	ctx := context.Background()
	run := users(t, l)
	w1, w2, w3 := l.Webs[0], l.Webs[1], l.Webs[2]
	down := watchDown(t, l)
	waitUnavailable(t, ctx, w1, 10*time.Second, map[string]string{})

	// The crash: web3's Apache stops (not through drainctl).
	t.Log("web3's Apache stopped")
	if _, err := w3.ns.Exec("apache2", "-f", w3.conf, "-k", "stop"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WaitStatus(ctx, w3.Name, "DOWN", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	waitUnavailable(t, ctx, w1, 10*time.Second, map[string]string{"web3": "not answering"})
	done := runAsync(ctx, w1, "cron, web3 crashed")
	stillWaiting(t, l, done, w1, "web3's web server is down")
	t.Log("web3's Apache started again")
	if _, err := w3.ns.Exec("apache2", "-f", w3.conf, "-k", "start"); err != nil {
		t.Fatal(err)
	}
	finished(t, done, w1, "web3 came back", "web3: web server not answering")
	backInService(t, ctx, l, w1)
	backInService(t, ctx, l, w3)

	// Powered off: web3's agent gone and its links down, until forgotten.
	t.Log("web3 powered off")
	w3.KillAgent()
	for _, dev := range []string{"eth0", "eth2"} {
		if _, err := w3.ns.Exec("ip", "link", "set", dev, "down"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.WaitStatus(ctx, w3.Name, "DOWN", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Counted out once its lease (15 s) has ended.
	waitUnavailable(t, ctx, w1, 25*time.Second, map[string]string{"web3": "agent gone"})
	done = runAsync(ctx, w1, "cron, web3 off")
	stillWaiting(t, l, done, w1, "web3 is powered off")
	down.stop()
	<-down.done
	if p := down.peak.Load(); p != 1 {
		t.Errorf("HAProxy showed %d primaries DOWN at once while web3 was out; the budget is 1", p)
	}
	// Forgetting web3 is the operator saying it is gone for good: web1
	// then goes out (HAProxy shows web3, still off, DOWN beside it).
	mustDrainctl(t, ctx, w2, 0, "pool", "forget", "web3")
	finished(t, done, w1, "web3 was forgotten", "web3: agent gone")
	backInService(t, ctx, l, w1)

	// web3 back (a forgotten host that returns joins again), web2's file
	// says 3, and a junk key: the cron runs at once still go one by one.
	t.Log("web3 powered on")
	for _, dev := range []string{"eth0", "eth2"} {
		if _, err := w3.ns.Exec("ip", "link", "set", dev, "up"); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.StartAgent(w3); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WaitStatus(ctx, w3.Name, "UP", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	w2.poolFlags[slices.Index(w2.poolFlags, "--pool-max-unavailable")+1] = "3"
	w2.KillAgent()
	if err := l.StartAgent(w2); err != nil {
		t.Fatal(err)
	}
	if out, err := w1.ns.Exec("etcdctl", "--endpoints", l.EtcdEndpoints(), "put", "/drainctl/pools/web/seen/zz", "not json"); err != nil {
		t.Fatalf("etcdctl put: %v\n%s", err, out)
	}
	waitUnavailable(t, ctx, w1, 20*time.Second, map[string]string{})
	if ps := poolStatus(t, ctx, w2); ps.MaxUnavailable != "1" || ps.ConfiguredMaxUnavailable != "3" || len(ps.Malformed) != 1 {
		t.Errorf("web2's pool status: the pool's %q, its file's %q, malformed %+v; want 1, 3, the junk key", ps.MaxUnavailable, ps.ConfiguredMaxUnavailable, ps.Malformed)
	}
	down = watchDown(t, l)
	took := runAll(t, ctx, l, nil)
	down.stop()
	<-down.done
	t.Logf("3 cron runs in %v, at most %d primaries DOWN at once", took.Round(100*time.Millisecond), down.peak.Load())
	if p := down.peak.Load(); p != 1 {
		t.Errorf("at most %d primaries DOWN at once with web2 configured 3; the pool's limit is 1", p)
	}
	for _, w := range l.Webs {
		backInService(t, ctx, l, w)
	}
	res := run.Stop()
	report(t, res)
}
