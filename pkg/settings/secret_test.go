package settings

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// A key or password file another user owns is refused, whatever its
// mode: its owner could change it, or open it to others, at will.
func TestSecretFileOwner(t *testing.T) {
	nstest.RequireRoot(t) // files of another owner: chown
	dir := t.TempDir()
	file := func(name string, uid int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, 0); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := Defaults().Pool
	good.Etcd, good.ID = []string{"https://10.0.0.5:2379"}, "web1"
	for _, c := range []struct {
		key string
		set func(*Pool)
	}{
		{KeyPoolKeyFile, func(p *Pool) { p.CertFile, p.KeyFile = file("c.pem", 0), file("k.pem", 65534) }},
		{KeyPoolPasswordFile, func(p *Pool) { p.Username, p.PasswordFile = "drainctl", file("pw", 65534) }},
	} {
		p := good
		c.set(&p)
		err := p.validate()
		var se *SettingError
		if err == nil || !strings.Contains(err.Error(), "owned by uid 65534") || !strings.Contains(err.Error(), "chown root") || !errors.As(err, &se) || se.Key != c.key {
			t.Errorf("%s: %v, want refused for its owner", c.key, err)
		}
	}
	p := good
	p.CertFile, p.KeyFile, p.Username, p.PasswordFile = file("c2.pem", 0), file("k2.pem", 0), "drainctl", file("pw2", 0)
	if err := p.validate(); err != nil {
		t.Errorf("root's secrets of mode 0600: %v", err)
	}
}
