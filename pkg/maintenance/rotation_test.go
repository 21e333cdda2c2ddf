package maintenance

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/lbview"
)

// fakeRotation answers as load balancers would: lbs are checking, and
// every one confirms (or, with partial, the second does not).
type fakeRotation struct {
	lbs     []lbview.LB
	partial bool
}

func (f *fakeRotation) Ports() []uint16              { return []uint16{81} }
func (f *fakeRotation) LoadBalancers() []lbview.LB   { return f.lbs }
func (f *fakeRotation) Active(time.Time) []lbview.LB { return f.lbs }
func (f *fakeRotation) Wait(ctx context.Context, w lbview.Want, since time.Time) lbview.Confirmation {
	c := lbview.Confirmation{Want: w, LoadBalancers: []lbview.Confirmed{}}
	for i, l := range f.lbs {
		ok := !f.partial || i != 1
		c.LoadBalancers = append(c.LoadBalancers, lbview.Confirmed{Addr: l.Addr, Port: l.Port, Need: 2, Confirmed: ok})
	}
	return c
}

var lb1, lb2 = lbview.LB{Addr: netip.MustParseAddr("10.0.0.2"), Port: 81}, lbview.LB{Addr: netip.MustParseAddr("10.0.0.3"), Port: 81}

// newRotationRig: an engine with the load balancers' view, on the wall
// clock (the confirmation comes from a goroutine of its own), with a
// short policy.
func newRotationRig(t *testing.T, rot Rotation, busy bool) (*Engine, drain.Policy) {
	t.Helper()
	return newRotationRigLog(t, rot, busy, nil)
}

// newRotationRigLog is newRotationRig logging to log.
func newRotationRigLog(t *testing.T, rot Rotation, busy bool, log *slog.Logger) (*Engine, drain.Policy) {
	t.Helper()
	store := &memStore{}
	p := drain.Policy{Poll: 20 * time.Millisecond, MinWait: 300 * time.Millisecond, Quiet: 200 * time.Millisecond,
		IdleAfter: time.Second, Deadline: 2 * time.Second, Grace: 100 * time.Millisecond, OnDeadline: drain.Proceed}
	e := New(context.Background(), Deps{
		Forwarder: &fakeForwarder{store: store}, Forwards: []forward.Forward{fwd}, Table: &fakeTable{busy: busy}, Policy: p,
		Runner: &fakeRunner{}, Ready: &fakeReady{}, Store: store, Rotation: rot, Log: log,
	})
	if _, err := e.Resume(); err != nil {
		t.Fatal(err)
	}
	return e, p
}

func TestRotationConfirmedReplacesMinWait(t *testing.T) {
	e, p := newRotationRig(t, &fakeRotation{lbs: []lbview.LB{lb1, lb2}}, false)
	res, err := e.Enter(alice, nil)
	if err != nil || !res.Out.All() || len(res.Warnings) != 0 {
		t.Fatalf("enter: %+v, %v", res, err)
	}
	if res.Drain.Elapsed >= p.MinWait || !strings.HasPrefix(res.Note, "out of rotation on 2/2 load balancers") {
		t.Errorf("drained after %v (min-wait %v), note %q: want confirmed, before min-wait", res.Drain.Elapsed, p.MinWait, res.Note)
	}
	res, err = e.Exit(alice, nil)
	if err != nil || !res.Back.All() || !strings.HasPrefix(res.Note, "back in rotation on 2/2 load balancers (10.0.0.2") {
		t.Fatalf("exit: %+v, %v", res, err)
	}
	e2, _ := newRotationRig(t, &fakeRotation{lbs: []lbview.LB{lb1}}, true)
	// A busy server's restart: sticky users never leave, no request is
	// in flight at the confirmation: no wait for quiet or the deadline.
	res, err = e2.Restart(alice, nil)
	if err != nil || res.Drain.Outcome != drain.InFlightDone || !res.Out.All() || !res.Back.All() {
		t.Fatalf("restart: %+v, %v", res, err)
	}
	// The same server in maintenance enter still waits for quiet.
	res, err = e2.Enter(alice, nil)
	if err != nil || res.Drain.Outcome != drain.DeadlineProceed {
		t.Fatalf("enter a busy server: %+v, %v; want the deadline", res.Drain, err)
	}
}

func TestRotationUnconfirmedWarns(t *testing.T) {
	logged := &records{}
	e, p := newRotationRigLog(t, &fakeRotation{}, false, slog.New(logged))
	var msgs []string
	res, err := e.Enter(alice, func(ev Event) {
		if ev.Message != "" {
			msgs = append(msgs, ev.Message)
		}
	})
	if err != nil || res.Drain.Elapsed < p.MinWait || len(res.Warnings) != 1 ||
		!strings.HasPrefix(res.Warnings[0], "no load balancer health-checks port 81, so none is known to have taken the server out of rotation") {
		t.Fatalf("enter with nobody checking: %+v, %v; want min-wait and a warning", res, err)
	}
	if !strings.Contains(strings.Join(msgs, "\n"), "no load balancer health-checks port 81") {
		t.Errorf("the warning was not shown as it happened: %q", msgs)
	}
	res, _ = e.Exit(alice, nil)
	if len(res.Warnings) != 1 || res.Note != "back in rotation" {
		t.Errorf("exit: %+v", res)
	}
	// journalctl -p warning shows them: each warning is logged at WARN.
	for _, w := range []string{"no load balancer health-checks port 81, so none", "no load balancer health-checks port 81: nothing confirms"} {
		if !logged.has(slog.LevelWarn, w) {
			t.Errorf("not logged at WARN: %q; logged:\n%s", w, logged)
		}
	}
	logged = &records{}
	e, _ = newRotationRigLog(t, &fakeRotation{lbs: []lbview.LB{lb1, lb2}, partial: true}, false, slog.New(logged))
	res, err = e.Enter(alice, nil)
	if err != nil || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "not confirmed by 10.0.0.3") ||
		strings.HasPrefix(res.Note, "out of rotation") || res.Drain.Elapsed < p.Quiet {
		t.Fatalf("enter, one load balancer silent: %+v, %v; want a warning naming it and the full quiet", res, err)
	}
	if !logged.has(slog.LevelWarn, "out of rotation on 1/2 load balancers") || !strings.Contains(logged.String(), "not confirmed by 10.0.0.3") {
		t.Errorf("the silent load balancer was not logged at WARN:\n%s", logged)
	}
	res, _ = e.Exit(alice, nil)
	if len(res.Warnings) != 1 || !logged.has(slog.LevelWarn, res.Warnings[0]) {
		t.Errorf("exit, one load balancer silent: %+v; logged:\n%s", res, logged)
	}
}

// records is a slog handler that keeps what is logged.
type records struct {
	mu sync.Mutex
	rs []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *records) WithGroup(string) slog.Handler            { return h }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rs = append(h.rs, r.Clone())
	return nil
}

// has says whether a record at level begins with msg.
func (h *records) has(level slog.Level, msg string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.ContainsFunc(h.rs, func(r slog.Record) bool { return r.Level == level && strings.HasPrefix(r.Message, msg) })
}

func (h *records) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, r := range h.rs {
		fmt.Fprintf(&b, "%s %s\n", r.Level, r.Message)
	}
	return b.String()
}
