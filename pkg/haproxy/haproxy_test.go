package haproxy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// expect is drainctl's defaults: forward 81:80, fall 2 rise 2.
var expect = Expect{ForwardPort: 81, ServicePort: 80, Fall: 2, Rise: 2}

// render prints findings as `drainctl haproxy-check` does.
func render(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		who := "backend " + f.Backend
		if f.Server != "" {
			who += ", server " + f.Server
		}
		fmt.Fprintf(&b, "line %d: %s: %s\n    change to: %s\n", f.Line, who, f.Problem, f.Fix)
	}
	if len(fs) == 0 {
		// Written out, so that a golden that is missing or empty (which
		// reads as "") cannot pass for a clean config.
		return "no findings\n"
	}
	return b.String()
}

func TestCheckTestdata(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "haproxy", "*.cfg"))
	if len(files) < 3 {
		t.Fatalf("found %d test configs", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			fs, err := Check(fh, expect)
			if err != nil {
				t.Fatal(err)
			}
			got := render(fs)
			golden := strings.TrimSuffix(f, ".cfg") + ".golden"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run with -update to write it): %v", err)
			}
			if got != string(want) {
				t.Fatalf("findings differ from %s (-update to rewrite):\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

// The generated backend is what the checker wants, in both pattern knobs.
func TestGeneratedBackendPassesTheCheck(t *testing.T) {
	be, err := Backend(Options{Servers: []Server{{"web1", "198.18.1.2"}, {"web2", "198.18.2.2"}}})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := Check(strings.NewReader("defaults\n    mode http\n"+be), expect)
	if err != nil || len(fs) != 0 {
		t.Fatalf("generated backend has findings: %v %s\n%s", err, render(fs), be)
	}
	for _, want := range []string{
		"server web1 198.18.1.2:80 cookie web1 check port 81 inter 500ms fall 2 rise 2",
		"server web1-bak 198.18.1.2:80 cookie web1 check inter 1s fall 3 rise 2 backup",
		"retry-on conn-failure empty-response response-timeout", "option redispatch", "cookie SRV insert indirect nocache",
	} {
		if !strings.Contains(be, want) {
			t.Errorf("generated backend lacks %q", want)
		}
	}
	// The other pattern is flagged for what it is.
	be, _ = Backend(Options{Servers: []Server{{"web1", "198.18.1.2"}}, ThroughForward: true})
	fs, _ = Check(strings.NewReader(be), expect)
	if len(fs) != 1 || !strings.Contains(fs[0].Problem, "traffic goes through the forward port 81") {
		t.Fatalf("through-forward backend: %s", render(fs))
	}
	if _, err := Backend(Options{}); err == nil {
		t.Fatal("no servers accepted")
	}
	// The agent-check pattern: one entry per server, no findings; the
	// checker flags what breaks it.
	be, _ = Backend(Options{Servers: []Server{{"web1", "198.18.1.2"}}, AgentPort: 8081})
	if fs, _ := Check(strings.NewReader(be), expect); len(fs) != 0 {
		t.Fatalf("agent-check backend has findings: %s\n%s", render(fs), be)
	}
	if want := "server web1 198.18.1.2:80 cookie web1 check inter 1s fall 3 rise 2 agent-check agent-port 8081 agent-inter 500ms"; !strings.Contains(be, want) || strings.Contains(be, "-bak") {
		t.Fatalf("agent-check backend:\n%s", be)
	}
	const agent = "check inter 1s fall 3 rise 2 agent-check agent-port 8081 agent-inter 500ms"
	for _, tc := range []struct{ line, want string }{
		{"check inter 500ms fall 2 rise 2 agent-check agent-port 8081", "health check fails after 1s"},
		{"check inter 1s fall 3 rise 2 agent-check", "agent-check without agent-port"},
		{"agent-check agent-port 8081", "not health-checked"},
		{"check inter 1s fall 3 rise 2", "no backup entry"},
	} {
		fs, _ := Check(strings.NewReader(strings.Replace(be, agent, tc.line, 1)), expect)
		if got := render(fs); !strings.Contains(got, tc.want) {
			t.Errorf("%q: findings %s, want %q", tc.line, got, tc.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]time.Duration{"500": 500 * time.Millisecond, "2s": 2 * time.Second, "1m": time.Minute, "1d": 24 * time.Hour} {
		if got, err := parseTime(in); err != nil || got != want {
			t.Errorf("parseTime(%q) = %v, %v", in, got, err)
		}
	}
}

// A primary entry whose fall or rise differ from the agents' would make
// their confirmations wrong: flagged, in either direction, unless the
// agents count the same (--fall/--rise, health_checks).
func TestFallRiseMustMatchTheAgents(t *testing.T) {
	be, _ := Backend(Options{Servers: []Server{{"web1", "198.18.1.2"}}, Fall: 3, Rise: 1})
	fs, _ := Check(strings.NewReader(be), expect)
	if len(fs) != 1 || !strings.Contains(fs[0].Problem, "fall 3, but drainctl's agent counts 2 refused checks: it would say the server is out of rotation while HAProxy still sends it new users") ||
		!strings.Contains(fs[0].Problem, "rise 1, but drainctl's agent counts 2 accepted checks: every restore waits a check longer than needed") ||
		!strings.HasSuffix(fs[0].Fix, "check port 81 inter 500ms fall 2 rise 2") {
		t.Fatalf("fall 3 rise 1 against 2/2: %s", render(fs))
	}
	if fs, _ := Check(strings.NewReader(be), Expect{ForwardPort: 81, ServicePort: 80, Fall: 3, Rise: 1}); len(fs) != 0 {
		t.Fatalf("fall 3 rise 1 against agents counting 3/1: %s", render(fs))
	}
	// The backup entry's counts are its own business.
	be, _ = Backend(Options{Servers: []Server{{"web1", "198.18.1.2"}}, BackupFall: 5})
	if fs, _ := Check(strings.NewReader(be), expect); len(fs) != 0 {
		t.Fatalf("backup fall 5: %s", render(fs))
	}
}
