package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/internal/metricstest"
	"github.com/drainctl/drainctl/pkg/lbview"
)

// op runs a drainctl operation with --json on w and returns its result
// and events; it fails the test unless it exits 0.
func op(t testing.TB, ctx context.Context, w *Web, args ...string) (apitype.Result, []apitype.Event) {
	t.Helper()
	out, code, err := w.Drainctl(ctx, append(args, "--json")...)
	if err != nil || code != 0 {
		t.Fatalf("drainctl %v on %s: exit %d %v\n%s", args, w.Name, code, err, out)
	}
	var evs []apitype.Event
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l apitype.Line
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		if l.Event != nil {
			evs = append(evs, *l.Event)
		}
		if l.Result != nil {
			return *l.Result, evs
		}
	}
	t.Fatalf("drainctl %v on %s: no result in\n%s", args, w.Name, out)
	return apitype.Result{}, nil
}

// watchHAProxy polls both HAProxy instances every 10 ms until each shows
// server as want (10 s at most); the function it returns waits for that
// and says when each first did.
func watchHAProxy(l *Lab, server, want string) func() []time.Time {
	seen := make([]time.Time, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			for i, stats := range []string{l.stats, l.pstats} {
				if s, err := statusOf(stats, server); err == nil && s == want && seen[i].IsZero() {
					seen[i] = time.Now()
				}
			}
			if !seen[0].IsZero() && !seen[1].IsZero() {
				return
			}
		}
	}()
	return func() []time.Time { <-done; return seen }
}

// timely fails the test unless both HAProxy instances had changed
// (seen, from watchHAProxy) by the time drainctl announced the change
// (the event whose message starts with announce), give or take 100 ms:
// half the check interval, so a confirmation one check early (HAProxy
// still at "UP 1/2" for 200 ms more) fails it.
func timely(t *testing.T, what, announce string, evs []apitype.Event, seen []time.Time) {
	t.Helper()
	var at time.Time
	for _, ev := range evs {
		if strings.HasPrefix(ev.Message, announce) {
			at = ev.Time
		}
	}
	if at.IsZero() {
		t.Fatalf("%s: no event says %q", what, announce)
	}
	for i, s := range seen {
		if s.IsZero() || s.After(at.Add(100*time.Millisecond)) {
			t.Errorf("%s: HAProxy %d changed at %s, drainctl said so at %s: too early", what, i+1,
				s.Format("15:04:05.000"), at.Format("15:04:05.000"))
		}
	}
}

// waitCheckers waits until w's agent sees n load balancers checking it.
func waitCheckers(t *testing.T, ctx context.Context, w *Web, n int) []lbview.LB {
	t.Helper()
	var last string
	for range 100 {
		out, _, _ := w.Drainctl(ctx, "status", "--json")
		var st apitype.Status
		if json.Unmarshal([]byte(out), &st) == nil && st.HealthChecks != nil {
			var active []lbview.LB
			for _, l := range st.HealthChecks.LoadBalancers {
				if l.Active && l.Interval > 0 {
					active = append(active, lbview.LB(l))
				}
			}
			if len(active) == n {
				return active
			}
		}
		last = out
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %d load balancers never seen checking; last status:\n%s", w.Name, n, last)
	return nil
}

// confirmedBy fails the test unless c was confirmed by exactly the
// addresses want.
func confirmedBy(t *testing.T, what string, wc *apitype.Confirmation, want ...string) {
	t.Helper()
	if wc == nil {
		t.Fatalf("%s: no confirmation in the result", what)
	}
	c := engineConfirmation(*wc)
	var got []string
	for _, l := range c.LoadBalancers {
		if l.Confirmed {
			got = append(got, l.Addr.String())
		}
	}
	if !c.All() || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s: %q, want confirmed by %v", what, c.Text(), want)
	}
}

