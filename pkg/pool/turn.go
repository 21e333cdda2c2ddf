package pool

// A waiter's turn, counted from its watch of the pool (waitTurn): what
// it needs to know whether it may go, kept from the events, so that
// neither every change nor its own turn costs a read of the pool.

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// turn is where a waiter stands, kept from the events of its watch:
// which waiters are ahead of it, what is counted out (by why, so a
// member back from one is still counted for another), and the pool's
// size and limit (a percentage moves with the members).
type turn struct {
	ahead                 map[string]bool
	holders, health, gone map[string]bool
	size                  int
	limit                 Limit
	// blocked: paused, or the settings unusable; no turn comes.
	blocked bool
}

func newTurn(st State, ahead int) turn {
	t := turn{ahead: map[string]bool{}, holders: map[string]bool{}, health: map[string]bool{}, gone: map[string]bool{}, size: st.Size()}
	if st.Settings != nil {
		t.limit = st.Settings.MaxUnavailable
	}
	t.blocked = st.Paused != nil || st.Settings == nil || st.SettingsError != ""
	for _, w := range st.Waiters[:ahead] {
		t.ahead[w.ID] = true
	}
	for _, h := range st.Holders {
		t.holders[h.ID] = true
	}
	for _, m := range st.Members {
		switch {
		case !m.Live:
			t.gone[m.ID] = true
		case m.Health != nil && !m.Health.InService && !m.Health.Gone:
			t.health[m.ID] = true
		}
	}
	return t
}

// out is how many members are counted out: each once, whatever why.
func (t *turn) out() int {
	n := len(t.holders)
	for id := range t.health {
		if !t.holders[id] {
			n++
		}
	}
	for id := range t.gone {
		if !t.holders[id] && !t.health[id] {
			n++
		}
	}
	return n
}

// may says whether the waiter's turn may have come: fewer ahead of it
// than the budget left. Never while the pool is paused or its settings
// unusable: only their change (count's false) sends it back to read.
func (t *turn) may() bool {
	return !t.blocked && len(t.ahead) < t.limit.Allowed(t.size)-t.out()
}

// waitTurn returns when the waiter's turn has come by its count: the
// revision its count is current at, which a grant can be decided on
// without reading the pool (its transaction's compares catch any change
// counted since). It counts the pool's changes from the watch itself:
// a release, a member out of service or back, a member leaving or
// joining reaches every waiter as one event, and a waiter neither reads
// the pool at each (with 500 waiting, a read by each at every change is
// what etcd would otherwise serve) nor when its turn comes (at 5,000
// members and 17 grants a second, those reads were most of etcd's
// work). The watch asks for no previous values (etcd reads one for each
// event and each watcher): the waiters ahead are known by id. What it
// cannot count (a pause, the settings, a record it cannot read, its own
// place gone) returns 0, to read again, and so does a wake-up about once
// a minute (jittered, so the waiters of a pool do not read together): a
// safety net, not the rule.
func (p *Pool) waitTurn(ctx context.Context, st State, t turn) (int64, error) {
	wctx, cancel := context.WithTimeout(ctx, wakeUp())
	defer cancel()
	cli, err := p.client(wctx)
	if err != nil {
		return 0, p.unavailable("watch the pool", err)
	}
	rev := st.Revision
	// Not WithRequireLeader: that ends every waiter's watch at each
	// election, and every waiter of the pool then reads it at once (at
	// 5,000 members, on an etcd short of CPU, that herd made the next
	// election). A waiter whose etcd member is cut off sees nothing until
	// it is back, or until its wake-up reads and fails.
	wch := cli.Watch(wctx, p.prefix, clientv3.WithPrefix(), clientv3.WithRev(st.Revision+1))
	for {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case r, ok := <-wch:
			if !ok || r.Err() != nil {
				traced("wake: watch ended")
				return 0, nil
			}
			for _, ev := range r.Events {
				if !t.count(p, ev) {
					traced("wake: cannot count " + strings.SplitN(strings.TrimPrefix(string(ev.Kv.Key), p.prefix), "/", 2)[0])
					return 0, nil
				}
				// A revision's events come in one response (no
				// fragments asked): the count is whole at each.
				rev = ev.Kv.ModRevision
			}
			if t.may() {
				traced("wake: turn")
				return rev, nil
			}
		}
	}
}

// wakeUp is how long a waiter waits on its watch before it reads the
// pool again whatever it saw: 45 to 75 s.
func wakeUp() time.Duration {
	return 45*time.Second + rand.N(30*time.Second)
}

// count applies one event to the turn; false means read the pool again.
func (t *turn) count(p *Pool, ev *clientv3.Event) bool {
	kind, id, _ := strings.Cut(strings.TrimPrefix(string(ev.Kv.Key), p.prefix), "/")
	del := ev.Type == clientv3.EventTypeDelete
	switch kind {
	case "holders":
		set(t.holders, id, !del)
	case "waiters":
		if id == p.cfg.ID {
			return !del // our place is gone (lease expired)
		}
		if del {
			delete(t.ahead, id) // served, or gave up; one behind us joined otherwise
		}
	case "health":
		if id == p.cfg.ID {
			return false // this host out: it may take its slot at once (Acquire)
		}
		var h Health
		if !del && json.Unmarshal(ev.Kv.Value, &h) != nil {
			return false
		}
		out := !del && !h.InService
		set(t.health, id, out && !h.Gone)
		if out && h.Gone {
			t.gone[id] = true
		}
	case "members":
		set(t.gone, id, del)
	case "budget":
		// touched with a change counted by its own key
	case "seen":
		if ev.IsCreate() {
			t.size++ // a member joined
		} else if del {
			t.size-- // forgotten
			delete(t.gone, id)
			delete(t.health, id)
		}
	default:
		return false // a pause or resume, the settings, a key drainctl does not write
	}
	return true
}

// set puts id in s, or takes it out.
func set(s map[string]bool, id string, in bool) {
	if in {
		s[id] = true
	} else {
		delete(s, id)
	}
}
