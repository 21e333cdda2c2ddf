package doctor

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/runner"
	"github.com/drainctl/drainctl/pkg/settings"
)

// backend is the recommended backend, as `drainctl haproxy-config`
// writes it, for one server and forward.
func backend(name, addr, fwd, svc string) string {
	return "backend " + name + "\n" +
		"    balance roundrobin\n    cookie SRV insert indirect nocache\n    option redispatch\n    retries 3\n" +
		"    retry-on conn-failure empty-response response-timeout\n    http-reuse never\n    option httpchk GET /\n" +
		"    server web1 " + addr + ":" + svc + " cookie web1 check port " + fwd + " inter 500ms fall 2 rise 2\n" +
		"    server web1-bak " + addr + ":" + svc + " cookie web1 check inter 1s fall 3 rise 2 backup\n"
}

// A load balancer's haproxy.cfg: each backend that lists this host is
// judged against the forward its entry uses; other apps' backends are
// counted, not judged.
func TestReadHAProxyJudgesThisHostsBackends(t *testing.T) {
	cfg := backend("app1", "127.0.0.1", "81", "80") +
		backend("app2", "127.0.0.1", "8081", "8080") +
		// app3 lists this host without a backup entry: a finding.
		"backend app3\n    cookie SRV insert indirect nocache\n    option redispatch\n    retries 3\n    server web1 127.0.0.1:80 cookie web1 check port 81\n" +
		// other is another app's: its findings are not this host's.
		"backend other\n    server x 192.0.2.7:80 check\n"
	file := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s := settings.Defaults()
	s.Forwards = []forward.Forward{{From: 81, To: 80}, {From: 8081, To: 8080}}
	h, err := readHAProxy(file, s, localNames())
	if err != nil {
		t.Fatal(err)
	}
	if h.NotMine || len(h.Mine) != 3 {
		t.Fatalf("this host's entries: %+v (not mine %v)", h.Mine, h.NotMine)
	}
	if h.Others == 0 {
		t.Error("the other app's findings were not counted")
	}
	for _, x := range h.Findings {
		if x.Backend != "app3" {
			t.Errorf("finding outside app3 (app2 judged against the wrong forward?): %+v", x)
		}
	}
	if len(h.Findings) == 0 {
		t.Error("app3's missing backup entry not found")
	}
}

// Under su without /usr/sbin, the config test's program is on the
// agent's PATH only: doctor finds it there and its config test runs it,
// with doctor's own PATH left as it was.
func TestConfigTestFindsProgramsOnTheAgentsPath(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "drainctl-test-apachectl"), []byte("#!/bin/sh\n[ \"$1\" = -t ] && echo Syntax OK\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	saved := agentPath
	t.Cleanup(func() { agentPath = saved })
	agentPath = []string{dir}
	path := t.TempDir() // doctor's PATH, without the program
	t.Setenv("PATH", path)

	if p, err := lookPath("drainctl-test-apachectl"); err != nil || p != filepath.Join(dir, "drainctl-test-apachectl") {
		t.Errorf("lookPath: %q, %v", p, err)
	}
	c := runner.Command{Line: "drainctl-test-apachectl -t", Timeout: 5 * time.Second}
	if err := configTest(context.Background(), c); err != nil {
		t.Errorf("the config test did not find the program on the agent's PATH: %v", err)
	}
	if _, err := c.Run(context.Background()); err == nil {
		t.Error("the program was found without the agent's PATH: the test proves nothing")
	}
	if got := os.Getenv("PATH"); got != path {
		t.Errorf("doctor's PATH changed to %q", got)
	}
	if got, want := searchPath(), path+string(os.PathListSeparator)+dir; got != want {
		t.Errorf("searchPath %q, want %q", got, want)
	}
}
