package pool

// Members: a live agent's key on its lease, and when a member was last
// seen, written at events only. An idle pool must write nothing but its
// lease keep-alives (which make no revision): etcd keeps every revision
// until it is compacted, and Debian's etcd runs with auto-compaction off,
// so a write per agent every 30 s (this file's first form) filled a 2 GB
// etcd in weeks for 200 agents, in a day for 5,000.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Register makes this agent a live member until ctx ends or the agent
// dies. It writes when the member joins (a new lease: the agent's start,
// or etcd away longer than the lease), and records the departure of the
// member after it in the order of ids (recordDepartures). Every period it checks,
// with a read, that its key is still on its lease. It returns when ctx
// ends, recording this member's own departure unless its lease is kept
// for the next start (Config.LeaseFile: a restart is no departure, and
// if no agent comes back the lease ends and its predecessor records it).
func (p *Pool) Register(ctx context.Context, period time.Duration) {
	go p.recordDepartures(ctx)
	for ctx.Err() == nil {
		p.register(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(period):
		}
	}
	if p.cfg.LeaseFile != "" {
		return
	}
	// A clean stop: gone from now on (Close ends the lease).
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.RequestTimeout)
	defer cancel()
	if cli, err := p.client(lctx); err == nil {
		cli.Txn(lctx).Then(p.departure(p.cfg.ID)...).Commit() //nolint:errcheck // etcd away: seen stays the join's time
	}
}

// departure is the record of member id's departure, now: when it left
// (seen), an "agent gone" health record (what names it gone without a
// read of every member), and the budget key touched (a grant decided
// before fails).
func (p *Pool) departure(id string) []clientv3.Op {
	now := time.Now().UTC()
	seen, _ := json.Marshal(now)
	gone, _ := json.Marshal(Health{Why: "agent gone", Since: now, Gone: true})
	return []clientv3.Op{clientv3.OpPut(p.key("seen", id), string(seen)), clientv3.OpPut(p.key("health", id), string(gone)),
		clientv3.OpPut(p.budgetKey(), id+" gone")}
}

// register puts the member key on the agent's lease, unless it is there
// already, with the time it joined in seen/ID, which outlives the lease.
// The check is a read of its own key: a transaction whose compare holds
// writes nothing either, but etcd treats any transaction that may write
// as a write, a proposal through raft to every member, and 5,000 agents
// checking every 30 s are 167 of those a second for nothing.
func (p *Pool) register(ctx context.Context) error {
	lease, err := p.lease(ctx)
	if err != nil {
		return err
	}
	k := p.key("members", p.cfg.ID)
	got, err := call(ctx, p, "check this member's key", func(ctx context.Context, cli *clientv3.Client) (*clientv3.GetResponse, error) {
		return cli.Get(ctx, k, clientv3.WithKeysOnly())
	})
	if err != nil {
		return err
	}
	if len(got.Kvs) == 1 && clientv3.LeaseID(got.Kvs[0].Lease) == lease {
		return nil
	}
	seen, _ := json.Marshal(time.Now().UTC())
	resp, err := call(ctx, p, "register", func(ctx context.Context, cli *clientv3.Client) (*clientv3.TxnResponse, error) {
		return cli.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(k), "=", lease)).Else(
			clientv3.OpPut(k, "", clientv3.WithLease(lease)),
			clientv3.OpPut(p.key("seen", p.cfg.ID), string(seen)),
		).Commit()
	})
	if err == nil && !resp.Succeeded {
		// Joined: a departure may have been recorded in its health
		// while it was gone; the next PublishHealth reads it and puts
		// this agent's own account in its place.
		p.setHealth(nil)
	}
	return err
}

// recordDepartures records, when a member's lease ends (an agent that
// died, or a host gone), when it left, so the pool says how long a
// member has been gone without anyone writing while nothing happens.
// Each departure is recorded once, by one agent: the departed member's
// predecessor, the live member whose id comes just before it, wrapping
// from the first to the last. Each agent watches only the ids after its
// own up to its successor's, so a departure or a join reaches one agent,
// not the whole fleet, and an agent's start reads one key, not every
// member's (at 5,000 agents starting together, 5,000 reads of one key
// rather than 25 million). A departure its predecessor misses (it died
// with the member) leaves seen at the member's join; the budget counts
// the member gone all the same, by its lease.
func (p *Pool) recordDepartures(ctx context.Context) {
	var rev int64
	for ctx.Err() == nil {
		if rev = p.watchSuccessor(ctx, rev); rev > 0 {
			continue // found again from where it left: no event missed
		}
		// etcd away or overloaded: 1 to 5 s, so a fleet's agents, whose
		// watches all end together, do not all read again together.
		select {
		case <-ctx.Done():
		case <-time.After(time.Second + rand.N(4*time.Second)):
		}
	}
}

