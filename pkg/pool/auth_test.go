package pool

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/drainctl/drainctl/pkg/internal/etcdtest"
)

// rbacCluster runs etcd with auth on and pool web's roles as docs/rbac.md
// lays them out (HostGrants, AdminGrants): users web1 and web2, each
// with its host's role, and admin with the admin's.
func rbacCluster(t *testing.T) *etcdtest.Cluster {
	t.Helper()
	perms := func(gs []Grant) []etcdtest.Perm {
		var ps []etcdtest.Perm
		for _, g := range gs {
			ps = append(ps, etcdtest.Perm{Key: g.Key, Prefix: g.Prefix, Write: g.Write})
		}
		return ps
	}
	return etcdtest.StartAuth(t,
		[]etcdtest.Role{
			{Name: "drainctl-web-host-web1", Perms: perms(HostGrants("web", "web1"))},
			{Name: "drainctl-web-host-web2", Perms: perms(HostGrants("web", "web2"))},
			{Name: "drainctl-web-admin", Perms: perms(AdminGrants("web"))},
		},
		[]etcdtest.User{
			{Name: "web1", Password: "pw-web1", Roles: []string{"drainctl-web-host-web1"}},
			{Name: "web2", Password: "pw-web2", Roles: []string{"drainctl-web-host-web2"}},
			{Name: "admin", Password: "pw-admin", Roles: []string{"drainctl-web-admin"}},
		})
}

