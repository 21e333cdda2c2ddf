package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Wait is what a host waiting for a slot is shown: what uses the
// budget (the slots held, and every other member out), how much is
// allowed, how many wait ahead of it, and a pause if any.
type Wait struct {
	Pool    string  `json:"pool"`
	Allowed int     `json:"allowed"`
	Holders []Claim `json:"holders"`
	// Unavailable is every member counted against the budget, holders
	// first (State.Unavailable).
	Unavailable []Out  `json:"unavailable"`
	Ahead       int    `json:"ahead"`
	Paused      *Pause `json:"paused,omitempty"`
	// Refused says why no slot is granted whatever the count: the
	// pool's settings cannot be read, or are of a layout this drainctl
	// does not know.
	Refused string `json:"refused,omitempty"`
}

// Text is one line for a terminal: "pool web: 1/1 unavailable — web3,
// kernel update, by root, 4m0s ago", or for a member out without a
// slot, "— web3: web server not answering since 03:02".
func (w Wait) Text(now time.Time) string {
	var b strings.Builder
	outs := w.Unavailable
	if outs == nil {
		// Told by a drainctl that counted slots alone: its holders.
		outs = State{Holders: w.Holders}.Unavailable()
	}
	fmt.Fprintf(&b, "pool %s: %d/%d unavailable", w.Pool, len(outs), w.Allowed)
	for i, o := range outs {
		sep := ", "
		if i == 0 {
			sep = " — "
		}
		b.WriteString(sep)
		h := slices.IndexFunc(w.Holders, func(c Claim) bool { return c.ID == o.ID })
		if h < 0 {
			b.WriteString(o.Text())
			continue
		}
		b.WriteString(w.Holders[h].text(now))
	}
	if w.Ahead > 0 {
		fmt.Fprintf(&b, "; %d waiting ahead", w.Ahead)
	}
	if w.Refused != "" {
		b.WriteString("; no slot is granted: " + w.Refused)
	}
	if w.Paused != nil {
		b.WriteString("; paused")
		if w.Paused.By != "" {
			b.WriteString(" by " + w.Paused.By)
		}
		if w.Paused.Reason != "" {
			b.WriteString(": " + w.Paused.Reason)
		}
	}
	return b.String()
}

// text says a held slot for people: "web3, kernel update, by root,
// 4m0s ago".
func (h Claim) text(now time.Time) string {
	s := h.ID
	if h.Reason != "" {
		s += ", " + h.Reason
	} else if h.Op != "" {
		s += ", " + h.Op
	}
	if h.By != "" {
		s += ", by " + h.By
	}
	return s + ", " + now.Sub(h.Since).Round(time.Second).String() + " ago"
}