// watchSuccessor finds this member's successor, as the pool was at
// revision at (0: now), and follows the ids after this member's own up
// to it, until the successor leaves (its departure recorded) or another
// member joins between them: then it returns the revision of that
// event, to find the successor again as of it. 0: the watch or a read
// failed (or ctx ended).
func (p *Pool) watchSuccessor(ctx context.Context, at int64) int64 {
	prefix := p.prefix + "members/"
	own := prefix + p.cfg.ID
	succ, rev, err := p.successor(ctx, prefix, own, at)
	if err != nil {
		return 0
	}
	cli, err := p.client(ctx)
	if err != nil {
		return 0
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The keys after own up to succ in the ring: one range, or two when
	// it wraps past the last id (succ is own itself when alone).
	after, through := own+"\x00", succ+"\x00"
	ranges := [][2]string{{after, through}}
	if succ <= own {
		ranges = [][2]string{{after, clientv3.GetPrefixRangeEnd(prefix)}, {prefix, through}}
	}
	events := make(chan clientv3.WatchResponse)
	for _, r := range ranges {
		go func() {
			// Not WithRequireLeader: that ends every watch of the fleet
			// at each election, and each agent then reads again. A member
			// cut off from its peers sends nothing until it is back, then
			// what happened meanwhile.
			for resp := range cli.Watch(wctx, r[0], clientv3.WithRange(r[1]), clientv3.WithRev(rev+1)) {
				select {
				case events <- resp:
				case <-wctx.Done():
					return
				}
			}
			cancel() // a watch ended: start again
		}()
	}
	for {
		var resp clientv3.WatchResponse
		select {
		case <-wctx.Done():
			return 0
		case resp = <-events:
		}
		if resp.Err() != nil {
			return 0
		}
		for _, ev := range resp.Events {
			key := string(ev.Kv.Key)
			if key == own {
				continue
			}
			if key == succ && ev.Type == clientv3.EventTypeDelete {
				p.recordDeparture(ctx, strings.TrimPrefix(key, prefix))
			}
			return ev.Kv.ModRevision // the successor gone, or a member joined between: find it again
		}
	}
}

// successor is the member key after own in the order of ids, or the
// first one when own is the last (own itself when it is alone), as of
// revision at (0: now), and the revision it was read at. Each read is of
// one key: etcd's keys come in ascending order, so a limit of one reads
// one (a descending sort would read the whole range).
func (p *Pool) successor(ctx context.Context, prefix, own string, at int64) (string, int64, error) {
	first := func(from, to string, rev int64) (*clientv3.GetResponse, error) {
		return call(ctx, p, "find this member's successor", func(ctx context.Context, cli *clientv3.Client) (*clientv3.GetResponse, error) {
			opts := []clientv3.OpOption{clientv3.WithRange(to), clientv3.WithKeysOnly(), clientv3.WithLimit(1)}
			if rev > 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			return cli.Get(ctx, from, opts...)
		})
	}
	resp, err := first(own+"\x00", clientv3.GetPrefixRangeEnd(prefix), at)
	if err != nil {
		return "", 0, err
	}
	rev := resp.Header.Revision // now's; a read as of at says now's too
	if at > 0 {
		rev = at
	}
	if len(resp.Kvs) == 0 {
		// The last id: its successor is the first (the ring wraps).
		if resp, err = first(prefix, own+"\x00", rev); err != nil {
			return "", 0, err
		}
	}
	if len(resp.Kvs) == 0 {
		return own, rev, nil // not even its own key: alone, registering
	}
	return string(resp.Kvs[0].Key), rev, nil
}

// recordDeparture writes, if id has not joined again meanwhile, now
// into id's seen key and a departure record into its health key (Health
// Gone: "agent gone" since now), in one transaction. The record is what
// a grant compares (a lease's end leaves no key to compare) and what
// names the member gone without reading every member (readBudget).
// Under etcd's RBAC a host may write its own keys only (HostGrants):
// the write is refused, and that is no failure of this host's nor of
// etcd's. It is said once (a gone member's "last seen" then stays when
// it joined; the budget counts it by its lease) and neither counted as
// an etcd error nor retried: one refused request per departure.
func (p *Pool) recordDeparture(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	cli, err := p.client(ctx)
	if err == nil {
		_, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(p.key("members", id)), "=", 0)).
			Then(p.departure(id)...).Commit()
	}
	switch {
	case err == nil, errors.Is(err, context.Canceled):
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		if !scribeDenied.Swap(true) {
			slog.Info("pool: etcd's access control lets this host write its own keys only, so it does not record when other members leave; a gone member's last seen stays when it joined",
				"pool", p.cfg.Name, "id", p.cfg.ID, "gone", id)
		}
	default:
		p.unavailable("record "+id+"'s departure", err) //nolint:errcheck // counted; best effort: seen stays the join's time
	}
}

// scribeDenied: a refused departure record was said already. Once per
// process: an agent is in one pool, and the roles do not change by
// themselves.
var scribeDenied atomic.Bool
