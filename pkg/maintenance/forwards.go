package maintenance

// The forwards: the engine's one way to the forwarder.

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/drainctl/drainctl/pkg/forward"
)

// forwards holds the forwarder and the configured forwards. Every call
// to the forwarder goes through with, which serialises them and makes a
// change of the forwards and the transition announcing it one step as a
// reconcile sees it (a reconcile that read the phase just before a
// withdraw could otherwise undo it). It also keeps the last read for
// Snapshot, and marks it out of date at every change (fwx.change), so a
// scrape reads the forwards again only when the engine changed them.
//
// Lock order: mu before the ledger's, never inside it (the ledger calls
// nobody).
type forwards struct {
	fw   forward.Forwarder
	want []forward.Forward // the configured forwards

	mu      sync.Mutex
	changed atomic.Bool
	last    atomic.Pointer[[]forward.Status]
}

func newForwards(fw forward.Forwarder, want []forward.Forward) *forwards {
	return &forwards{fw: fw, want: want}
}

// with runs fn with the forwarder to itself.
func (f *forwards) with(fn func(x fwx) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn(fwx{f})
}

// stale says whether the engine changed the forwards since the last read
// (or a read failed).
func (f *forwards) stale() bool { return f.changed.Load() }

// lastRead is the forwards as last read.
func (f *forwards) lastRead() []forward.Status {
	if p := f.last.Load(); p != nil {
		return *p
	}
	return nil
}

// fwx is the forwarder while forwards.with holds it: only with hands one
// out, so no call to the forwarder is made without the lock.
type fwx struct{ f *forwards }

// change is one change of the forwards: forward.Forwarder.Withdraw,
// Restore or Remove (a method expression).
type change func(forward.Forwarder, context.Context, ...forward.Forward) error

// all is the configured forwards.
func (x fwx) all() []forward.Forward { return x.f.want }

// configured says whether fw is one of the configured forwards.
func (x fwx) configured(fw forward.Forward) bool { return slices.Contains(x.f.want, fw) }

// do makes the change c to fs, and marks the last read out of date.
func (x fwx) do(ctx context.Context, c change, fs ...forward.Forward) error {
	x.f.changed.Store(true)
	return c(x.f.fw, ctx, fs...)
}

// read reads the forwards and keeps them for Snapshot.
func (x fwx) read(ctx context.Context) ([]forward.Status, error) {
	x.f.changed.Store(false) // a change during the read marks it again
	fs, err := x.f.fw.Status(ctx)
	if err != nil {
		x.f.changed.Store(true)
		return nil, err
	}
	x.f.last.Store(&fs)
	return fs, nil
}