// openAs is a Pool of c for host id, logged in as user (no user: none).
func openAs(t *testing.T, c *etcdtest.Cluster, id, user, password string) *Pool {
	t.Helper()
	p, err := Open(Config{Endpoints: c.Endpoints(), Name: "web", ID: id, Limit: MustLimit("3"),
		Username: user, Password: password, RequestTimeout: 2 * time.Second, TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// denied checks that err is etcd's RBAC refusing a request, as the pool
// reports it: ErrDenied and ErrUnavailable (nothing was done), counted
// as an "auth" error, and said as a refusal, not as an etcd down.
func denied(t *testing.T, what string, p *Pool, before uint64, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s with a host's credentials: allowed", what)
		return
	case !errors.Is(err, ErrDenied) || !errors.Is(err, ErrUnavailable) || !errors.Is(err, rpctypes.ErrPermissionDenied):
		t.Errorf("%s: %v; want ErrDenied, ErrUnavailable and etcd's permission denied", what, err)
	}
	msg := err.Error()
	for _, want := range []string{"refused by etcd's access control (RBAC)", `etcd user "web1" may not do this`, "admin's etcd credentials"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%s: %q does not say %q", what, msg, want)
		}
	}
	if strings.Contains(msg, "etcd down") || strings.Contains(msg, "etcd unavailable") {
		t.Errorf("%s: %q says etcd is away", what, msg)
	}
	if got := p.Errors()["auth"]; got != before+1 {
		t.Errorf("%s: %d auth errors counted, want %d", what, got, before+1)
	}
}

// With etcd's auth on and the roles of docs/rbac.md, a host's
// credentials take, hold and give back its own slot, register and
// publish its health, but cannot seed the pool's settings, free
// another host's slot (not even with force), pause, resume, set the
// limit or forget a member; an admin's can do all of it.
func TestRBACHostConfinedToItsKeys(t *testing.T) {
	c := rbacCluster(t)
	ctx := ctxT(t, 60*time.Second)
	web1 := openAs(t, c, "web1", "web1", "pw-web1")
	web2 := openAs(t, c, "web2", "web2", "pw-web2")
	admin := openAs(t, c, "admin", "admin", "pw-admin")

	// No settings yet: a host may not seed them. It fails closed and
	// says who mends it; the agent's watch says so once and waits for
	// the admin's (not a refused request every second).
	auth := func(p *Pool) uint64 { return p.Errors()["auth"] }
	_, err := web1.Acquire(ctx, Claim{Op: "restart"}, nil)
	if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "pool web has no settings and this host (web1) may not seed them: an admin runs drainctl pool set max-unavailable N") {
		t.Fatalf("acquire in a pool without settings: %v; want told an admin sets them", err)
	}
	var mu sync.Mutex
	var told []string
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go web1.WatchSettings(wctx, func(s *Settings, why string) {
		mu.Lock()
		defer mu.Unlock()
		if s != nil {
			why = "limit " + s.MaxUnavailable.String()
		}
		told = append(told, why)
	})
	waitFor(t, "web1's watch says it may not seed", func() bool { mu.Lock(); defer mu.Unlock(); return len(told) > 0 })
	authBefore := auth(web1)
	time.Sleep(1500 * time.Millisecond) // past the watch's 1 s retry
	if n := auth(web1) - authBefore; n != 0 {
		t.Errorf("the watch of a host that may not seed made %d more refused requests in 1.5 s", n)
	}
	if _, err := admin.SetLimit(ctx, MustLimit("1"), "alice"); err != nil {
		t.Fatalf("admin sets the limit: %v", err)
	}
	waitFor(t, "web1's watch sees the admin's limit", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return told[len(told)-1] == "limit 1"
	})
	mu.Lock()
	if !strings.Contains(told[0], "may not seed them") || len(told) != 2 {
		t.Errorf("web1's watch was told %q; want the refusal once, then the admin's limit", told)
	}
	mu.Unlock()

	// Its own keys: register, health, its slot taken and given back.
	if err := web1.register(ctx); err != nil {
		t.Fatalf("web1 registers: %v", err)
	}
	if err := web1.PublishHealth(ctx, Health{InService: true}); err != nil {
		t.Fatalf("web1 publishes its health: %v", err)
	}
	if _, err := web1.Acquire(ctx, Claim{Op: "restart", By: "root"}, nil); err != nil {
		t.Fatalf("web1 takes its slot: %v", err)
	}
	if h, err := web1.Held(ctx); err != nil || h == nil {
		t.Fatalf("web1 holds %v, %v", h, err)
	}
	if err := web1.Release(ctx); err != nil {
		t.Fatalf("web1 gives its slot back: %v", err)
	}
	// doctor's look at etcd's storage (status, the oldest revision,
	// the alarms) needs no more than a host's role.
	if _, err := web1.Storage(ctx); err != nil {
		t.Errorf("web1 reads etcd's storage: %v", err)
	}
	// web2, whose agent says its server is out and then stops, takes
	// the pool's one slot (at once: it is out already).
	if err := web2.PublishHealth(ctx, Health{Why: "web server not answering"}); err != nil {
		t.Fatalf("web2 publishes its health: %v", err)
	}
	if _, err := web2.Acquire(ctx, Claim{Op: "reboot"}, nil); err != nil {
		t.Fatalf("web2 takes its slot: %v", err)
	}

	// Another host's, or the pool's: refused by etcd, whatever drainctl
	// would allow.
	n := auth(web1)
	_, err = web1.ReleaseFor(ctx, "web2", true)
	denied(t, "release web2's slot (--force)", web1, n, err)
	n = auth(web1)
	denied(t, "pause", web1, n, web1.Pause(ctx, Pause{By: "web1", Reason: "mine"}))
	n = auth(web1)
	_, err = web1.SetLimit(ctx, MustLimit("3"), "web1")
	denied(t, "set the limit", web1, n, err)
	n = auth(web1)
	_, err = web1.Forget(ctx, "web2") // web2 is known (health, slot), not live
	denied(t, "forget web2", web1, n, err)
	if err := admin.Pause(ctx, Pause{By: "alice"}); err != nil {
		t.Fatalf("admin pauses: %v", err)
	}
	n = auth(web1)
	denied(t, "resume", web1, n, web1.Resume(ctx))
	// etcd judges both branches of a transaction, whatever its compare:
	// a create-only write is refused even where it would write nothing
	// (why the settings' watch reads before it seeds).
	n = auth(web1)
	denied(t, "pause a paused pool", web1, n, web1.Pause(ctx, Pause{By: "web1"}))
	n = auth(web1)
	_, _, err = web1.Seed(ctx)
	denied(t, "seed settings that exist", web1, n, err)
	st, err := web1.Status(ctx)
	if err != nil {
		t.Fatalf("web1 reads the pool: %v", err)
	}
	if st.holder("web2") == nil || st.Paused == nil || st.Settings == nil || st.Settings.MaxUnavailable.String() != "1" {
		t.Fatalf("after web1's refused requests: holders %+v, paused %v, settings %+v; want web2's slot, the admin's pause, limit 1", st.Holders, st.Paused, st.Settings)
	}

	// The admin's credentials: all of it.
	if err := admin.Resume(ctx); err != nil {
		t.Errorf("admin resumes: %v", err)
	}
	if _, err := admin.SetLimit(ctx, MustLimit("2"), "alice"); err != nil {
		t.Errorf("admin sets the limit: %v", err)
	}
	if h, err := admin.ReleaseFor(ctx, "web2", true); err != nil || h == nil {
		t.Errorf("admin frees web2's slot: %v, %v", h, err)
	}
	if f, err := admin.Forget(ctx, "web2"); err != nil || !f.Known {
		t.Errorf("admin forgets web2: %+v, %v", f, err)
	}
	if auth(admin) != 0 {
		t.Errorf("the admin's requests: %d refused", auth(admin))
	}
}

