package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/forward"
)

func TestLoadGood(t *testing.T) {
	f, err := Load(filepath.Join("..", "..", "testdata", "config", "good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []forward.Forward{{From: 81, To: 80}, {From: 444, To: 443}}
	if f.Backend != "auto" || len(f.Forwards) != 2 || f.Forwards[0] != want[0] || f.Forwards[1] != want[1] {
		t.Fatalf("got %+v", f)
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct {
		doc, want string
	}{
		{"backend: auto\nforward:\n  - 81:80\n", "line 2: field forward not found"},
		{"backend: pf\n", "line 1: backend \"pf\""},
		{"forwards:\n  - 81:80\n  - 81\n", "line 3: forward \"81\": want FROM:TO"},
		{"forwards:\n  - 81:80\n  - 0:80\n", "line 3: forward \"0:80\""},
		{"forwards:\n  - {from: 81}\n", "line 2: forwards: each entry is FROM:TO"},
		{"forwards:\n  - 81:80\n  - 81:8080\n", "already forwarded"},
		{"backend: [\n", "line 1"},
		{"drain:\n  deadline: soon\n", `line 2: "soon" is not a duration`},
		{"drain:\n  on_deadline: later\n", `line 2: on_deadline "later"`},
		{"drain:\n  ignore:\n    - 10.0.0.0/33\n", `line 3: "10.0.0.0/33"`},
		{"ready:\n  url: localhost\n", `line 2: ready url "localhost"`},
		{"ready:\n  status: 42\n", `line 2: ready status "42"`},
		{"restart:\n  restart_command: x\n", "line 2: field restart_command not found"},
	} {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error = %v, want it to contain %q", tc.doc, err, tc.want)
		}
	}
}

func TestEmptyAndMissing(t *testing.T) {
	if f, err := Parse(nil); err != nil || len(f.Forwards) != 0 {
		t.Errorf("empty document: %+v, %v", f, err)
	}
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file error = %v", err)
	}
}

func TestFullExampleIsValid(t *testing.T) {
	f, err := Load(filepath.Join("..", "..", "testdata", "config", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Restart.RestartCmd != "auto" || time.Duration(f.Drain.Deadline) != time.Minute ||
		f.Ready.Status != "200-399" || f.SocketGroup != "drainctl" || time.Duration(f.Reconcile) != 2*time.Second ||
		f.HealthChecks.Watch == nil || !*f.HealthChecks.Watch || f.HealthChecks.Fall != 2 || f.HealthChecks.Rise != 2 ||
		time.Duration(f.Drain.Grace) != 500*time.Millisecond {
		t.Fatalf("%+v", f)
	}
}

func TestReadyStatuses(t *testing.T) {
	for doc, want := range map[string]Statuses{
		"ready:\n  status: 200\n":                 "200",
		"ready:\n  status: 200-399\n":             "200-399",
		"ready:\n  status: [200, 301, 500-599]\n": "200,301,500-599",
	} {
		f, err := Parse([]byte(doc))
		if err != nil || f.Ready.Status != want {
			t.Errorf("%q: %q, %v; want %q", doc, f.Ready.Status, err, want)
		}
	}
	if _, err := Parse([]byte("backend: auto\nhealth_checks:\n  fall: 0\n")); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("fall 0: %v, want an error on line 3", err)
	}
	if _, err := Parse([]byte("backend: auto\nready:\n  status: 700\n")); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("status 700: %v, want an error on line 3", err)
	}
}
