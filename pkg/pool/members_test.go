package pool

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/etcdtest"
)

// An idle pool writes nothing: members registered, their checks every
// 50 ms for a second, and etcd's revision does not move (lease
// keep-alives make no revision). A member that dies (its lease revoked,
// as when it expires) has its departure recorded once, by one of the
// others: two revisions, the member key's deletion and its seen key.
func TestIdlePoolWritesNothing(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var ps []*Pool
	for i := range 5 {
		p := openTTL(t, c, fmt.Sprintf("web%d", i+1))
		go p.Register(ctx, 50*time.Millisecond)
		ps = append(ps, p)
	}
	// The one that dies: registered once, no loop to join again.
	victim := openTTL(t, c, "web9")
	if err := victim.register(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	joined := time.Now()
	waitFor(t, "six live members", func() bool {
		st, err := ps[0].Status(ctxT(t, 2*time.Second))
		n := 0
		for _, m := range st.Members {
			if m.Live {
				n++
			}
		}
		return err == nil && n == 6
	})
	rev := func() int64 {
		r, err := ps[0].cli.Get(ctxT(t, 2*time.Second), "nothing")
		if err != nil {
			t.Fatal(err)
		}
		return r.Header.Revision
	}
	// The watches of the departures are set up after the first read.
	time.Sleep(300 * time.Millisecond)
	before := rev()
	time.Sleep(time.Second)
	if after := rev(); after != before {
		t.Fatalf("an idle pool wrote %d revisions in 1 s (20 checks by each of 5 members)", after-before)
	}

	lease, err := victim.lease(ctxT(t, 2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	died := time.Now()
	if _, err := ps[0].cli.Revoke(ctxT(t, 2*time.Second), lease); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "web9's departure recorded", func() bool {
		r, err := ps[0].cli.Get(ctxT(t, 2*time.Second), ps[0].key("seen", "web9"))
		if err != nil || len(r.Kvs) == 0 {
			return false
		}
		var seen time.Time
		return json.Unmarshal(r.Kvs[0].Value, &seen) == nil && !seen.Before(died)
	})
	time.Sleep(500 * time.Millisecond)
	if after := rev(); after-before != 2 {
		t.Fatalf("a departure wrote %d revisions, want 2 (the lease's deletion, one record)", after-before)
	}
	st, err := ps[0].Status(ctxT(t, 2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.ID == "web9" && (m.Live || m.LastSeen.Before(joined)) {
			t.Fatalf("web9: %+v", m)
		}
	}
}

// openTTL is open with the agent's lease of 15 s: a 2 s lease whose
// keep-alive comes late on a loaded machine would end, and its member
// join again (a write the idle count would see).
func openTTL(t *testing.T, c *etcdtest.Cluster, id string) *Pool {
	t.Helper()
	p, err := Open(Config{Endpoints: c.Endpoints(), Name: "web", ID: id, Limit: MustLimit("1"), RequestTimeout: 2 * time.Second, TTL: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}
