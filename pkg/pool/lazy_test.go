package pool

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// With credentials, etcd's client logs in as it is made. etcd away at
// the agent's start must not fail Open (the agent would crash-loop):
// the Pool opens within about its request timeout, each request fails
// closed as etcd unavailable, and once etcd is back the same Pool logs
// in and works, its loops (Register, WatchSettings) too. Credentials
// refused once etcd answers are said as such by the first request.
func TestOpenWithCredentialsWhileEtcdAway(t *testing.T) {
	c := rbacCluster(t)
	ctx := ctxT(t, 90*time.Second)
	admin := openAs(t, c, "admin", "admin", "pw-admin")
	if _, err := admin.SetLimit(ctx, MustLimit("1"), "alice"); err != nil {
		t.Fatalf("admin sets the limit: %v", err)
	}
	c.Members[0].Kill()

	open := func(password string) *Pool {
		t.Helper()
		start := time.Now()
		p, err := Open(Config{Endpoints: c.Endpoints(), Name: "web", ID: "web1", Limit: MustLimit("1"),
			Username: "web1", Password: password, RequestTimeout: time.Second, TTL: 2 * time.Second})
		if err != nil {
			t.Fatalf("open while etcd is away: %v; want the pool opened", err)
		}
		t.Cleanup(func() { p.Close() })
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("open while etcd is away took %v; want about the request timeout (1 s)", d)
		}
		return p
	}
	web1 := open("pw-web1")
	wrong := open("wrong")

	// Away: fails closed, worded and counted as etcd not answering.
	start := time.Now()
	_, err := web1.Acquire(ctx, Claim{Op: "restart"}, nil)
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "no answer within 1s (etcd down, unreachable, or without quorum)") {
		t.Fatalf("acquire while etcd is away: %v; want ErrUnavailable, no answer within 1s", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("acquire while etcd is away took %v to fail", d)
	}
	if e := web1.Errors(); e["timeout"] == 0 || e["auth"] != 0 {
		t.Errorf("errors counted while etcd is away: %v; want timeouts only", e)
	}

	// The agent's loops run meanwhile, on a client not made yet.
	lctx, stop := context.WithCancel(ctx)
	var loops sync.WaitGroup
	defer func() { stop(); loops.Wait() }()
	var mu sync.Mutex
	var told []string
	loops.Add(2)
	go func() { defer loops.Done(); web1.Register(lctx, 200*time.Millisecond) }()
	go func() {
		defer loops.Done()
		web1.WatchSettings(lctx, func(s *Settings, why string) {
			mu.Lock()
			defer mu.Unlock()
			if s != nil {
				why = "limit " + s.MaxUnavailable.String()
			}
			told = append(told, why)
		})
	}()
	time.Sleep(1500 * time.Millisecond)

	// etcd back: the same Pool logs in and takes its slot.
	c.Members[0].Restart(t, c)
	for {
		_, err = web1.Acquire(ctx, Claim{Op: "restart"}, nil)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrDenied) || ctx.Err() != nil {
			t.Fatalf("acquire once etcd is back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if h, err := web1.Held(ctx); err != nil || h == nil {
		t.Fatalf("web1 holds %v, %v", h, err)
	}
	waitFor(t, "web1's watch sees the pool's limit", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(told) > 0 && told[len(told)-1] == "limit 1"
	})
	waitFor(t, "web1 registered", func() bool {
		st, err := admin.Status(ctx)
		if err != nil {
			return false
		}
		for _, m := range st.Members {
			if m.ID == "web1" && m.Live {
				return true
			}
		}
		return false
	})

	// A wrong password opened while etcd was away: refused now, and
	// said so, not as etcd away.
	before := wrong.Errors()["auth"]
	_, err = wrong.Status(ctx)
	if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), `etcd user "web1": wrong user name or password`) {
		t.Errorf("status with a wrong password once etcd is back: %v; want ErrDenied, wrong user name or password", err)
	}
	if got := wrong.Errors()["auth"]; got != before+1 {
		t.Errorf("%d auth errors counted, want %d", got, before+1)
	}
}

// Open with credentials etcd refuses while it answers fails at once,
// as ErrDenied (a configuration to mend, like a bad name), and Close
// works on a Pool whose client was never made.
func TestOpenRefusedAndCloseUnmade(t *testing.T) {
	c := rbacCluster(t)
	_, err := Open(Config{Endpoints: c.Endpoints(), Name: "web", ID: "web1", Username: "web1", Password: "wrong", RequestTimeout: 2 * time.Second})
	if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "wrong user name or password") {
		t.Errorf("open with a wrong password: %v; want ErrDenied", err)
	}
	c.Members[0].Kill()
	p, err := Open(Config{Endpoints: c.Endpoints(), Name: "web", ID: "web1", Username: "web1", Password: "pw-web1", RequestTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("close of a pool whose client was never made: %v", err)
	}
	if _, err := p.Status(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("status after close: %v; want ErrUnavailable", err)
	}
}
