package settings

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
