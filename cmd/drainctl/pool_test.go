package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/api/apitype"
)

// fakeAgent answers the pool's routes on a socket of the test's own: the
// pool's status as given, and each POST's body recorded.
type fakeAgent struct {
	mu     sync.Mutex
	status apitype.PoolStatus
	host   apitype.Status // GET /v1/status
	posts  []string
}

func (f *fakeAgent) serve(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/status":
			json.NewEncoder(w).Encode(f.host)
			return
		case r.Method == http.MethodGet:
			json.NewEncoder(w).Encode(f.status)
			return
		}
		b, _ := io.ReadAll(r.Body)
		f.posts = append(f.posts, r.URL.Path+" "+strings.TrimSpace(string(b)))
		json.NewEncoder(w).Encode(apitype.PoolAnswer{Note: "max_unavailable 2 (was 1)"})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// pool set max-unavailable: the limit is checked before the agent is
// asked (a usage error, exit 2), and sent as the route's body.
func TestPoolSetCommand(t *testing.T) {
	f := &fakeAgent{}
	sock := f.serve(t)
	for _, args := range [][]string{{"max-unavailable"}, {"max-unavailable", "0"}, {"max-unavailable", "x%"}, {"limit", "2"}, {"max-unavailable", "2", "3"}} {
		if _, stderr, code := runCLI(t, append([]string{"pool", "set", "--socket", sock}, args...)...); code != exitUsage {
			t.Errorf("pool set %v: exit %d, %s", args, code, stderr)
		}
	}
	if len(f.posts) != 0 {
		t.Fatalf("the agent was asked: %v", f.posts)
	}
	stdout, stderr, code := runCLI(t, "pool", "set", "--socket", sock, "max-unavailable", "2")
	if code != 0 || stdout != "max_unavailable 2 (was 1)\n" {
		t.Fatalf("pool set: exit %d, %q, %q", code, stdout, stderr)
	}
	if len(f.posts) != 1 || f.posts[0] != `/v1/pool/set {"max_unavailable":"2"}` {
		t.Errorf("posted %v", f.posts)
	}
}

// pool status shows the pool's limit, this host's configured one, and a
// line when they differ; settings it cannot use say no slot is granted.
func TestPoolStatusShowsTheLimit(t *testing.T) {
	since := time.Now().Add(-time.Hour)
	f := &fakeAgent{status: apitype.PoolStatus{Name: "web", ID: "web2", MaxUnavailable: "1", ConfiguredMaxUnavailable: "3", Allowed: 1,
		Settings: &apitype.PoolSettings{Version: 1, MaxUnavailable: "1", By: "seeded by web1", Since: since},
		Members:  []apitype.PoolMember{{ID: "web1", Live: true}, {ID: "web2", Live: true}}}}
	sock := f.serve(t)
	stdout, _, code := runCLI(t, "pool", "status", "--socket", sock)
	for _, want := range []string{
		"pool web: 0/1 out (max_unavailable 1, the pool's; 2 members); this host: web2, configured 3\n",
		"max_unavailable 1: seeded by web1, 1h0m0s ago\n",
		"this host's file says max_unavailable 3, the pool's is 1: the pool's decides",
	} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("exit %d; lacks %q:\n%s", code, want, stdout)
		}
	}
	f.status.Settings, f.status.MaxUnavailable, f.status.Allowed = nil, "", 0
	f.status.SettingsError = "pool settings of layout version 2, this drainctl knows 1 only"
	stdout, _, _ = runCLI(t, "pool", "status", "--socket", sock)
	if !strings.Contains(stdout, "0/0 out (max_unavailable none") || !strings.Contains(stdout, "NO SLOT IS GRANTED: pool settings of layout version 2") || strings.Contains(stdout, "file says") {
		t.Errorf("unusable settings:\n%s", stdout)
	}
}

// drainctl status shows the pool's limit, and says when this host's file
// says otherwise (told, not obeyed).
func TestStatusShowsThePoolsLimit(t *testing.T) {
	f := &fakeAgent{host: apitype.Status{State: apitype.State{Version: 1, Phase: apitype.PhaseInService},
		Pool: &apitype.StatusPool{Name: "web", ID: "web2", MaxUnavailable: "1", ConfiguredMaxUnavailable: "3"}}}
	sock := f.serve(t)
	stdout, stderr, code := runCLI(t, "status", "--socket", sock)
	if code != 0 || !strings.Contains(stdout, "pool:     web as web2, max_unavailable 1 (the pool's)") ||
		!strings.Contains(stdout, "this host's file says max_unavailable 3, the pool's is 1: the pool's decides") {
		t.Errorf("exit %d:\n%s%s", code, stdout, stderr)
	}
	f.host.Pool.ConfiguredMaxUnavailable = "1"
	if stdout, _, _ := runCLI(t, "status", "--socket", sock); strings.Contains(stdout, "file says") {
		t.Errorf("the same limit said to differ:\n%s", stdout)
	}
}
