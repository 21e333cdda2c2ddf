package settings

// The pool: its settings, their checks, and the pool.Pool made of them.

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/fileowner"
	"github.com/drainctl/drainctl/pkg/pool"
)

// Pool puts this host in a pool coordinated on etcd: at most
// MaxUnavailable of its servers out at once. No Etcd: no pool, the host
// decides alone.
type Pool struct {
	// Etcd are etcd's client URLs (http:// or https://).
	Etcd []string
	// Name is the pool: several share one etcd and never block each other.
	Name string
	// ID is this host in the pool; empty means its host name (Resolve).
	ID string
	// MaxUnavailable is a count, or a percentage of the pool's members.
	MaxUnavailable pool.Limit
	// CAFile verifies etcd's certificate; CertFile and KeyFile are this
	// host's client certificate, if etcd asks for one.
	CAFile   string
	CertFile string
	KeyFile  string
	// Username and PasswordFile log in to etcd, if its auth is on; the
	// password is read from the file (mode 0600 or stricter).
	Username     string
	PasswordFile string
	// Wait is how long an operation waits for a slot unless it says.
	Wait time.Duration
	// InsecureCredentials allows credentials (a password, a client key)
	// with an http:// endpoint, which sends them in clear: labs only.
	InsecureCredentials bool
}

// Enabled says whether a pool is configured.
func (p Pool) Enabled() bool { return len(p.Etcd) > 0 }

// validate checks the pool's settings; nothing to check without a pool.
func (p Pool) validate() error {
	if !p.Enabled() {
		return nil
	}
	for _, e := range p.Etcd {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid(KeyPoolEtcd, "pool etcd endpoint %q: want http://HOST:PORT or https://HOST:PORT", e)
		}
	}
	for _, c := range []struct{ key, what, v string }{{KeyPoolName, "name", p.Name}, {KeyPoolID, "id", p.ID}} {
		if c.v == "" || strings.ContainsAny(c.v, "/ \t\n") {
			return invalid(c.key, "pool %s %q: want a word without / or spaces", c.what, c.v)
		}
	}
	if p.Wait <= 0 {
		return invalid(KeyPoolWait, "pool wait %v: must be positive", p.Wait)
	}
	if (p.CertFile == "") != (p.KeyFile == "") {
		return invalid(KeyPoolCertFile, "pool cert_file and key_file: give both or neither")
	}
	for _, f := range []struct{ key, path string }{{KeyPoolCAFile, p.CAFile}, {KeyPoolCertFile, p.CertFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return invalid(f.key, "%s: %v", f.key, err)
		}
	}
	if (p.Username == "") != (p.PasswordFile == "") {
		return invalid(KeyPoolUsername, "pool username and password_file: give both or neither")
	}
	for _, f := range []struct{ key, path string }{{KeyPoolKeyFile, p.KeyFile}, {KeyPoolPasswordFile, p.PasswordFile}} {
		if err := secretFile(f.key, f.path); err != nil {
			return err
		}
	}
	return p.checkCleartext()
}

// checkCleartext refuses credentials that an http:// endpoint would send
// in clear (etcd's client drops TLS for http, and ca_file with it),
// unless InsecureCredentials allows it.
func (p Pool) checkCleartext() error {
	if p.InsecureCredentials || (p.Username == "" && p.KeyFile == "") {
		return nil
	}
	for _, e := range p.Etcd {
		if strings.HasPrefix(strings.ToLower(e), "http://") {
			what := "username and password"
			if p.Username == "" {
				what = "client key"
			}
			return invalid(KeyPoolEtcd, "pool etcd endpoint %s is http://: the pool's %s would cross the network in clear; use https:// "+
				"(with ca_file), or set %s: true for a lab", e, what, KeyPoolInsecureCreds)
		}
	}
	return nil
}

// InsecureWarning is the warning of every start whose credentials go in
// clear (InsecureCredentials allowed it); empty if none do.
func (p Pool) InsecureWarning() string {
	if !p.Enabled() || !p.InsecureCredentials || (p.Username == "" && p.KeyFile == "") {
		return ""
	}
	for _, e := range p.Etcd {
		if strings.HasPrefix(strings.ToLower(e), "http://") {
			return fmt.Sprintf("INSECURE: the pool's credentials cross the network in clear to %s (pool.insecure_credentials: true); use https:// outside a lab", e)
		}
	}
	return ""
}

// secretFile refuses a key or password file others can read (a secret
// that leaked is not one), or that another user owns (they could change
// it, or make it readable, at will).
func secretFile(key, path string) error {
	if path == "" {
		return nil
	}
	fi, err := fileowner.Stat(key, path)
	if fi == nil {
		return invalid(key, "%s: %v", key, err)
	}
	if err != nil {
		return invalid(key, "%v", err)
	}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return invalid(key, "%s %s: mode %04o lets others read it: chmod 600 %s", key, path, m, path)
	}
	return nil
}

// PoolLeaseFile is the file of the state directory that keeps the
// agent's pool lease (its id) from one start to the next.
const PoolLeaseFile = "pool-lease"

// Open makes the pool.Pool of the settings (it dials nothing yet), for
// what is not the agent: drainctl doctor's when no agent answers. Its
// lease, if it makes one, is its own and ends with Close.
func (p Pool) Open() (*pool.Pool, error) { return p.open("") }

// OpenAgent makes the agent's pool.Pool: Open's, with its lease kept in
// stateDir (PoolLeaseFile). A restart of the agent (systemctl restart,
// a package upgrade) then takes the same lease again while it lives:
// the host's member key never ends, and the pool never counts it as a
// host gone, nor writes its departure and return. Only the agent keeps
// it: another process taking the agent's lease would keep a live agent's
// member alive after the agent died, or end it with its own Close.
func (p Pool) OpenAgent(stateDir string) (*pool.Pool, error) {
	return p.open(filepath.Join(stateDir, PoolLeaseFile))
}

func (p Pool) open(leaseFile string) (*pool.Pool, error) {
	cfg := pool.Config{Endpoints: p.Etcd, Name: p.Name, ID: p.ID, Limit: p.MaxUnavailable, Username: p.Username, LeaseFile: leaseFile}
	if p.PasswordFile != "" {
		b, err := os.ReadFile(p.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("pool password: %w", err)
		}
		cfg.Password = strings.TrimRight(string(b), "\r\n")
	}
	if p.CAFile != "" || p.CertFile != "" {
		t := &tls.Config{MinVersion: tls.VersionTLS12}
		if p.CAFile != "" {
			pem, err := os.ReadFile(p.CAFile)
			if err != nil {
				return nil, fmt.Errorf("pool CA: %w", err)
			}
			t.RootCAs = x509.NewCertPool()
			if !t.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("pool CA %s: no PEM certificate in it", p.CAFile)
			}
		}
		if p.CertFile != "" {
			c, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("pool client certificate: %w", err)
			}
			t.Certificates = []tls.Certificate{c}
		}
		cfg.TLS = t
	}
	return pool.Open(cfg)
}
