package pool

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Member is one host of the pool as etcd knows it.
type Member struct {
	ID string `json:"id"`
	// Live: its agent's lease is current.
	Live bool `json:"live"`
	// LastSeen is when it joined, or, once gone, when it left (members.go).
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Health is what its agent last said of its server (health.go); nil
	// from an agent that says nothing (an older drainctl): in service
	// while it is live.
	Health *Health `json:"health,omitempty"`
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
	// Malformed are the keys under the pool's prefix that drainctl could
	// not read, and what it made of each: reported, never fatal. A key
	// that says a slot is held or the pool paused still counts, as
	// whatever it is (the budget is kept on what is there, readable or
	// not); anything else is left aside.
	Malformed []Malformed `json:"malformed,omitempty"`
	// Settings are the pool's own (its max_unavailable): nil until the
	// first agent seeds them, or when they cannot be read.
	Settings *Settings `json:"settings,omitempty"`
	// SettingsError says why the pool's settings cannot be used (not
	// JSON, no limit, a layout this drainctl does not know): then no
	// slot is granted, whatever the count (fail closed).
	SettingsError string `json:"settings_error,omitempty"`
	// Revision is etcd's revision the state was read at.
	Revision int64 `json:"-"`
	// registered is how many members the pool has, when Members lists
	// only those out (readBudget); 0: Members is every one.
	registered int
}

// Malformed is one key of the pool drainctl could not read.
type Malformed struct {
	Key string `json:"key"`
	// Why it could not be read, and what was made of it ("counted as a
	// held slot", "left aside").
	Why string `json:"why"`
}

// Size is the number of hosts the pool counts for a percentage: every
// registered member, live or gone (until forgotten): a dead host does
// not shrink the base, or the budget would shrink as hosts fail and a
// percentage let more of what is left go. A holder that never
// registered (a key written by hand) is not in the base.
func (s State) Size() int {
	if s.registered > 0 {
		return s.registered
	}
	return len(s.Members)
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
	p.reads.Add(1)
	resp, err := call(ctx, p, "read the pool", func(ctx context.Context, cli *clientv3.Client) (*clientv3.GetResponse, error) {
		return cli.Get(ctx, p.prefix, clientv3.WithPrefix())
	})
	if err != nil {
		return State{}, err
	}
	return p.stateOf(resp.Header.Revision, resp.Kvs), nil
}

// stateOf makes the pool's state of its keys read at revision rev.
func (p *Pool) stateOf(rev int64, kvs []*mvccpb.KeyValue) State {
	st := State{Name: p.cfg.Name, Revision: rev}
	var waiters []Waiter
	members := map[string]*Member{}
	memberOf := func(id string) *Member {
		if members[id] == nil {
			members[id] = &Member{ID: id}
		}
		return members[id]
	}
	for _, kv := range kvs {
		key := string(kv.Key)
		kind, id, _ := strings.Cut(strings.TrimPrefix(key, p.prefix), "/")
		bad := func(err error, made string) {
			st.Malformed = append(st.Malformed, Malformed{Key: key, Why: err.Error() + ": " + made})
		}
		if err := checkID(kind, id); err != nil {
			// Not one of drainctl's keys as it writes them; a holder's
			// still counts (someone holds a slot by it).
			if kind == "holders" {
				st.Holders = append(st.Holders, Claim{ID: id, Op: "unknown"})
				bad(err, "counted as a held slot")
			} else {
				bad(err, "left aside")
			}
			continue
		}
		switch kind {
		case "holders":
			c, err := claimOf(id, kv.Value)
			if err != nil {
				bad(err, "counted as a held slot")
			}
			st.Holders = append(st.Holders, c)
		case "waiters":
			var w Waiter
			if err := json.Unmarshal(kv.Value, &w); err != nil {
				// Out of the line: the line only orders the grants, and
				// a key no agent wrote would hold everyone behind it.
				bad(err, "left out of the line")
				continue
			}
			w.ID = id
			w.rev = kv.CreateRevision
			waiters = append(waiters, w)
		case "members", "seen", "health":
			memberKey(kind, kv.Value, func() *Member { return memberOf(id) }, bad)
		case "paused", "settings":
			st.own(kind, kv.Value, bad)
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
	return st
}

// memberKey reads one of a member's keys into its record (member makes
// it): a member exists for a key that can be read.
func memberKey(kind string, v []byte, member func() *Member, bad func(error, string)) {
	switch kind {
	case "members":
		member().Live = true
	case "seen":
		var t time.Time
		if err := json.Unmarshal(v, &t); err != nil {
			// Not a member on its account: a junk key must not count
			// as a host gone (that would hold the budget).
			bad(err, "left aside (when it was last seen is not known)")
			return
		}
		member().LastSeen = t
	case "health":
		var h Health
		if err := json.Unmarshal(v, &h); err != nil {
			// Its agent writes it again at its next change; until then
			// the member counts by its lease alone.
			bad(err, "left aside (its health is not known)")
			return
		}
		member().Health = &h
	}
}

// own reads one of the pool's own keys (kind alone, no host's id).
func (st *State) own(kind string, v []byte, bad func(error, string)) {
	switch kind {
	case "paused":
		var pz Pause
		if err := json.Unmarshal(v, &pz); err != nil {
			pz = Pause{Reason: "a pause record drainctl cannot read"}
			bad(err, "the pool counts as paused")
		}
		st.Paused = &pz
	case "settings":
		ps, err := parseSettings(v)
		if err != nil {
			st.SettingsError = err.Error()
			bad(err, "no slot is granted until they are mended (drainctl pool set max-unavailable)")
			return
		}
		st.Settings = &ps
	}
}

// percent says whether the pool's limit is a percentage of its members.
func (st State) percent() bool { return st.Settings != nil && st.Settings.MaxUnavailable.percent }

// claimOf reads host id's holder key: its claim, or, when the value
// cannot be read, a claim of an unknown operation with the error: the
// key holds the slot all the same.
func claimOf(id string, v []byte) (Claim, error) {
	var c Claim
	err := json.Unmarshal(v, &c)
	if err != nil {
		c = Claim{Op: "unknown"}
	}
	c.ID = id
	return c, err
}

// kinds are the pool's keys, and whether each names a host
// (KIND/ID) or is the pool's own (KIND alone).
var kinds = map[string]bool{"holders": true, "waiters": true, "members": true, "seen": true, "health": true, "paused": false, "settings": false, "budget": false}

// checkID says whether a key of kind with id (what follows "KIND/") is
// one drainctl writes: a known kind, and an id where one belongs, with
// no "/" (Open refuses one in a host's id, so no host's key can be
// read as another's, and web1's never as web10's).
func checkID(kind, id string) error {
	perHost, ok := kinds[kind]
	switch {
	case !ok:
		return fmt.Errorf("unknown key %q", kind)
	case perHost && (id == "" || strings.Contains(id, "/")):
		return fmt.Errorf("host id %q: not one a host can have", id)
	case !perHost && id != "":
		return fmt.Errorf("%s takes no id", kind)
	}
	return nil
}

// Status reads the pool: members, holders, waiters, and whether it is paused.
// The pool's settings read are kept (Settings) for what asks without a
// request.
func (p *Pool) Status(ctx context.Context) (State, error) {
	st, err := p.read(ctx)
	if err == nil {
		p.known(st.Settings, st.SettingsError)
	}
	return st, err
}
