package pool

// etcd's own access control (RBAC) on the pool's keys: each host may
// read the pool and write only its own keys; pool administration
// (pause, resume, set, release another host's slot, forget) takes an
// admin's credentials. A host's credentials stolen, or a host's agent
// gone wrong, can then take at most that host out, never free another
// host's slot or lift the pool's limit (docs/rbac.md).

import (
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ErrDenied is etcd's access control refusing a request: the user name
// or password is wrong, none was given to an etcd with auth on, or the
// user's roles do not grant what was asked. It is also ErrUnavailable
// (nothing was done, and what fails closed on an etcd away fails closed
// on it too), but its text says what to mend: the credentials or the
// roles, not etcd's health.
var ErrDenied error = &deniedError{}

// deniedError is one refusal, with etcd's own error (errors.Is finds
// rpctypes.ErrPermissionDenied in it: refused a key, not the login).
type deniedError struct{ err error }

func (*deniedError) Error() string { return "refused by etcd's access control (RBAC)" }

func (e *deniedError) Is(target error) bool { return target == ErrDenied || target == ErrUnavailable }

func (e *deniedError) Unwrap() error { return e.err }

// Grant is one permission of an etcd role on the pool's keys: read, or
// read and write, on one key or on every key under a prefix.
type Grant struct {
	Key    string `json:"key"`
	Prefix bool   `json:"prefix,omitempty"`
	Write  bool   `json:"write,omitempty"`
}

// RangeEnd is the end of the grant's key range as etcd takes it ("":
// the key alone).
func (g Grant) RangeEnd() string {
	if !g.Prefix {
		return ""
	}
	return clientv3.GetPrefixRangeEnd(g.Key)
}

// Prefix is the prefix of pool name's keys.
func Prefix(name string) string { return "/drainctl/pools/" + name + "/" }

// HostGrants are what host id of pool name needs, and no more: read on
// the whole pool (the grant decides on every member's keys, in one read,
// and compares the holders' and health's ranges), and read and write on
// its own keys, each exactly (never a prefix: web1's would be web10's
// too). Not the seen/ or health/ of others: a host that could write
// them could make up members or erase a gone one's record, so the
// departures a host sees are not recorded under these grants
// (recordDeparture) and a gone member's "last seen" stays when it
// joined (the budget counts it gone by its lease all the same). Not paused nor
// settings: those are the admin's.
func HostGrants(name, id string) []Grant {
	g := []Grant{{Key: Prefix(name), Prefix: true}}
	var own []string
	for kind, perHost := range kinds {
		if perHost {
			own = append(own, kind)
		}
	}
	slices.Sort(own)
	for _, kind := range own {
		g = append(g, Grant{Key: Prefix(name) + kind + "/" + id, Write: true})
	}
	// The budget key: touched when this host goes out of service without
	// a slot, so that a grant decided before fails. Its value means
	// nothing; a host that touches it for no reason makes grants decide
	// again, no more.
	return append(g, Grant{Key: Prefix(name) + "budget", Write: true})
}

// AdminGrants are what pool administration needs: read and write on all
// of pool name's keys.
func AdminGrants(name string) []Grant {
	return []Grant{{Key: Prefix(name), Prefix: true, Write: true}}
}

// deniedCause says, for people, why etcd's access control refused a
// request and what mends it: not "etcd down", which would send the
// operator to etcd's health instead of the credentials or the roles.
func (p *Pool) deniedCause(err error) string {
	switch {
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		return fmt.Sprintf("etcd user %q may not do this (%v): a host's etcd role grants it its own keys only; "+
			"pause, resume, set, release another host's slot and forget take an admin's etcd credentials "+
			"(drainctl pool ... --admin-config FILE, or --pool-username and --pool-password-file; docs/rbac.md)", p.cfg.Username, err)
	case errors.Is(err, rpctypes.ErrAuthFailed):
		return fmt.Sprintf("etcd user %q: wrong user name or password (%v)", p.cfg.Username, err)
	case errors.Is(err, rpctypes.ErrUserEmpty):
		return fmt.Sprintf("etcd's auth is on and no etcd user was given (%v): set pool.username and pool.password_file", err)
	default:
		return fmt.Sprintf("etcd refused the credentials (%v)", err)
	}
}
