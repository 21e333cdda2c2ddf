package settings

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/drainctl/drainctl/pkg/internal/etcdtest"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
	"github.com/drainctl/drainctl/pkg/pool"
)

// The pool's settings are checked before anything starts: endpoints, a
// name and id etcd can key on, both halves of a certificate or of a
// login, and secrets nobody else can read.
func TestPoolValidate(t *testing.T) {
	dir := t.TempDir()
	file := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x\n"), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	good := Defaults().Pool
	good.Etcd, good.ID = []string{"https://10.0.0.5:2379", "http://etcd2:2379"}, "web1"
	if err := good.validate(); err != nil {
		t.Fatalf("good settings: %v", err)
	}
	if err := Defaults().Pool.validate(); err != nil {
		t.Fatalf("no pool: %v", err)
	}
	for _, c := range []struct {
		key, want string
		set       func(*Pool)
	}{
		{KeyPoolEtcd, "want http://HOST:PORT", func(p *Pool) { p.Etcd = []string{"10.0.0.5:2379"} }},
		{KeyPoolName, "pool name", func(p *Pool) { p.Name = "a/b" }},
		{KeyPoolID, "pool id", func(p *Pool) { p.ID = "" }},
		{KeyPoolWait, "must be positive", func(p *Pool) { p.Wait = 0 }},
		{KeyPoolCertFile, "both or neither", func(p *Pool) { p.CertFile = file("c.pem", 0o644) }},
		{KeyPoolUsername, "both or neither", func(p *Pool) { p.Username = "drainctl" }},
		{KeyPoolKeyFile, "lets others read it: chmod 600", func(p *Pool) {
			p.CertFile, p.KeyFile = file("c.pem", 0o644), file("k.pem", 0o640)
		}},
		{KeyPoolPasswordFile, "lets others read it", func(p *Pool) {
			p.Username, p.PasswordFile = "drainctl", file("pw", 0o604)
		}},
		{KeyPoolCAFile, "no such file", func(p *Pool) { p.CAFile = filepath.Join(dir, "missing.pem") }},
	} {
		p := good
		c.set(&p)
		err := p.validate()
		var se *SettingError
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.As(err, &se) || se.Key != c.key {
			t.Errorf("%s: %v, want a %s error saying %q", c.key, err, c.key, c.want)
		}
	}
	p := good
	p.Etcd = []string{"https://10.0.0.5:2379"} // credentials only over TLS (TestPoolCredentialsOnlyOverTLS)
	p.CertFile, p.KeyFile, p.Username, p.PasswordFile = file("c2.pem", 0o644), file("k2.pem", 0o600), "drainctl", file("pw2", 0o400)
	if err := p.validate(); err != nil {
		t.Errorf("secrets of mode 0600 and 0400: %v", err)
	}
}

// A pool on a TLS-only etcd that asks for a client certificate: with the
// CA, certificate and key of the settings a slot is taken and given back;
// without the certificate, etcd refuses and nothing is taken.
func TestPoolOverTLS(t *testing.T) {
	nstest.RequireRoot(t) // real etcd: a kernel-tier test
	c, files := etcdtest.StartTLS(t)
	s := Defaults().Pool
	s.Etcd, s.ID, s.Name = c.Endpoints(), "web1", "tls"
	s.CAFile, s.CertFile, s.KeyFile = files.CA, files.Cert, files.Key
	if err := s.validate(); err != nil {
		t.Fatal(err)
	}
	p, err := s.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.Acquire(ctx, pool.Claim{Op: "restart"}, nil); err != nil {
		t.Fatalf("acquire over TLS: %v", err)
	}
	if err := p.Release(ctx); err != nil {
		t.Fatal(err)
	}
	anon := s
	anon.CertFile, anon.KeyFile = "", ""
	q, err := anon.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := q.Acquire(ctx, pool.Claim{Op: "restart"}, nil); !errors.Is(err, pool.ErrUnavailable) {
		t.Fatalf("without a client certificate: %v, want refused", err)
	}
}

