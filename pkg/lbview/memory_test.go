package lbview

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// After a restart of the agent, the load balancers known before are
// expected: a restore waits for them instead of passing on 0/0. One that
// checks confirms as usual; one that sends nothing is silent, which the
// confirmation says; one silent for longer than ForgetAfter is forgotten.
func TestRememberedLoadBalancersAreExpected(t *testing.T) {
	before := New(Settings{Fall: 2, Rise: 2})
	now := time.Now()
	gone := netip.MustParseAddr("10.0.0.9")
	// Both steady (only steady ones are saved): 25 s of checks.
	feed(before, lb4, now.Add(-25*time.Second), 500*time.Millisecond, 50, Accepted)
	feed(before, gone, now.Add(-25*time.Second), 500*time.Millisecond, 50, Accepted)
	path := filepath.Join(t.TempDir(), "loadbalancers.json")
	if err := Save(path, before.LoadBalancers()); err != nil {
		t.Fatal(err)
	}
	lbs, err := Load(path)
	if err != nil || len(lbs) != 2 || lbs[0].Interval != 500*time.Millisecond {
		t.Fatalf("load: %+v %v", lbs, err)
	}
	old := LB{Addr: netip.MustParseAddr("10.0.0.77"), Port: 81, Checks: 50, Last: now.Add(-ForgetAfter - time.Minute)}
	after := New(Settings{Fall: 2, Rise: 2}) // the restarted agent's
	after.Remember(append(lbs, old), time.Now())
	if got := after.Active(time.Now()); len(got) != 2 {
		t.Fatalf("active after restart: %+v, want the two known in the last day", got)
	}
	restored := time.Now()
	go feed(after, lb4, restored.Add(10*time.Millisecond), 50*time.Millisecond, 3, Accepted)
	c := after.Wait(context.Background(), Back, restored)
	if c.All() || !c.AllChecking() {
		t.Fatalf("want not all, but all that check: %+v", c)
	}
	if txt := c.Text(); !strings.HasPrefix(txt, "back in rotation on 1/2 load balancers (10.0.0.2 after ") || !strings.Contains(txt, "10.0.0.9: no check in ") {
		t.Errorf("text %q", txt)
	}
	// A load balancer that checks but is not yet confirmed is not silent.
	restored = time.Now()
	go feed(after, lb4, restored.Add(10*time.Millisecond), 50*time.Millisecond, 1, Accepted)
	if c := after.Wait(context.Background(), Back, restored); c.AllChecking() {
		t.Errorf("one of two checks accepted counted as confirmed: %+v", c)
	}
	if lbs, err := Load(filepath.Join(t.TempDir(), "none.json")); err != nil || lbs != nil {
		t.Errorf("a missing file: %v %v", lbs, err)
	}
}

// A load balancer counted and answered is remembered even before it is
// steady: a host rebooted seconds after its agent started must still wait
// for it after the boot (TestE2ERebootUnderLoad failed without this). A
// newcomer outranked (not counted) or never answered is not.
func TestCountedLoadBalancerRemembered(t *testing.T) {
	t0 := time.Now()
	lb := func(addr string, active bool, answered uint64) LB {
		return LB{Addr: netip.MustParseAddr(addr), Port: 81, Checks: 9, Accepted: answered, Interval: 200 * time.Millisecond,
			First: t0, Last: t0.Add(1600 * time.Millisecond), Active: active}
	}
	path := filepath.Join(t.TempDir(), "lbs.json")
	if err := Save(path, []LB{lb("198.18.1.1", true, 9), lb("198.18.9.9", false, 9), lb("198.18.9.8", true, 0)}); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Addr.String() != "198.18.1.1" {
		t.Fatalf("remembered %+v; want 198.18.1.1 alone (counted and answered)", got)
	}
}
