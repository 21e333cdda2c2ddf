package etcdtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Perm is one permission of a role: read, or read and write, on one key
// or on every key under a prefix.
type Perm struct {
	Key    string
	Prefix bool
	Write  bool // readwrite; else read only
}

// Role is an etcd role and what it may do.
type Role struct {
	Name  string
	Perms []Perm
}

// User is an etcd user, its password and its roles.
type User struct {
	Name, Password string
	Roles          []string
}

// RootPassword is the password of the root user EnableAuth makes: etcd
// turns auth on only once a root user with the root role exists.
const RootPassword = "root-test-password"

// StartAuth runs a one-member cluster with auth on, the roles and users
// made (and root, with RootPassword).
func StartAuth(t testing.TB, roles []Role, users []User) *Cluster {
	t.Helper()
	c := Start(t, 1)
	c.EnableAuth(t, roles, users)
	return c
}

// EnableAuth makes the roles, the users and root in c through etcd's own
// client API (as etcdctl role/user would), then turns auth on. From then
// on every request needs a user's credentials, and is refused what its
// roles do not grant.
func (c *Cluster) EnableAuth(t testing.TB, roles []Role, users []User) {
	t.Helper()
	if c.tls != nil {
		t.Fatal("etcdtest: EnableAuth on a TLS cluster is not made yet")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("etcdtest: %s: %v", what, err)
		}
	}
	for _, r := range roles {
		_, err := cli.RoleAdd(ctx, r.Name)
		must("role add "+r.Name, err)
		for _, p := range r.Perms {
			end, typ := "", clientv3.PermissionType(clientv3.PermRead)
			if p.Prefix {
				end = clientv3.GetPrefixRangeEnd(p.Key)
			}
			if p.Write {
				typ = clientv3.PermissionType(clientv3.PermReadWrite)
			}
			_, err := cli.RoleGrantPermission(ctx, r.Name, p.Key, end, typ)
			must(fmt.Sprintf("role grant-permission %s %v", r.Name, p), err)
		}
	}
	users = append(users, User{Name: "root", Password: RootPassword, Roles: []string{"root"}})
	for _, u := range users {
		_, err := cli.UserAdd(ctx, u.Name, u.Password)
		must("user add "+u.Name, err)
		for _, r := range u.Roles {
			_, err := cli.UserGrantRole(ctx, u.Name, r)
			must("user grant-role "+u.Name+" "+r, err)
		}
	}
	_, err = cli.AuthEnable(ctx)
	must("auth enable", err)
}
