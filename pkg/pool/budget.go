package pool

// The decision's read: what a grant needs, not the whole pool. A grant
// decides on what uses the budget (the holders, the members out of
// service, the members gone), how many members there are (for a
// percentage), the line, the pause and the settings. Read whole, a pool
// of 5,000 members is 15,000 keys, 1.3 MB and 57 ms of etcd's CPU, and a
// roll at 10% makes 17 decisions a second: more than an etcd has to
// spare. Read as here, it is the keys of what is out and of the line,
// and two counts that etcd answers from its index without reading a
// value.

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// readBudget reads, in one transaction (one revision), the pool's
// holders, health records (there only for members out of service, or
// recorded gone: health.go), line, pause and settings, and counts its
// members registered (seen/) and live (members/). When every member not
// live is named by its departure record (live + recorded gone =
// registered; a record whose member is live again, its agent not yet
// through its first judgement, is read and set aside: liveAgain), that
// is the whole picture of what is out, and Members lists only the
// members out, Size the count. When not (a departure nobody recorded:
// its predecessor died with it, or etcd's access control refused the
// record; or a key written by hand), it reads the whole pool instead
// (read), which names each member by its keys.
func (p *Pool) readBudget(ctx context.Context) (State, error) {
	p.reads.Add(1)
	traced("read")
	pre := p.prefix
	resp, err := call(ctx, p, "read the pool", func(ctx context.Context, cli *clientv3.Client) (*clientv3.TxnResponse, error) {
		return readOnly(ctx, cli.Txn(ctx).Then(
			clientv3.OpGet(pre+"holders/", clientv3.WithPrefix()),
			clientv3.OpGet(pre+"health/", clientv3.WithPrefix()),
			clientv3.OpGet(pre+"waiters/", clientv3.WithPrefix()),
			clientv3.OpGet(pre+"paused"),
			clientv3.OpGet(p.settingsKey()),
			clientv3.OpGet(pre+"members/", clientv3.WithPrefix(), clientv3.WithCountOnly()),
			clientv3.OpGet(pre+"seen/", clientv3.WithPrefix(), clientv3.WithCountOnly()),
		))
	})
	if err != nil {
		return State{}, err
	}
	var kvs []*mvccpb.KeyValue
	for _, r := range resp.Responses[:5] {
		kvs = append(kvs, r.GetResponseRange().Kvs...)
	}
	live, registered := resp.Responses[5].GetResponseRange().Count, resp.Responses[6].GetResponseRange().Count
	st := p.stateOf(resp.Header.Revision, kvs)
	back, err := p.liveAgain(ctx, st)
	if err != nil {
		return State{}, err
	}
	recorded := 0
	for i := range st.Members {
		m := &st.Members[i]
		m.Live = m.Health == nil || !m.Health.Gone || back[m.ID]
		if !m.Live {
			m.LastSeen = m.Health.Since
			recorded++
		}
	}
	if back == nil || live+int64(recorded) != registered {
		// A member gone with no record of its departure, too many
		// records to check, or a key written by hand: every key, then,
		// which names each member by its keys and sets junk aside (a
		// count cannot tell a junk seen key from a member gone).
		traced("read whole")
		return p.read(ctx)
	}
	st.registered = int(registered)
	return st, nil
}

// maxRecordsChecked bounds the departure records whose member readBudget
// checks is live again (one key each, in one transaction): past it, the
// whole pool is read instead.
const maxRecordsChecked = 100

// liveAgain says which members with a departure record in st are live
// again at st's revision (their agent back, its own account not written
// yet): a read of each one's member key, at that revision. Nil when there
// are more than maxRecordsChecked records.
func (p *Pool) liveAgain(ctx context.Context, st State) (map[string]bool, error) {
	var ops []clientv3.Op
	for _, m := range st.Members {
		if m.Health != nil && m.Health.Gone {
			ops = append(ops, clientv3.OpGet(p.key("members", m.ID), clientv3.WithKeysOnly(), clientv3.WithRev(st.Revision)))
		}
	}
	back := map[string]bool{}
	switch {
	case len(ops) == 0:
		return back, nil
	case len(ops) > maxRecordsChecked:
		return nil, nil
	}
	resp, err := call(ctx, p, "read the pool", func(ctx context.Context, cli *clientv3.Client) (*clientv3.TxnResponse, error) {
		return readOnly(ctx, cli.Txn(ctx).Then(ops...))
	})
	if err != nil {
		return nil, err
	}
	for _, r := range resp.Responses {
		for _, kv := range r.GetResponseRange().Kvs {
			back[strings.TrimPrefix(string(kv.Key), p.prefix+"members/")] = true
		}
	}
	return back, nil
}

// readOnly commits a transaction of reads, again while etcd answers
// that it cannot serve it now (a leader changing, a member restarting):
// the client retries a Get so by itself, never a transaction, which may
// write; this one does not, so a retry is safe, and a read of the pool
// fails no more often than a Get would. Bounded by ctx (the request's
// timeout).
func readOnly(ctx context.Context, txn clientv3.Txn) (*clientv3.TxnResponse, error) {
	for wait := 25 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		resp, err := txn.Commit()
		if err == nil || !notNow(err) {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return resp, err
		case <-time.After(wait):
		}
	}
}

// notNow says etcd answered that it cannot serve a request now (gRPC's
// Unavailable: no leader, the leader changed, a member stopping), as the
// client's own retries judge it.
func notNow(err error) bool {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code() == codes.Unavailable
	}
	return status.Code(err) == codes.Unavailable
}