// timeline says when each phase began, from the first event: where an
// operation's time went.
func timeline(evs []apitype.Event) string {
	var b strings.Builder
	var last string
	for _, ev := range evs {
		if p := string(ev.Phase); p != last && len(evs) > 0 {
			fmt.Fprintf(&b, " %s@%dms", p, ev.Time.Sub(evs[0].Time).Milliseconds())
			last = p
		}
	}
	return strings.TrimSpace(b.String())
}

// TestE2ERotation: an active/passive pair of real HAProxy instances
// checks each app server (inter 200ms fall 2 rise 2), under load, on
// both backends. The agent names both; maintenance enter says both took
// the server out — and by then both say DOWN — exit that both put it
// back (both say UP), and a restart of a busy server goes on once both
// took it out instead of waiting out the drain deadline.
// 0 failed requests, 0 users moved.
func TestE2ERotation(t *testing.T) {
	for _, backend := range []string{"nftables", "iptables"} {
		t.Run(backend, func(t *testing.T) {
			l := startLabWith(t, Options{Backend: backend, Servers: 2, Passive: true,
				Inter: 200 * time.Millisecond, Deadline: 6 * time.Second})
			ctx := context.Background()
			w := l.Webs[0]
			lbs := waitCheckers(t, ctx, w, 2)
			out, _, _ := w.Drainctl(ctx, "status")
			for _, a := range []string{ActiveLB4(1), PassiveLB4(1)} {
				if want := fmt.Sprintf("checked:  %s checks port 81 every 0.2 s", a); !strings.Contains(out, want) {
					t.Errorf("status does not say %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "warning") {
				t.Errorf("status warns with two load balancers checking:\n%s", out)
			}
			t.Logf("seen: %+v\n%s", lbs, out)
			run := users(t, l)
			time.Sleep(time.Second)

			down := watchHAProxy(l, w.Name, "DOWN")
			res, evs := op(t, ctx, w, "maintenance", "enter", "--reason", "e2e rotation")
			confirmedBy(t, "enter", res.Out, ActiveLB4(1), PassiveLB4(1))
			timely(t, "enter", "out of rotation on 2/2", evs, down())
			t.Logf("enter: %s (%v)", res.Note, res.Elapsed)
			time.Sleep(time.Second)
			up := watchHAProxy(l, w.Name, "UP")
			res, evs = op(t, ctx, w, "maintenance", "exit")
			confirmedBy(t, "exit", res.Back, ActiveLB4(1), PassiveLB4(1))
			timely(t, "exit", "back in rotation on 2/2", evs, up())
			t.Logf("exit: %s (%v)", res.Note, res.Elapsed)
			if len(res.Warnings) > 0 {
				t.Errorf("warnings: %q", res.Warnings)
			}
			time.Sleep(time.Second)

			// Per load balancer, in the metrics: its checks, 2 refused
			// (fall) and the rest accepted.
			m, err := metricstest.Scrape("http://drainctl/metrics", metricstest.Socket(w.Socket))
			if err != nil {
				t.Fatal(err)
			}
			if n := metricstest.Value(m, "drainctl_load_balancers_checking"); n != 2 {
				t.Errorf("drainctl_load_balancers_checking %v, want 2", n)
			}
			for _, a := range []string{ActiveLB4(1), PassiveLB4(1)} {
				lb := []string{"load_balancer=" + a, "port=81"}
				seen, acc, ref := metricstest.Value(m, "drainctl_health_checks_seen_total", lb...),
					metricstest.Value(m, "drainctl_health_checks_accepted_total", lb...),
					metricstest.Value(m, "drainctl_health_checks_refused_total", lb...)
				if ref < 2 || acc < 3 || seen < acc+ref || seen > acc+ref+1 {
					t.Errorf("%s: %v checks seen, %v accepted, %v refused; want ≥ 2 refused, the others accepted", a, seen, acc, ref)
				}
				if iv := metricstest.Value(m, "drainctl_health_check_interval_seconds", lb...); iv < 0.15 || iv > 0.25 {
					t.Errorf("%s: check interval %v s, want 0.2", a, iv)
				}
			}

			// Sticky users keep web1 busy through its backup entry: the
			// drain would last the 6 s deadline without the confirmation.
			gen, err := w.Generation()
			if err != nil {
				t.Fatal(err)
			}
			down = watchHAProxy(l, w.Name, "DOWN")
			res, evs = op(t, ctx, w, "restart", "--reason", "e2e busy restart")
			confirmedBy(t, "restart out", res.Out, ActiveLB4(1), PassiveLB4(1))
			confirmedBy(t, "restart back", res.Back, ActiveLB4(1), PassiveLB4(1))
			timely(t, "restart", "out of rotation on 2/2", evs, down())
			if res.Drain == nil || res.Drain.Outcome == string(drain.DeadlineProceed) {
				t.Errorf("restart drain: %+v, want it ended by the confirmation, not the deadline", res.Drain)
			}
			if g, err := w.GenerationAfter(gen); err != nil || g != gen+1 {
				t.Fatalf("Apache generation %d -> %d (%v): not restarted", gen, g, err)
			}
			t.Logf("restart: %s; drain %s with %d active after %v; %v in all: %s", res.Note, res.Drain.Outcome,
				res.Drain.Remaining, res.Drain.Elapsed, res.Elapsed, timeline(evs))
			noLoss(t, l, run)
		})
	}
}

// TestE2EWrongCheckPort: a haproxy.cfg whose primary entries check port
// 80 instead of the forward port. Withdrawing takes the server out of no
// rotation: status warns that no load balancer checks port 81, enter
// warns that none took it out (and HAProxy indeed keeps it UP), exit that
// nothing confirms it is back.
func TestE2EWrongCheckPort(t *testing.T) {
	l := startLabWith(t, Options{Backend: "nftables", Servers: 2, CheckPort: 80, Inter: 200 * time.Millisecond})
	ctx := context.Background()
	w := l.Webs[0]
	time.Sleep(2 * time.Second) // ten checks, had they come to 81
	out, _, _ := w.Drainctl(ctx, "status")
	if !strings.Contains(out, "warning:  no load balancer health-checks port 81 now: withdrawing will not take this server out of any rotation drainctl can see") {
		t.Errorf("status does not warn:\n%s", out)
	}
	out, code, err := w.Drainctl(ctx, "maintenance", "enter", "--reason", "wrong port")
	if err != nil || code != 0 {
		t.Fatalf("enter: exit %d %v\n%s", code, err, out)
	}
	if !strings.Contains(out, "warning: no load balancer health-checks port 81, so none is known to have taken the server out of rotation") {
		t.Errorf("enter does not warn:\n%s", out)
	}
	time.Sleep(time.Second)
	if s, err := l.Status(w.Name); err != nil || s != "UP" {
		t.Errorf("HAProxy: %s is %q (%v): the warning was wrong", w.Name, s, err)
	}
	m, err := metricstest.Scrape("http://drainctl/metrics", metricstest.Socket(w.Socket))
	if err != nil || metricstest.Value(m, "drainctl_load_balancers_checking") != 0 {
		t.Errorf("drainctl_load_balancers_checking: %v (%v), want 0", metricstest.Value(m, "drainctl_load_balancers_checking"), err)
	}
	out, code, err = w.Drainctl(ctx, "maintenance", "exit")
	if err != nil || code != 0 || !strings.Contains(out, "warning: no load balancer health-checks port 81: nothing confirms the server is back in rotation") {
		t.Errorf("exit: exit %d %v, want a warning:\n%s", code, err, out)
	}
}

// engineConfirmation is a confirmation from the API as lbview's, for its
// All and Text.
func engineConfirmation(c apitype.Confirmation) lbview.Confirmation {
	lc := lbview.Confirmation{Want: lbview.Want(c.Want), Elapsed: c.Elapsed}
	for _, l := range c.LoadBalancers {
		lc.LoadBalancers = append(lc.LoadBalancers, lbview.Confirmed(l))
	}
	return lc
}
