package pool

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Member is one host of the pool as etcd knows it.
type Member struct {
	ID string `json:"id"`
	// Live: its agent's lease is current.
	Live bool `json:"live"`
	// LastSeen is when its agent last said it was alive.
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// Waiter is a host waiting for a slot, in the order they are served.
type Waiter struct {
	ID    string    `json:"id"`
	Op    string    `json:"op,omitempty"`
	Since time.Time `json:"since"`
	rev   int64     // create revision: the place in line
}

// State is the pool at one revision of etcd.
type State struct {
	Name    string   `json:"name"`
	Members []Member `json:"members"`
	Holders []Claim  `json:"holders"`
	Waiters []Waiter `json:"waiters"`
	Paused  *Pause   `json:"paused,omitempty"`
	// Revision is etcd's revision the state was read at.
	Revision int64 `json:"-"`
}

// Size is the number of hosts the pool counts for a percentage: the live
// members, and the holders that are not (a host rebooting is still one
// of the pool's servers, out).
func (s State) Size() int {
	n := 0
	for _, m := range s.Members {
		if m.Live || s.holder(m.ID) != nil {
			n++
		}
	}
	return n
}

func (s State) holder(id string) *Claim {
	for i := range s.Holders {
		if s.Holders[i].ID == id {
			return &s.Holders[i]
		}
	}
	return nil
}

func (s State) member(id string) *Member {
	for i := range s.Members {
		if s.Members[i].ID == id {
			return &s.Members[i]
		}
	}
	return nil
}

// read fetches every key of the pool in one request, so what a grant
// decides on is one consistent revision.
func (p *Pool) read(ctx context.Context) (State, error) {
	resp, err := call(ctx, p, "read the pool", func(ctx context.Context) (*clientv3.GetResponse, error) {
		return p.cli.Get(ctx, p.prefix, clientv3.WithPrefix())
	})
	if err != nil {
		return State{}, err
	}
	st := State{Name: p.cfg.Name, Revision: resp.Header.Revision}
	var waiters []Waiter
	members := map[string]*Member{}
	memberOf := func(id string) *Member {
		if members[id] == nil {
			members[id] = &Member{ID: id}
		}
		return members[id]
	}
	for _, kv := range resp.Kvs {
		kind, id, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), p.prefix), "/")
		var err error
		switch kind {
		case "holders":
			var c Claim
			err = json.Unmarshal(kv.Value, &c)
			c.ID = id
			st.Holders = append(st.Holders, c)
		case "waiters":
			var w Waiter
			err = json.Unmarshal(kv.Value, &w)
			w.ID = id
			w.rev = kv.CreateRevision
			waiters = append(waiters, w)
		case "members":
			memberOf(id).Live = true
		case "seen":
			var t time.Time
			err = json.Unmarshal(kv.Value, &t)
			memberOf(id).LastSeen = t
		case "paused":
			var pz Pause
			err = json.Unmarshal(kv.Value, &pz)
			st.Paused = &pz
		}
		if err != nil {
			return State{}, fmt.Errorf("pool %s: key %s: %w", p.cfg.Name, kv.Key, err)
		}
	}
	// First come, first served: the order the waiter keys were made.
	slices.SortFunc(waiters, func(a, b Waiter) int { return int(a.rev - b.rev) })
	st.Waiters = waiters
	for _, m := range members {
		st.Members = append(st.Members, *m)
	}
	slices.SortFunc(st.Members, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(st.Holders, func(a, b Claim) int { return a.Since.Compare(b.Since) })
	return st, nil
}

// Status reads the pool: members, holders, waiters, and whether it is paused.
func (p *Pool) Status(ctx context.Context) (State, error) { return p.read(ctx) }
