package pool

// What etcd's storage says about the pool's future: etcd keeps every
// revision until it is compacted, and refuses every write once its
// database reaches its quota (NOSPACE). Debian's etcd runs with
// auto-compaction off and the default 2 GiB quota, so a pool on it grows
// with each of its writes until etcd stops every user of it: doctor reads
// this and says so before it happens.

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultQuota is etcd's default backend quota (--quota-backend-bytes
// 0): 2 GiB. The API does not tell an endpoint's quota.
const DefaultQuota = 2 << 30

// Storage is etcd's storage as one endpoint reports it.
type Storage struct {
	Endpoint string `json:"endpoint"`
	// DBSize is the database file's size, DBSizeInUse what its live
	// data takes (the rest is freed pages, given back by a defrag).
	DBSize      int64 `json:"db_size"`
	DBSizeInUse int64 `json:"db_size_in_use"`
	// Revision is etcd's current revision; Compacted says whether any
	// revision was ever compacted (revision 1 is no longer readable).
	Revision  int64 `json:"revision"`
	Compacted bool  `json:"compacted"`
	// Alarms are the cluster's raised alarms (NOSPACE, CORRUPT).
	Alarms []string `json:"alarms,omitempty"`
}

// Storage reads etcd's storage from the first endpoint that answers.
func (p *Pool) Storage(ctx context.Context) (Storage, error) {
	var st Storage
	var errs []error
	for _, ep := range p.cfg.Endpoints {
		s, err := call(ctx, p, "read etcd's status", func(ctx context.Context, cli *clientv3.Client) (*clientv3.StatusResponse, error) {
			return cli.Status(ctx, ep)
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		st = Storage{Endpoint: ep, DBSize: s.DbSize, DBSizeInUse: s.DbSizeInUse, Revision: s.Header.Revision}
		break
	}
	if st.Endpoint == "" {
		return st, errors.Join(errs...)
	}
	// Revision 1 readable: nothing was ever compacted. Not through
	// call: "compacted" is an answer, not a failure to count.
	rctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	cli, err := p.client(rctx)
	if err == nil {
		_, err = cli.Get(rctx, p.prefix, clientv3.WithRev(1), clientv3.WithCountOnly())
	}
	cancel()
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		st.Compacted = true
	case err != nil:
		return st, fmt.Errorf("etcd at %s: the oldest revision: %w", st.Endpoint, err)
	}
	alarms, err := call(ctx, p, "list etcd's alarms", func(ctx context.Context, cli *clientv3.Client) (*clientv3.AlarmResponse, error) {
		return cli.AlarmList(ctx)
	})
	if err != nil {
		return st, err
	}
	for _, a := range alarms.Alarms {
		if name := a.Alarm.String(); !slices.Contains(st.Alarms, name) {
			st.Alarms = append(st.Alarms, name)
		}
	}
	return st, nil
}
