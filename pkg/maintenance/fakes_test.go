package maintenance

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/drainctl/drainctl/pkg/conntable"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/runner"
	"github.com/drainctl/drainctl/pkg/state"
)

// memStore is a state file in memory; it can be made to fail.
type memStore struct {
	mu    sync.Mutex
	st    state.State
	saves []state.Phase
	fail  error
}

func (m *memStore) Load() (state.State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.Phase == "" {
		return state.Fresh(), nil
	}
	return m.st, nil
}

func (m *memStore) Save(st state.State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.st = st
	m.saves = append(m.saves, st.Phase)
	return nil
}

func (m *memStore) last() state.Phase {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.Phase
}

// fakeForwarder keeps one forward's state and records every call with the
// phase the state file held at that moment.
type fakeForwarder struct {
	mu        sync.Mutex
	store     *memStore
	applied   bool
	withdrawn bool
	calls     []string
	err       error
	// failWithdraw and failRestore make that many next calls fail.
	failWithdraw, failRestore int
	// extra are forwards installed but not configured; Remove drops them.
	extra   []forward.Forward
	removed []forward.Forward
	reads   int // Status calls
	// held: new connections to the service port are held; failHold
	// makes Hold fail.
	held, failHold bool
}

func (f *fakeForwarder) record(op string) error {
	f.calls = append(f.calls, fmt.Sprintf("%s@%s", op, f.store.last()))
	return f.err
}
func (f *fakeForwarder) Apply(_ context.Context, _ ...forward.Forward) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = true
	return f.record("apply")
}
func (f *fakeForwarder) Withdraw(context.Context, ...forward.Forward) error {
	return f.set("withdraw", &f.failWithdraw, true)
}
func (f *fakeForwarder) Restore(context.Context, ...forward.Forward) error {
	return f.set("restore", &f.failRestore, false)
}

// set withdraws or restores the forward, unless *failing says the call
// fails (it counts down).
func (f *fakeForwarder) set(op string, failing *int, withdrawn bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if *failing > 0 {
		*failing--
		f.record(op + "-failed")
		return errBoom
	}
	f.applied, f.withdrawn = true, withdrawn
	return f.record(op)
}
func (f *fakeForwarder) Remove(_ context.Context, fs ...forward.Forward) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, x := range fs {
		f.extra = slices.DeleteFunc(f.extra, func(y forward.Forward) bool { return x == y })
		f.removed = append(f.removed, x)
	}
	return f.record("remove")
}
func (f *fakeForwarder) Status(context.Context) ([]forward.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	var out []forward.Status
	for _, x := range f.extra {
		out = append(out, forward.Status{Forward: x, Applied: true, Rules: 2, Want: 2})
	}
	if !f.applied {
		return out, nil
	}
	s := forward.Status{Forward: fwd, Applied: true, Withdrawn: f.withdrawn, Held: f.held, Rules: 2, Want: 2}
	if f.withdrawn {
		s.Rules, s.Want = 4, 4
	}
	return append(out, s), nil
}

// Hold, HoldAll and Release hold new connections to the service port (a
// restart's listener gap); failHold makes Hold and HoldAll fail.
func (f *fakeForwarder) Hold(context.Context, ...forward.Forward) error { return f.hold("hold") }
func (f *fakeForwarder) HoldAll(context.Context, ...forward.Forward) error {
	return f.hold("hold-all")
}

// hold is Hold's and HoldAll's, recorded as call.
func (f *fakeForwarder) hold(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failHold {
		f.record(call + "-failed")
		return errBoom
	}
	f.held = true
	return f.record(call)
}
func (f *fakeForwarder) Release(context.Context, ...forward.Forward) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held = false
	return f.record("release")
}
func (f *fakeForwarder) isHeld() bool    { f.mu.Lock(); defer f.mu.Unlock(); return f.held }
func (f *fakeForwarder) Backend() string { return "fake" }
func (f *fakeForwarder) Close() error    { return nil }
func (f *fakeForwarder) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

var fwd = forward.Forward{From: 81, To: 80}

// fakeTable lists one busy connection while busy is set, else nothing. A
// gate, when set, blocks listing until it is closed (to hold an operation
// in progress).
type fakeTable struct {
	mu   sync.Mutex
	busy bool
	gate chan struct{}
}

func (t *fakeTable) Each(ctx context.Context, fn func(*conntable.Conn)) error {
	t.mu.Lock()
	gate, busy := t.gate, t.busy
	t.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if busy {
		fn(&conntable.Conn{Socket: conntable.Socket{Cookie: 1, Peer: netip.MustParseAddrPort("198.18.0.2:4000")}, Path: conntable.PathDirect})
	}
	return nil
}

type fakeRunner struct {
	mu                    sync.Mutex
	configErr, restartErr error
	calls                 []string
}

func (r *fakeRunner) ConfigTest(context.Context) (runner.Output, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "configtest")
	return runner.Output{Command: "apache2ctl -t", Output: "Syntax OK"}, r.configErr
}
func (r *fakeRunner) Restart(context.Context) (runner.Output, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, "restart")
	return runner.Output{Command: "apache2ctl -k graceful"}, r.restartErr
}

type fakeReady struct {
	mu    sync.Mutex
	err   error
	calls int
	// block, when set, makes Wait wait for its context (a server that
	// does not answer yet), after closing started.
	block   bool
	started chan struct{}
}

func (r *fakeReady) Wait(ctx context.Context) error {
	r.mu.Lock()
	r.calls++
	block, started := r.block, r.started
	r.mu.Unlock()
	if block {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// fakeClock advances only when the engine (the drain) sleeps.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.t = c.t.Add(d)
	t := c.t
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- t
	return ch
}
func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

var errBoom = errors.New("boom")
