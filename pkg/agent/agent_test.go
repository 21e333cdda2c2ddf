package agent

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/drainctl/drainctl/pkg/settings"
)

// Every start whose pool credentials go in clear (allowed by
// pool.insecure_credentials) says so, loudly; a start over https says
// nothing of the kind.
func TestStartWarnsOfCredentialsInClear(t *testing.T) {
	start := func(etcd string) string {
		var b bytes.Buffer
		s := settings.Defaults()
		s.Pool.Etcd, s.Pool.Username, s.Pool.PasswordFile, s.Pool.InsecureCredentials = []string{etcd}, "web1", "/etc/drainctl/pw", true
		socketAccess(s, slog.New(slog.NewTextHandler(&b, nil)))
		return b.String()
	}
	if out := start("http://10.0.0.5:2379"); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "INSECURE: the pool's credentials cross the network in clear to http://10.0.0.5:2379") {
		t.Fatalf("a start with credentials over http logged:\n%s", out)
	}
	if out := start("https://10.0.0.5:2379"); strings.Contains(out, "INSECURE") {
		t.Fatalf("a start over https logged:\n%s", out)
	}
}