// Under the hosts' roles the scribe may not write another member's
// seen key: the departure it sees is not recorded, and that is said
// once in the log, never counted as an etcd error nor failing anything.
func TestRBACScribeDeniedIsQuiet(t *testing.T) {
	c := rbacCluster(t)
	ctx := ctxT(t, 30*time.Second)
	var logged syncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	scribeDenied.Store(false)

	web1 := openAs(t, c, "web1", "web1", "pw-web1")
	web2 := openAs(t, c, "web2", "web2", "pw-web2")
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go web1.Register(rctx, time.Hour) // web1 sorts first: the scribe
	if err := web2.register(ctx); err != nil {
		t.Fatal(err)
	}
	seen := func() string {
		r, err := web1.cli.Get(ctx, web1.key("seen", "web2"))
		if err != nil || len(r.Kvs) == 0 {
			t.Fatalf("web2's seen key: %v", err)
		}
		return string(r.Kvs[0].Value)
	}
	joined := seen()
	waitFor(t, "both live", func() bool {
		st, err := web1.Status(ctx)
		return err == nil && len(st.Members) == 2 && st.Members[0].Live && st.Members[1].Live
	})
	time.Sleep(300 * time.Millisecond) // web1's watch of the members is set up
	web2.session.Orphan()              // web2's agent dies: its lease is revoked below, as when it ends
	if _, err := web1.cli.Revoke(ctx, web2.session.Lease()); err == nil {
		t.Fatal("web1 revoked web2's lease: it may not write web2's keys")
	}
	if _, err := web2.cli.Revoke(ctx, web2.session.Lease()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the scribe's refusal said", func() bool { return strings.Contains(logged.String(), "does not record when other members leave") })
	if got := seen(); got != joined {
		t.Errorf("web2's seen %s, want its join %s (the scribe may not write it)", got, joined)
	}
	if n := web1.Errors()["auth"]; n != 0 {
		t.Errorf("the scribe's refused record counted as %d etcd auth errors", n)
	}
	if n := strings.Count(logged.String(), "does not record"); n != 1 {
		t.Errorf("said %d times", n)
	}
}

// A host without credentials, or with a wrong password, is told so.
func TestRBACNoCredentials(t *testing.T) {
	c := rbacCluster(t)
	ctx := ctxT(t, 20*time.Second)
	_, err := openAs(t, c, "web1", "", "").Status(ctx)
	if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "no etcd user was given") {
		t.Errorf("status without credentials: %v; want told to give some", err)
	}
	if _, err := Open(Config{Endpoints: c.Endpoints(), Name: "web", ID: "web1", Username: "web1", Password: "wrong", RequestTimeout: 2 * time.Second}); err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Errorf("open with a wrong password: %v; want authentication failed", err)
	}
}

// A host's role is enough for its agent's restart to keep its lease
// (Config.LeaseFile): the lease is asked after (TimeToLive, no key
// named) and taken again, and the member stays the same member.
func TestRBACLeaseKeptAcrossRestart(t *testing.T) {
	c := rbacCluster(t)
	ctx := ctxT(t, 20*time.Second)
	file := filepath.Join(t.TempDir(), "lease")
	start := func() *Pool {
		p, err := Open(Config{Endpoints: c.Endpoints(), Name: "web", ID: "web1", Username: "web1", Password: "pw-web1",
			RequestTimeout: 2 * time.Second, TTL: 5 * time.Second, LeaseFile: file})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.register(ctx); err != nil {
			t.Fatalf("register: %v", err)
		}
		return p
	}
	lease := func(p *Pool) int64 {
		r, err := p.cli.Get(ctx, p.key("members", "web1"))
		if err != nil || len(r.Kvs) == 0 {
			t.Fatalf("web1's member key: %v", err)
		}
		return r.Kvs[0].Lease
	}
	first := start()
	was := lease(first)
	first.Close() // orphans the lease: a restart, not a departure
	again := start()
	defer again.Close()
	if now := lease(again); now != was || again.Errors()["auth"] != 0 {
		t.Errorf("after a restart, lease %x (was %x), %d refused; want the same lease, none refused", now, was, again.Errors()["auth"])
	}
}