// The agent's pool keeps its lease in the state directory: stopped, it
// leaves the lease to run (its member key stays), and the next start
// takes the same lease again and keeps it alive, writing nothing — a
// restart of the agent is no departure and no return.
func TestAgentKeepsItsLease(t *testing.T) {
	nstest.RequireRoot(t) // real etcd: a kernel-tier test
	c := etcdtest.Start(t, 1)
	s := Defaults().Pool
	s.Etcd, s.ID, s.Name = c.Endpoints(), "web1", "lease"
	dir := t.TempDir()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	member := "/drainctl/pools/lease/members/web1"
	// start runs an agent's membership until the returned stop, which
	// stops it as the agent does (Register's end, then Close).
	start := func() func() {
		p, err := s.OpenAgent(dir)
		if err != nil {
			t.Fatal(err)
		}
		rctx, rcancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); p.Register(rctx, time.Hour) }()
		return func() { rcancel(); <-done; p.Close() }
	}
	memberLease := func() (clientv3.LeaseID, int64) {
		r, err := cli.Get(ctx, member)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Kvs) == 0 {
			return 0, r.Header.Revision
		}
		return clientv3.LeaseID(r.Kvs[0].Lease), r.Header.Revision
	}
	ttl := func(id clientv3.LeaseID) int64 {
		r, err := cli.TimeToLive(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return r.TTL
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("%s: %v", what, ctx.Err())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	stop := start()
	wait("the member registered", func() bool { id, _ := memberLease(); return id != 0 })
	lease, rev := memberLease()
	kept, err := os.ReadFile(filepath.Join(dir, PoolLeaseFile))
	if err != nil || strings.TrimSpace(string(kept)) != strconv.FormatInt(int64(lease), 16) {
		t.Fatalf("%s: %q, %v; want the lease %x", PoolLeaseFile, kept, err, int64(lease))
	}
	stop()
	if id, _ := memberLease(); id != lease {
		t.Fatalf("after the stop the member key's lease is %x, want %x still", int64(id), int64(lease))
	}
	// Nobody keeps it alive now: its time to live runs down.
	wait("the lease running down", func() bool { return ttl(lease) <= 13 })

	stop = start()
	defer stop()
	wait("the restarted agent keeping the lease alive", func() bool { return ttl(lease) >= 14 })
	if id, after := memberLease(); id != lease || after != rev {
		t.Fatalf("after the restart: member on lease %x, %d revisions; want lease %x and none", int64(id), after-rev, int64(lease))
	}
}

// Credentials (a password, a client key) with an http:// endpoint would
// cross the network in clear: refused at start, naming the endpoint and
// the setting that allows it; allowed with pool.insecure_credentials,
// which then warns (the agent logs InsecureWarning at every start).
// Over https, or with no credentials, nothing is said.
func TestPoolCredentialsOnlyOverTLS(t *testing.T) {
	dir := t.TempDir()
	secret := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := Defaults().Pool
	base.ID = "web1"
	login := func(p *Pool) { p.Username, p.PasswordFile = "web1", secret("pw") }
	clientKey := func(p *Pool) { p.CertFile, p.KeyFile = secret("c.pem"), secret("k.pem") }
	for _, c := range []struct {
		name  string
		etcd  []string
		creds func(*Pool)
		want  string // the error; "" for none
	}{
		{"password over http", []string{"https://10.0.0.5:2379", "http://10.0.0.6:2379"}, login, "http://10.0.0.6:2379 is http://: the pool's username and password would cross the network in clear"},
		{"client key over http", []string{"HTTP://10.0.0.6:2379"}, clientKey, "client key would cross the network in clear"},
		{"password over https", []string{"https://10.0.0.5:2379"}, login, ""},
		{"client key over https", []string{"https://10.0.0.5:2379"}, clientKey, ""},
		{"no credentials over http", []string{"http://10.0.0.6:2379"}, func(*Pool) {}, ""},
	} {
		p := base
		p.Etcd = c.etcd
		c.creds(&p)
		err := p.validate()
		var se *SettingError
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "pool.insecure_credentials: true") ||
			!errors.As(err, &se) || se.Key != KeyPoolEtcd):
			t.Errorf("%s: %v; want a pool.etcd error saying %q and naming pool.insecure_credentials", c.name, err, c.want)
		}
		if w := p.InsecureWarning(); w != "" {
			t.Errorf("%s: warned %q without pool.insecure_credentials", c.name, w)
		}
		p.InsecureCredentials = true
		if err := p.validate(); err != nil {
			t.Errorf("%s, with pool.insecure_credentials: %v", c.name, err)
		}
		if w := p.InsecureWarning(); (w != "") != (c.want != "") || (w != "" && !strings.Contains(w, "INSECURE")) {
			t.Errorf("%s, with pool.insecure_credentials: warning %q", c.name, w)
		}
	}
}