// Acquire takes a slot for c.ID, waiting in line while the pool's
// budget is used (State.Unavailable: the slots held and every member
// out otherwise) or the pool is paused; wait, if not nil, is called each
// time what it waits for changes. A host that holds its slot already
// gets it back at once (after a restart or a reboot), and one already
// counted out takes one without waiting: mending it adds nothing to
// what is out. The limit is the pool's (Settings), read
// with the rest of the state; a pool without settings is seeded first
// with this host's. It returns the claim held, or an error:
// ctx's (the waiter's place is given up), or ErrUnavailable (nothing was
// taken). Idempotent.
func (p *Pool) Acquire(ctx context.Context, c Claim, wait func(Wait)) (Claim, error) {
	c.ID = p.cfg.ID
	if c.Since.IsZero() {
		c.Since = time.Now()
	}
	queued := false
	defer func() {
		if queued {
			p.leaveLine(context.WithoutCancel(ctx))
		}
	}()
	var last string
	fast, lost := true, 0
	for {
		st, err := p.readSeeded(ctx)
		if err != nil {
			return Claim{}, err
		}
		if h := st.holder(c.ID); h != nil {
			return *h, nil
		}
		allowed := st.Allowed()
		outs := st.Unavailable()
		if fast || isOut(outs, c.ID) {
			fast = false
			// Another host won it, or none was free: queue.
			ok, err := p.tryFree(ctx, st, c, allowed, outs)
			if ok {
				queued = false // the grant deleted the waiter key
			}
			if err != nil || ok {
				return c, err
			}
		}
		if !queued {
			if err := p.queue(ctx, c); err != nil {
				return Claim{}, err
			}
			queued = true
			continue // read again: the line now has this host in it
		}
		w := Wait{Pool: p.cfg.Name, Allowed: allowed, Holders: st.Holders, Unavailable: outs, Paused: st.Paused, Refused: st.SettingsError}
		w.Ahead = slices.IndexFunc(st.Waiters, func(x Waiter) bool { return x.ID == c.ID })
		if w.Ahead < 0 {
			// Our waiter key is gone: the lease expired while etcd was
			// away. Join the line again.
			queued = false
			continue
		}
		ok, err := p.takeTurn(ctx, st, w, c, func() { last = show(wait, w, last) }, &lost)
		if ok {
			queued = false // the grant deleted the waiter key
			return c, nil
		}
		if err != nil {
			return Claim{}, err
		}
	}
}

// takeTurn grants c if its turn has come by the state read (w), or,
// after shown is called, when it comes by the watch's count (waitTurn);
// false: not granted, read the pool again (what the watch could not
// count, or something counted changed since the decision: then after a
// few milliseconds more at each such miss, counted in lost, so waiters
// whose turns came together do not read and try in lockstep).
func (p *Pool) takeTurn(ctx context.Context, st State, w Wait, c Claim, shown func(), lost *int) (bool, error) {
	rev := int64(0) // the revision the turn came at, 0: not come
	if st.Paused == nil && st.SettingsError == "" && w.Ahead < w.Allowed-len(w.Unavailable) {
		rev = st.Revision
	} else {
		shown()
		var err error
		if rev, err = p.waitTurn(ctx, st, newTurn(st, w.Ahead)); err != nil || rev == 0 {
			return false, err
		}
	}
	// The turn came, by the read or by the watch's count (current at
	// rev: the decision needs no read of its own).
	ok, err := p.grant(ctx, rev, c)
	if err != nil || ok {
		return ok, err
	}
	traced("grant lost")
	*lost++
	sleep(ctx, rand.N(time.Duration(min(*lost, 5))*10*time.Millisecond))
	return false, ctx.Err()
}

// readSeeded reads the pool, seeding its settings first with this
// host's limit if it has none (if no other host's did first): every
// decision is made on the pool's own limit.
func (p *Pool) readSeeded(ctx context.Context) (State, error) {
	for {
		st, err := p.readBudget(ctx)
		if err != nil {
			return State{}, err
		}
		p.known(st.Settings, st.SettingsError)
		if st.Settings != nil || st.SettingsError != "" {
			return st, nil
		}
		if _, _, err := p.Seed(ctx); errors.Is(err, ErrUnavailable) {
			return State{}, err
		}
	}
}

// show tells wait what the waiter waits for, when it changed since last
// (the JSON of what it was last told), and returns what it told.
func show(wait func(Wait), w Wait, last string) string {
	b, _ := json.Marshal(w)
	if wait != nil && string(b) != last {
		wait(w)
	}
	return string(b)
}

// tryFree takes a free slot without queueing when nobody waits (two
// requests to etcd instead of five), or when this host is counted out
// already, whoever waits. It is tried once per Acquire: if another host
// won, hosts that came together would otherwise retry as a herd; in
// line they are served one by one.
func (p *Pool) tryFree(ctx context.Context, st State, c Claim, allowed int, outs []Out) (bool, error) {
	if st.Paused != nil || st.SettingsError != "" {
		return false, nil
	}
	if !isOut(outs, c.ID) && (len(st.Waiters) > 0 || len(outs) >= allowed) {
		return false, nil
	}
	return p.grant(ctx, st.Revision, c)
}

