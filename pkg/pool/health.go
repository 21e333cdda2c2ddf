package pool

// Health: what each member's agent says of its own server, and the
// pool's budget counted on it. A slot counts what drainctl takes out; a
// crashed web server, a host whose agent is gone, or a server the load
// balancers see refusing is out all the same, and a grant that counted
// only slots let the last server standing go. So a grant counts every
// member that is out, for whatever reason (Unavailable), as Kubernetes'
// PodDisruptionBudget counts the pods that are not ready.

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Health is a member's own account of its server, in health/ID (no
// lease: it is the host's, and says how the host was last seen when its
// agent is gone). The key is there only while the member is out of
// service: its agent writes it when it goes out (or out for another
// reason) and deletes it when it is back, never periodically. So what a
// grant reads of the members' health (every key under health/) is what
// is out, not the whole fleet: at 5,000 members, in service, a handful
// of keys, not 5,000.
type Health struct {
	// InService: the server is in rotation as far as its agent sees:
	// the web server answers its readiness check, and the load
	// balancers that check it have their checks accepted.
	InService bool `json:"in_service"`
	// Why it is not, for people ("web server not answering: ...").
	Why string `json:"why,omitempty"`
	// Since is when it last went in or out of service.
	Since time.Time `json:"since"`
	// Gone: written not by its agent but by the member that saw its
	// lease end (recordDeparture): "agent gone" since then. Ignored once
	// the member is live again (its agent deletes it at its next
	// judgement).
	Gone bool `json:"gone,omitempty"`
}

// Out is one member counted against the pool's budget, and why.
type Out struct {
	ID  string `json:"id"`
	Why string `json:"why"`
	// Since is when it went out, when known.
	Since time.Time `json:"since,omitzero"`
	// Slot: it holds a slot (it is also counted while it holds none).
	Slot bool `json:"slot,omitempty"`
}

// Text is one line for people: "web3: web server not answering since
// 03:02".
func (o Out) Text() string {
	s := o.ID + ": " + o.Why
	if !o.Since.IsZero() {
		s += " since " + o.Since.Local().Format(sinceLayout(o.Since))
	}
	return s
}

// sinceLayout is how a time is said: its time of day when it is today,
// its date too when not.
func sinceLayout(t time.Time) string {
	y, m, d := t.Local().Date()
	if ny, nm, nd := time.Now().Date(); ny == y && nm == m && nd == d {
		return "15:04:05"
	}
	return "2006-01-02 15:04"
}

// Unavailable lists the members counted against the budget, each once:
// those that hold a slot, those whose agent is gone (its lease ended)
// and not forgotten, and those whose agent says they are out of
// service. In that order, then by id.
func (s State) Unavailable() []Out {
	var out []Out
	seen := map[string]bool{}
	for _, h := range s.Holders {
		why := "holds a slot (" + h.Op
		if h.Reason != "" {
			why += ": " + h.Reason
		}
		if h.By != "" {
			why += ", by " + h.By
		}
		out = append(out, Out{ID: h.ID, Why: why + ")", Since: h.Since, Slot: true})
		seen[h.ID] = true
	}
	var others []Out
	for _, m := range s.Members {
		if seen[m.ID] {
			continue
		}
		switch {
		case !m.Live:
			others = append(others, Out{ID: m.ID, Why: "agent gone", Since: m.LastSeen})
		case m.Health != nil && !m.Health.InService && !m.Health.Gone:
			others = append(others, Out{ID: m.ID, Why: cmp.Or(m.Health.Why, "out of service"), Since: m.Health.Since})
		}
	}
	slices.SortFunc(others, func(a, b Out) int { return strings.Compare(a.ID, b.ID) })
	return append(out, others...)
}

// isOut says whether id is counted against the budget.
func isOut(outs []Out, id string) bool {
	return slices.ContainsFunc(outs, func(o Out) bool { return o.ID == id })
}

