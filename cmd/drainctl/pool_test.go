package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/pool"
)

// fakeAgent answers the pool's routes on a socket of the test's own: the
// pool's status as given, and each POST's body recorded, answered with
// note (pool set's by default), or refused with refuse (409).
type fakeAgent struct {
	mu     sync.Mutex
	status apitype.PoolStatus
	host   apitype.Status // GET /v1/status
	posts  []string
	note   string
	refuse *apitype.Error
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
		if f.refuse != nil {
			w.WriteHeader(http.StatusConflict)
			json.NewEncoder(w).Encode(apitype.ErrorBody{Error: f.refuse})
			return
		}
		note := f.note
		if note == "" {
			note = "max_unavailable 2 (was 1)"
		}
		json.NewEncoder(w).Encode(apitype.PoolAnswer{Note: note})
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

// pool forget ID: one id, or a usage error before the agent is asked;
// the id is the route's body and the agent's note is printed; a live
// member's refusal is busy, exit 5, as release's.
func TestPoolForgetCommand(t *testing.T) {
	f := &fakeAgent{note: "forgot web3: it no longer counts against the pool's budget nor in its size"}
	sock := f.serve(t)
	for _, args := range [][]string{{}, {"web3", "web4"}} {
		if _, stderr, code := runCLI(t, append([]string{"pool", "forget", "--socket", sock}, args...)...); code != exitUsage {
			t.Errorf("pool forget %v: exit %d, %s", args, code, stderr)
		}
	}
	if len(f.posts) != 0 {
		t.Fatalf("the agent was asked: %v", f.posts)
	}
	stdout, stderr, code := runCLI(t, "pool", "forget", "--socket", sock, "web3")
	if code != 0 || stdout != f.note+"\n" {
		t.Fatalf("pool forget: exit %d, %q, %q", code, stdout, stderr)
	}
	if len(f.posts) != 1 || f.posts[0] != `/v1/pool/forget {"id":"web3"}` {
		t.Errorf("posted %v", f.posts)
	}
	// The completion scripts ask drainctl itself: forget is offered.
	// urfave/cli reads the word before the cursor from os.Args, not from
	// the arguments given, so they are the shell's here.
	defer func(a []string) { os.Args = a }(os.Args)
	os.Args = []string{"drainctl", "pool", "--generate-bash-completion"}
	if out, _, _ := runCLI(t, os.Args[1:]...); !strings.Contains(out, "\nforget\n") {
		t.Errorf("completion of pool lacks forget:\n%s", out)
	}
	f.refuse = &apitype.Error{Code: apitype.CodeBusy, Msg: "pool web: web1 is a live member (its agent runs): stop its agent, or remove it from the pool in its configuration, first: live member"}
	if _, stderr, code := runCLI(t, "pool", "forget", "--socket", sock, "web1"); code != exitBusy || !strings.Contains(stderr, "web1 is a live member") {
		t.Errorf("forget a live member: exit %d, %s", code, stderr)
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
		"pool web: 0/1 unavailable (max_unavailable 1, the pool's; 2 members); this host: web2, configured 3\n",
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
	if !strings.Contains(stdout, "0/0 unavailable (max_unavailable none") || !strings.Contains(stdout, "NO SLOT IS GRANTED: pool settings of layout version 2") || strings.Contains(stdout, "file says") {
		t.Errorf("unusable settings:\n%s", stdout)
	}
}

// pool status says what uses the budget, in the words a waiter is told:
// a summary counting every member out, then one line each; a gone host
// is told how to stop counting it; the members' table shows each one's
// health, a gone one's as its last word.
func TestPoolStatusShowsWhatUsesTheBudget(t *testing.T) {
	now := time.Now()
	down := now.Add(-5 * time.Minute)
	f := &fakeAgent{status: apitype.PoolStatus{Name: "web", ID: "web1", MaxUnavailable: "1", ConfiguredMaxUnavailable: "1", Allowed: 1,
		Settings: &apitype.PoolSettings{Version: 1, MaxUnavailable: "1", By: "seeded by web1", Since: down},
		Members: []apitype.PoolMember{
			{ID: "web1", Live: true},
			{ID: "web2", Live: true},
			{ID: "web3", Live: true, Health: &apitype.Health{Why: "web server not answering", Since: down}},
		},
		Unavailable: []apitype.Unavailable{{ID: "web3", Why: "web server not answering", Since: down}}}}
	sock := f.serve(t)
	stdout, stderr, code := runCLI(t, "pool", "status", "--socket", sock)
	lines := strings.Split(stdout, "\n")
	if code != 0 || len(lines) < 2 {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
	if want := "pool web: 1/1 unavailable (max_unavailable 1, the pool's; 3 members); this host: web1, configured 1"; lines[0] != want {
		t.Errorf("summary %q, want %q", lines[0], want)
	}
	if want := "  " + (pool.Out{ID: "web3", Why: "web server not answering", Since: down}).Text(); lines[1] != want || !strings.HasPrefix(want, "  web3: web server not answering since ") {
		t.Errorf("the unavailable line %q, want %q", lines[1], want)
	}
	for _, re := range []string{
		`(?m)^MEMBER +AGENT +HEALTH$`,
		`(?m)^web1 +live +in service$`,
		`(?m)^web3 +live +out: web server not answering, since 5m00s ago$`,
	} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("lacks %s:\n%s", re, stdout)
		}
	}
	if strings.Contains(stdout, "pool forget") {
		t.Errorf("a live member is told to be forgotten:\n%s", stdout)
	}

	// web1 takes a slot to mend web3 (counted once), web4 is gone: 3/1.
	f.status.Members = append(f.status.Members, apitype.PoolMember{ID: "web4", LastSeen: now.Add(-20 * time.Minute),
		Health: &apitype.Health{Why: "agent gone", Since: now.Add(-20 * time.Minute), Gone: true}},
		apitype.PoolMember{ID: "web5", LastSeen: now.Add(-time.Hour)})
	f.status.Holders = []apitype.Claim{{ID: "web1", Op: "enter", Reason: "kernel update", By: "root", Since: now.Add(-time.Minute)}}
	f.status.Unavailable = []apitype.Unavailable{
		{ID: "web1", Why: "holds a slot (enter: kernel update, by root)", Since: now.Add(-time.Minute), Slot: true},
		{ID: "web3", Why: "web server not answering", Since: down},
		{ID: "web4", Why: "agent gone", Since: now.Add(-20 * time.Minute)},
		{ID: "web5", Why: "agent gone", Since: now.Add(-time.Hour)},
	}
	stdout, _, _ = runCLI(t, "pool", "status", "--socket", sock)
	for _, re := range []string{
		`^pool web: 4/1 unavailable \(max_unavailable 1, the pool's; 5 members\)`,
		`(?m)^  web1: holds a slot \(enter: kernel update, by root\) since .*\n  web3: web server not answering since .*\n  web4: agent gone since \S+( \S+)? \(counted until it is back; drainctl pool forget web4 if it is removed for good\)$`,
		`(?m)^web4 +gone 20m00s ago +agent gone, since 20m00s ago$`,
		`(?m)^web5 +gone 1h0m0s ago +last said: in service$`,
		`(?m)^web1 +enter +1m00s ago +live +root +kernel update$`,
	} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("lacks %s:\n%s", re, stdout)
		}
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