// queue puts c in line, on the agent's lease, keeping its place if it
// is there already.
func (p *Pool) queue(ctx context.Context, c Claim) error {
	lease, err := p.lease(ctx)
	if err != nil {
		return err
	}
	v, _ := json.Marshal(Waiter{Op: c.Op, Since: c.Since})
	k := p.key("waiters", c.ID)
	_, err = call(ctx, p, "join the line", func(ctx context.Context, cli *clientv3.Client) (*clientv3.TxnResponse, error) {
		return cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
			Then(clientv3.OpPut(k, string(v), clientv3.WithLease(lease))).Commit()
	})
	return err
}

// grant takes the slot if neither the holders, the members' health or
// departures, the pause nor the pool's settings changed (or went) since
// rev, the revision the decision was made on; false means they did (a
// limit lowered meanwhile is then obeyed, a member gone out meanwhile
// counted). A member joining is not compared: it only adds to the base.
// A
// grant whose answer did not come (a timeout, a connection lost) may
// have committed: it finds out (findOut) before it says.
func (p *Pool) grant(ctx context.Context, rev int64, c Claim) (bool, error) {
	if beforeGrant != nil {
		beforeGrant()
	}
	v, _ := json.Marshal(c)
	resp, err := call(ctx, p, "take a slot", func(ctx context.Context, cli *clientv3.Client) (*clientv3.TxnResponse, error) {
		return cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(p.prefix+"holders/"), "<", rev+1).WithPrefix(),
			// A member gone out of service since, or a departure recorded
			// (a lease's end leaves no key to compare, its record does):
			// each touches the budget key (budgetKey). Not the health/
			// range: a holder's own record (withdrawn, in maintenance)
			// changes nothing that is counted, and at 17 grants a second
			// those records made most grants fail and read again.
			clientv3.Compare(clientv3.ModRevision(p.budgetKey()), "<", rev+1),
			clientv3.Compare(clientv3.ModRevision(p.prefix+"paused"), "<", rev+1),
			clientv3.Compare(clientv3.ModRevision(p.settingsKey()), "<", rev+1),
			clientv3.Compare(clientv3.CreateRevision(p.settingsKey()), ">", 0), // not deleted since
		).Then(
			clientv3.OpPut(p.key("holders", c.ID), string(v)),
			clientv3.OpDelete(p.key("waiters", c.ID)),
		).Commit()
	})
	if err != nil {
		if p.findOut(ctx, string(v)) {
			return true, nil
		}
		return false, fmt.Errorf("%w (it may still commit: the agent asks the pool until it knows)", err)
	}
	return resp.Succeeded, nil
}

// budgetKey is the key every change that may add a member to what is
// out touches, other than a grant (which the holders' compare sees): a
// member without a slot going out of service, a departure recorded. Its
// value says who touched it last; a grant compares its mod revision.
func (p *Pool) budgetKey() string { return p.prefix + "budget" }

// trace, set by benchmarks only, is told what a waiter did and why
// ("read", "read whole", "grant", "grant lost", "wake: ..."): where
// etcd's work comes from.
var trace func(what string)

func traced(what string) {
	if trace != nil {
		trace(what)
	}
}

// beforeGrant, set by tests only, runs between the decision and its
// transaction: where a concurrent change races a grant.
var beforeGrant func()

// leaveLine deletes this host's waiter key whatever happened: a waiter
// that gave up must not keep its place (the lease would end it, later).
func (p *Pool) leaveLine(ctx context.Context) {
	if cli, err := p.client(ctx); err == nil {
		cli.Delete(ctx, p.key("waiters", p.cfg.ID))
	}
}

// findOutFor bounds findOut: a few tries, as etcd comes back from what
// lost the answer (a connection reset takes the client about a second
// to make again).
const findOutFor = 3 * time.Second