// PublishHealth makes the pool's record of this member say h, if it
// does not already: out of service, its health key holds why; in
// service, there is none (deleted). An agent whose server stays as it
// was writes nothing (no revision), whatever it is asked, and a
// restarted agent that finds the same account there writes nothing
// either. A record the pool has that this agent did not write (its
// departure, recorded while it was gone) is replaced at the first call.
func (p *Pool) PublishHealth(ctx context.Context, h Health) error {
	p.mu.Lock()
	last := p.health
	p.mu.Unlock()
	k := p.key("health", p.cfg.ID)
	if last == nil {
		resp, err := call(ctx, p, "read this host's health", func(ctx context.Context, cli *clientv3.Client) (*clientv3.GetResponse, error) {
			return cli.Get(ctx, k)
		})
		if err != nil {
			return err
		}
		was := Health{InService: true} // no record: in service
		if len(resp.Kvs) > 0 {
			if err := json.Unmarshal(resp.Kvs[0].Value, &was); err != nil || was.InService {
				// Unreadable, or an in-service record (an earlier
				// build's): not this agent's account, replaced as a
				// departure record is.
				was = Health{Gone: true}
			}
		}
		last = &was
	}
	if last.InService == h.InService && last.Why == h.Why && !last.Gone {
		p.setHealth(last)
		return nil
	}
	if h.InService {
		h = Health{InService: true}
		if _, err := call(ctx, p, "publish this host's health", func(ctx context.Context, cli *clientv3.Client) (*clientv3.DeleteResponse, error) {
			return cli.Delete(ctx, k)
		}); err != nil {
			return err
		}
		p.setHealth(&h)
		return nil
	}
	if !last.InService && !last.Gone {
		h.Since = last.Since // still out, for another reason: out since the first
	}
	if h.Since.IsZero() {
		h.Since = time.Now().UTC()
	}
	h.Gone = false
	v, _ := json.Marshal(h)
	// Out without a slot adds to what is out: the budget key is touched
	// with it, so a grant decided before fails (grant). With a slot it
	// adds nothing, and touching the key would fail every grant in
	// flight for nothing.
	if _, err := call(ctx, p, "publish this host's health", func(ctx context.Context, cli *clientv3.Client) (*clientv3.TxnResponse, error) {
		return cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(p.key("holders", p.cfg.ID)), ">", 0)).
			Then(clientv3.OpPut(k, string(v))).
			Else(clientv3.OpPut(k, string(v)), clientv3.OpPut(p.budgetKey(), p.cfg.ID+" out of service")).Commit()
	}); err != nil {
		return err
	}
	p.setHealth(&h)
	return nil
}

// setHealth keeps what the pool now has of this member's health (nil:
// not known, read it again at the next PublishHealth).
func (p *Pool) setHealth(h *Health) {
	p.mu.Lock()
	p.health = h
	p.mu.Unlock()
}

// Forgotten is what Forget removed of a member.
type Forgotten struct {
	ID string `json:"id"`
	// Slot is the slot it held, freed with it.
	Slot *Claim `json:"slot,omitempty"`
	// Known: the pool knew of it (false: nothing was removed).
	Known bool `json:"known"`
}

// Forget removes a member that is gone for good from the pool: its
// record (seen, health), its slot and its place in line, so it no
// longer counts against the budget nor in a percentage's base. A live
// member is refused (ErrLiveMember): its agent is running, and would
// count again at its next change; stop it first. One transaction, which
// holds only if the member has not come back meanwhile.
func (p *Pool) Forget(ctx context.Context, id string) (Forgotten, error) {
	if err := checkID("members", id); err != nil {
		return Forgotten{}, fmt.Errorf("pool %s: %q is not a member id", p.cfg.Name, id)
	}
	st, err := p.read(ctx)
	if err != nil {
		return Forgotten{}, err
	}
	f := Forgotten{ID: id, Slot: st.holder(id)}
	m := st.member(id)
	f.Known = m != nil || f.Slot != nil
	if m != nil && m.Live {
		return Forgotten{}, fmt.Errorf("pool %s: %s is a live member (its agent runs): stop its agent, or remove it from the pool in its configuration, first: %w", p.cfg.Name, id, ErrLiveMember)
	}
	if !f.Known {
		return f, nil
	}
	var ops []clientv3.Op
	for _, kind := range []string{"holders", "waiters", "seen", "health"} {
		ops = append(ops, clientv3.OpDelete(p.key(kind, id)))
	}
	resp, err := call(ctx, p, "forget "+id, func(ctx context.Context, cli *clientv3.Client) (*clientv3.TxnResponse, error) {
		return cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(p.key("members", id)), "=", 0)).Then(ops...).Commit()
	})
	if err != nil {
		return Forgotten{}, err
	}
	if !resp.Succeeded {
		return Forgotten{}, fmt.Errorf("pool %s: %s came back meanwhile (its agent runs): %w", p.cfg.Name, id, ErrLiveMember)
	}
	return f, nil
}
