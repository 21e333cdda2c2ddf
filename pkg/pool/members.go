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
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Register makes this agent a live member until ctx ends or the agent
// dies. It writes when the member joins (a new lease: the agent's start,
// or etcd away longer than the lease), and records the departure of
// every other member once (recordDepartures). Every period it checks,
// with a read, that its key is still on its lease. It returns when ctx
// ends, recording this member's own departure unless its lease is kept
// for the next start (Config.LeaseFile: a restart is no departure, and
// if no agent comes back the lease ends and the scribe records it).
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
	seen, _ := json.Marshal(time.Now().UTC())
	if cli, err := p.client(lctx); err == nil {
		cli.Put(lctx, p.key("seen", p.cfg.ID), string(seen)) //nolint:errcheck // etcd away: seen stays the join's time
	}
}

// register puts the member key on the agent's lease, unless it is there
// already (a read, no revision), with the time it joined in seen/ID,
// which outlives the lease.
func (p *Pool) register(ctx context.Context) error {
	lease, err := p.lease(ctx)
	if err != nil {
		return err
	}
	seen, _ := json.Marshal(time.Now().UTC())
	k := p.key("members", p.cfg.ID)
	_, err = call(ctx, p, "register", func(ctx context.Context, cli *clientv3.Client) (*clientv3.TxnResponse, error) {
		return cli.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(k), "=", lease)).Else(
			clientv3.OpPut(k, "", clientv3.WithLease(lease)),
			clientv3.OpPut(p.key("seen", p.cfg.ID), string(seen)),
		).Commit()
	})
	return err
}

// recordDepartures watches the pool's members and, when one's lease
// ends (an agent that died, or a host gone), records when in its seen
// key: once per departure, by one agent, the live member first in the
// order of ids (the scribe), so the pool says how long a member has been
// gone without anyone writing while nothing happens. A departure the
// scribe misses (it died with the member) leaves seen at the member's
// join.
func (p *Pool) recordDepartures(ctx context.Context) {
	for ctx.Err() == nil {
		p.watchMembers(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// watchMembers reads the members and follows them until the watch ends.
func (p *Pool) watchMembers(ctx context.Context) {
	prefix := p.prefix + "members/"
	resp, err := call(ctx, p, "read the members", func(ctx context.Context, cli *clientv3.Client) (*clientv3.GetResponse, error) {
		return cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	})
	if err != nil {
		return
	}
	live := map[string]bool{}
	for _, kv := range resp.Kvs {
		live[strings.TrimPrefix(string(kv.Key), prefix)] = true
	}
	cli, err := p.client(ctx)
	if err != nil {
		return
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for r := range cli.Watch(clientv3.WithRequireLeader(wctx), prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
		if r.Err() != nil {
			return
		}
		for _, ev := range r.Events {
			id := strings.TrimPrefix(string(ev.Kv.Key), prefix)
			if ev.Type != clientv3.EventTypeDelete {
				live[id] = true
				continue
			}
			delete(live, id)
			if id != p.cfg.ID && scribe(live) == p.cfg.ID {
				p.recordDeparture(ctx, id)
			}
		}
	}
}

// scribe is the live member that records departures: the first id.
func scribe(live map[string]bool) string {
	ids := make([]string, 0, len(live))
	for id := range live {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return ""
	}
	return slices.Min(ids)
}

// recordDeparture writes now into id's seen key, if id has not joined
// again meanwhile. Under etcd's RBAC a host may write its own keys only
// (HostGrants): the write is refused, and that is no failure of this
// host's nor of etcd's. It is said once (a gone member's "last seen"
// then stays when it joined) and neither counted as an etcd error nor
// retried: one refused request per departure, by the scribe alone.
func (p *Pool) recordDeparture(ctx context.Context, id string) {
	seen, _ := json.Marshal(time.Now().UTC())
	ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	cli, err := p.client(ctx)
	if err == nil {
		_, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(p.key("members", id)), "=", 0)).
			Then(clientv3.OpPut(p.key("seen", id), string(seen))).Commit()
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