// findOut reads this host's holder key after a grant whose answer was
// lost: true if it holds claim (the grant committed). A read that fails
// too, or finds nothing, is false: not known to be held. The caller
// says nothing was taken, and the agent's releaser asks again later (a
// grant still in flight may commit after the read).
func (p *Pool) findOut(ctx context.Context, claim string) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), findOutFor)
	defer cancel()
	for {
		// Each try bounded on its own: a connection that swallows the
		// answers holds a request until its deadline.
		actx, acancel := context.WithTimeout(ctx, time.Second)
		cli, err := p.client(actx)
		var resp *clientv3.GetResponse
		if err == nil {
			resp, err = cli.Get(actx, p.key("holders", p.cfg.ID))
		}
		acancel()
		if err == nil {
			return len(resp.Kvs) > 0 && string(resp.Kvs[0].Value) == claim
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Release frees this host's slot. Idempotent: releasing a slot not held
// is no error. Failing to reach etcd is ErrUnavailable: the caller
// retries, since the slot stays held until it succeeds.
func (p *Pool) Release(ctx context.Context) error {
	_, err := call(ctx, p, "release the slot", func(ctx context.Context, cli *clientv3.Client) (*clientv3.DeleteResponse, error) {
		return cli.Delete(ctx, p.key("holders", p.cfg.ID))
	})
	return err
}

// Held reports whether this host holds a slot, and the claim. It reads
// this host's key alone: the agent asks it periodically (a slot granted
// whose answer was lost), and a pool of thousands must not be read
// whole by each of its hosts every minute.
func (p *Pool) Held(ctx context.Context) (*Claim, error) {
	resp, err := call(ctx, p, "read this host's slot", func(ctx context.Context, cli *clientv3.Client) (*clientv3.GetResponse, error) {
		return cli.Get(ctx, p.key("holders", p.cfg.ID))
	})
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	c, _ := claimOf(p.cfg.ID, resp.Kvs[0].Value) // unreadable: held all the same
	return &c, nil
}

// ReleaseFor frees the slot of another host, one that is gone for good.
// A live member's slot is refused unless force: it frees its own once
// back in rotation. It returns the claim freed (nil: none was held).
func (p *Pool) ReleaseFor(ctx context.Context, id string, force bool) (*Claim, error) {
	st, err := p.read(ctx)
	if err != nil {
		return nil, err
	}
	h := st.holder(id)
	if h == nil {
		return nil, nil
	}
	if m := st.member(id); m != nil && m.Live && !force {
		return nil, fmt.Errorf("pool %s: %s is a live member: its agent releases the slot once the server is back in rotation (--force frees it anyway): %w", p.cfg.Name, id, ErrLiveMember)
	}
	_, err = call(ctx, p, "release "+id+"'s slot", func(ctx context.Context, cli *clientv3.Client) (*clientv3.DeleteResponse, error) {
		return cli.Delete(ctx, p.key("holders", id))
	})
	return h, err
}

// Pause stops the pool granting slots (held ones stay held) until Resume.
// Idempotent: pausing again keeps the first record.
func (p *Pool) Pause(ctx context.Context, pz Pause) error {
	if pz.Since.IsZero() {
		pz.Since = time.Now()
	}
	v, _ := json.Marshal(pz)
	k := p.prefix + "paused"
	_, err := call(ctx, p, "pause", func(ctx context.Context, cli *clientv3.Client) (*clientv3.TxnResponse, error) {
		return cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).Then(clientv3.OpPut(k, string(v))).Commit()
	})
	return err
}

// Resume lets the pool grant slots again. Idempotent.
func (p *Pool) Resume(ctx context.Context) error {
	_, err := call(ctx, p, "resume", func(ctx context.Context, cli *clientv3.Client) (*clientv3.DeleteResponse, error) {
		return cli.Delete(ctx, p.prefix+"paused")
	})
	return err
}
