package pool

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/drainctl/drainctl/pkg/internal/etcdtest"
)

// A grant decides on what is out, not on the whole pool: members in
// service have no health key, and the decision's read lists only the
// members out; what it counts is the whole read's, whether a gone member
// is named by its departure record or (no record: nobody saw it go) only
// by its lease, which the read finds from the counts and then reads the
// whole pool for. A record whose member is back (its agent not through
// its first judgement yet) does not send it to the whole pool.
func TestBudgetReadIsWhatIsOut(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 60*time.Second)
	var ps []*Pool
	for i := range 6 {
		p := open(t, c, "web", fmt.Sprintf("m%d", i+1), "50%")
		if err := p.register(ctx); err != nil {
			t.Fatal(err)
		}
		mustPublish(t, p, Health{InService: true})
		ps = append(ps, p)
	}
	if _, _, err := ps[0].Seed(ctx); err != nil {
		t.Fatal(err)
	}
	m1 := ps[0]
	// same reads the pool both ways and checks the decision's read
	// counts what the whole read counts; it returns how many members
	// the decision's read listed.
	same := func(when string) int {
		t.Helper()
		b, err := m1.readBudget(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all, err := m1.read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(b.Unavailable(), all.Unavailable()) || b.Size() != all.Size() || b.Allowed() != all.Allowed() {
			t.Fatalf("%s: the decision's read counts %+v of %d (%d allowed); the whole pool, %+v of %d (%d allowed)",
				when, b.Unavailable(), b.Size(), b.Allowed(), all.Unavailable(), all.Size(), all.Allowed())
		}
		return len(b.Members)
	}
	healthKeys := func() int64 {
		r, err := m1.cli.Get(ctx, m1.prefix+"health/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return r.Count
	}

	if n := healthKeys(); n != 0 {
		t.Errorf("six members in service: %d health keys, want none", n)
	}
	if n := same("all in service"); n != 0 {
		t.Errorf("all in service: the decision's read listed %d members, want none", n)
	}
	mustPublish(t, ps[4], Health{Why: "web server not answering"})
	if n := same("m5 out of service"); n != 1 {
		t.Errorf("m5 out: the decision's read listed %d members, want m5 alone", n)
	}
	revoke := func(p *Pool) {
		t.Helper()
		l, err := p.lease(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.cli.Revoke(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	revoke(ps[5])
	m1.recordDeparture(ctx, "m6") // m6's predecessor would (TestIdlePoolWritesNothing)
	if n := same("m6 gone, its departure recorded"); n != 2 {
		t.Errorf("m6 recorded gone: the decision's read listed %d members, want m5 and m6", n)
	}
	revoke(ps[3])
	if n := same("m4 gone unrecorded"); n != 6 {
		t.Errorf("m4 gone with no record: the decision's read listed %d members, want all 6 (the whole pool read)", n)
	}
	// m4 back: its agent's first judgement replaces any record, and the
	// decision's read is what is out again.
	if err := open(t, c, "web", "m4", "50%").register(ctx); err != nil { // its agent started again
		t.Fatal(err)
	}
	if n := same("m4 back"); n != 2 {
		t.Errorf("m4 back: the decision's read listed %d members, want m5 and m6", n)
	}
	// m6 back: its departure record counts no more, and its agent's first
	// judgement deletes it.
	m6 := open(t, c, "web", "m6", "50%")
	if err := m6.register(ctx); err != nil {
		t.Fatal(err)
	}
	if n := same("m6 back, its record still there"); n != 2 {
		t.Errorf("m6 back, its departure record still there: the decision's read listed %d members, want m5 and m6 (m6 live: its record set aside, no whole read)", n)
	}
	mustPublish(t, m6, Health{InService: true})
	if n := healthKeys(); n != 1 {
		t.Errorf("m6 back in service: %d health keys, want m5's alone", n)
	}
	if n := same("m6 back in service"); n != 1 {
		t.Errorf("m6 back: the decision's read listed %d members, want m5", n)
	}
}

// A waiter counts the pool's changes from its watch: members going out
// of service and back, a member gone and forgotten, make it read the
// pool not once, neither while its turn cannot have come nor when it
// comes (the grant is decided on the count), and it is granted only
// when the budget is free: not while another member is out, nor while
// one is gone.
func TestWaiterCountsWithoutReading(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 60*time.Second)
	var ps []*Pool
	for _, id := range []string{"a", "b", "c", "d"} {
		p := open(t, c, "web", id, "1")
		if err := p.register(ctx); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	a, b, cc, d := ps[0], ps[1], ps[2], ps[3]
	if _, err := a.Acquire(ctx, Claim{Op: "restart"}, nil); err != nil {
		t.Fatal(err)
	}
	ch, _ := waitingFor(ctx, b)
	waitFor(t, "b in line", func() bool { return len(waitingIDs(t, a)) == 1 })
	time.Sleep(200 * time.Millisecond) // b's watch is set up
	r0 := b.reads.Load()
	for i := range 10 {
		mustPublish(t, cc, Health{Why: fmt.Sprintf("web server not answering (%d)", i)})
		mustPublish(t, cc, Health{InService: true})
	}
	mustPublish(t, cc, Health{Why: "web server not answering"})
	time.Sleep(300 * time.Millisecond)
	if n := b.reads.Load() - r0; n != 0 {
		t.Errorf("c out and back 10 times while a holds: b read the pool %d times, want none", n)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	notGranted(t, ch, "a released, c out of service")
	mustPublish(t, cc, Health{InService: true})
	granted(t, ch, "c back")
	if n := b.reads.Load() - r0; n != 0 {
		t.Errorf("b read the pool %d times in all; want none: its turn came by its watch's count, and the grant was decided on it", n)
	}

	// d's agent gone while c waits behind b's slot: b's release lets
	// nobody through until d is forgotten.
	ch, _ = waitingFor(ctx, cc)
	waitFor(t, "c in line", func() bool { return len(waitingIDs(t, a)) == 1 })
	time.Sleep(200 * time.Millisecond)
	l, err := d.lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.cli.Revoke(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	notGranted(t, ch, "b released, d gone")
	if f, err := a.Forget(ctx, "d"); err != nil || !f.Known {
		t.Fatalf("forget d: %+v, %v", f, err)
	}
	granted(t, ch, "d forgotten")
}

// The budget's counting by a waiter is the read's: for each kind of
// change a waiter is told (a slot taken or given back, a member out of
// service or back, gone or back, a departure recorded, a member joining
// or forgotten), the turn it keeps from the event says what a turn made
// from a new read says.
func TestTurnCountsAsTheReadDoes(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 60*time.Second)
	var ps []*Pool
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		p := open(t, c, "web", id, "40%")
		if err := p.register(ctx); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	a := ps[0]
	if _, _, err := a.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	// Turns kept from the events, each from a decision's read made at
	// a different point (so some start with members gone unnamed).
	type kept struct {
		t    turn
		rev  int64
		from string
	}
	var turns []*kept
	keep := func(from string) {
		st, err := a.readBudget(ctx)
		if err != nil {
			t.Fatal(err)
		}
		turns = append(turns, &kept{newTurn(st, 0), st.Revision, from})
	}
	keep("the start")
	leaseOf := func(p *Pool) clientv3.LeaseID {
		l, err := p.lease(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	changes := []struct {
		what string
		do   func() error
	}{
		{"b takes a slot", func() error { _, err := ps[1].Acquire(ctx, Claim{Op: "restart"}, nil); return err }},
		{"c out of service", func() error { return ps[2].PublishHealth(ctx, Health{Why: "refused"}) }},
		{"b out of service too", func() error { return ps[1].PublishHealth(ctx, Health{Why: "withdrawn"}) }},
		{"b gives its slot back", func() error { return ps[1].Release(ctx) }},
		{"b back in service", func() error { return ps[1].PublishHealth(ctx, Health{InService: true}) }},
		{"d gone", func() error { _, err := ps[3].cli.Revoke(ctx, leaseOf(ps[3])); return err }},
		{"d's departure recorded", func() error { a.recordDeparture(ctx, "d"); return nil }},
		{"f joins", func() error { return open(t, c, "web", "f", "40%").register(ctx) }},
		{"e gone, unrecorded", func() error { _, err := ps[4].cli.Revoke(ctx, leaseOf(ps[4])); return err }},
		{"b gone, unrecorded", func() error { _, err := ps[1].cli.Revoke(ctx, leaseOf(ps[1])); return err }},
		{"b back (its agent started again)", func() error { return open(t, c, "web", "b", "40%").register(ctx) }},
		{"d back (its agent started again)", func() error { return open(t, c, "web", "d", "40%").register(ctx) }},
		{"e forgotten", func() error { _, err := a.Forget(ctx, "e"); return err }},
		{"c back in service", func() error { return ps[2].PublishHealth(ctx, Health{InService: true}) }},
	}
	for _, ch := range changes {
		if err := ch.do(); err != nil {
			t.Fatalf("%s: %v", ch.what, err)
		}
		r, err := a.cli.Get(ctx, "nothing")
		if err != nil {
			t.Fatal(err)
		}
		now := r.Header.Revision
		st, err := a.read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fresh := newTurn(st, 0)
		for _, k := range turns {
			wctx, stop := context.WithCancel(ctx)
			w := a.cli.Watch(wctx, a.prefix, clientv3.WithPrefix(), clientv3.WithRev(k.rev+1))
			for k.rev < now {
				for _, ev := range (<-w).Events {
					if !k.t.count(a, ev) {
						t.Fatalf("%s: the turn kept since %s could not count %s", ch.what, k.from, ev.Kv.Key)
					}
					k.rev = ev.Kv.ModRevision
				}
			}
			stop()
			if k.t.out() != fresh.out() || k.t.size != fresh.size || k.t.limit.Allowed(k.t.size) != st.Allowed() {
				t.Errorf("after %s: the turn kept since %s counts %d out of %d, a new read %d out of %d (%d allowed)",
					ch.what, k.from, k.t.out(), k.t.size, fresh.out(), fresh.size, st.Allowed())
			}
		}
		keep(ch.what)
	}
}

// A holder's own health (withdrawn, in maintenance) changes nothing that
// is counted: published between another host's decision and its
// transaction, it does not fail the grant. A member without a slot going
// out does (TestGrantComparesHealth).
func TestHolderHealthDoesNotFailGrants(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 30*time.Second)
	a, b := open(t, c, "web", "a", "2"), open(t, c, "web", "b", "2")
	if _, err := a.Acquire(ctx, Claim{Op: "restart"}, nil); err != nil {
		t.Fatal(err)
	}
	tries := 0
	beforeGrant = func() {
		tries++
		if tries == 1 {
			mustPublish(t, a, Health{Why: "withdrawn for a restart"})
		}
	}
	t.Cleanup(func() { beforeGrant = nil })
	if _, err := b.Acquire(ctx, Claim{Op: "restart"}, nil); err != nil {
		t.Fatal(err)
	}
	if tries != 1 {
		t.Errorf("b's grant took %d tries: a's own health, a holder's, failed it", tries)
	}
}