// scripts/etcd-roles' commands, run by etcdctl on a real etcd, make
// the roles HostGrants and AdminGrants say, and turn auth on: a host's
// user takes its slot and may not pause; the admin's may. Run again to
// add a host once auth is on (as root), they change nothing else.
func TestRBACScript(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := ctxT(t, 30*time.Second)
	dir := t.TempDir()
	for _, u := range []string{"alice", "drainctl-web-web1", "drainctl-web-web2", "drainctl-web-web3", "root"} {
		if err := os.WriteFile(filepath.Join(dir, u), []byte("pw-"+u+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(env []string, args ...string) string {
		t.Helper()
		script, err := exec.Command("../../scripts/etcd-roles", append([]string{"-p", dir}, args...)...).Output()
		if err != nil {
			t.Fatalf("etcd-roles %v: %v", args, err)
		}
		sh := exec.Command("sh", "-e")
		sh.Stdin = bytes.NewReader(script)
		sh.Env = append(os.Environ(), append(env, "ETCDCTL_ENDPOINTS="+c.Endpoints()[0], "ETCDCTL_API=3")...)
		if out, err := sh.CombinedOutput(); err != nil {
			t.Fatalf("its commands: %v\n%s\n%s", err, out, script)
		}
		return string(script)
	}
	script := run(nil, "-e", "-a", "alice", "web", "web1", "web2")

	// The script's grants are the pool's own idea of them.
	var got []Grant
	for _, l := range strings.Split(script, "\n") {
		f := strings.Fields(l)
		if len(f) < 5 || f[1] != "role" || f[2] != "grant-permission" || f[3] != "drainctl-web-host-web1" {
			continue
		}
		g := Grant{Prefix: slices.Contains(f, "--prefix=true"), Write: slices.Contains(f, "readwrite"), Key: f[len(f)-1]}
		got = append(got, g)
	}
	if want := HostGrants("web", "web1"); !slices.Equal(got, want) {
		t.Errorf("the script grants web1\n%+v\nHostGrants says\n%+v", got, want)
	}

	as := func(id, user string) *Pool { return openAs(t, c, id, user, "pw-"+user) }
	web1, alice := as("web1", "drainctl-web-web1"), as("alice", "alice")
	if _, err := alice.SetLimit(ctx, MustLimit("1"), "alice"); err != nil {
		t.Fatalf("alice sets the limit: %v", err)
	}
	if _, err := web1.Acquire(ctx, Claim{Op: "restart"}, nil); err != nil {
		t.Fatalf("web1 takes its slot: %v", err)
	}
	if err := web1.Pause(ctx, Pause{By: "web1"}); !errors.Is(err, ErrDenied) {
		t.Errorf("web1 pauses: %v; want refused", err)
	}
	if err := alice.Pause(ctx, Pause{By: "alice"}); err != nil {
		t.Errorf("alice pauses: %v", err)
	}

	// Again with a new host, as root now that auth is on.
	run([]string{"ETCDCTL_USER=root", "ETCDCTL_PASSWORD=pw-root"}, "-e", "-a", "alice", "web", "web1", "web3")
	web3 := as("web3", "drainctl-web-web3")
	if err := web3.PublishHealth(ctx, Health{InService: true}); err != nil {
		t.Errorf("web3 publishes its health: %v", err)
	}
	if _, err := web3.ReleaseFor(ctx, "web1", true); !errors.Is(err, ErrDenied) {
		t.Errorf("web3 frees web1's slot: %v; want refused", err)
	}
	if h, err := web1.Held(ctx); err != nil || h == nil {
		t.Errorf("web1's slot after the script ran again: %v, %v", h, err)
	}
}

// syncBuffer is a bytes.Buffer for a log written from other goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
