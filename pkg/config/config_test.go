package config

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/settings"
)

// defaults are settings.Defaults with a restart command given: Resolve then
// asks systemd nothing.
func defaults() settings.Settings {
	s := settings.Defaults()
	s.Restart.Line = "true"
	return s
}

// settle is what the agent does with a document: lay it over the
// defaults, resolve, validate, and name the file's line of what Validate
// refuses.
func settle(doc string) (settings.Settings, error) {
	s := defaults()
	src, err := Parse([]byte(doc), &s)
	if err != nil {
		return s, err
	}
	s.Resolve(context.Background())
	return s, src.Locate(s.Validate())
}

func TestLoadGood(t *testing.T) {
	s := defaults()
	src, err := Load(filepath.Join("..", "..", "testdata", "config", "good.yaml"), &s)
	if err != nil {
		t.Fatal(err)
	}
	want := []forward.Forward{{From: 81, To: 80}, {From: 444, To: 443}}
	if s.Backend != "auto" || len(s.Forwards) != 2 || s.Forwards[0] != want[0] || s.Forwards[1] != want[1] {
		t.Fatalf("got %+v", s)
	}
	if !src.Sets(settings.KeyForwards) || src.Line(settings.KeyForwards) != 4 || src.Sets(settings.KeyDeadline) {
		t.Fatalf("source: forwards set %v on line %d, drain.deadline set %v", src.Sets(settings.KeyForwards), src.Line(settings.KeyForwards), src.Sets(settings.KeyDeadline))
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
		{"forwards:\n  - 81:80\n  - 81:8080\n", "line 2: forward 81:8080: port 81 is already forwarded"},
		{"backend: [\n", "line 1"},
		{"drain:\n  deadline: soon\n", `line 2: "soon" is not a duration`},
		{"drain:\n  on_deadline: later\n", `line 2: on_deadline "later"`},
		{"drain:\n  ignore:\n    - 10.0.0.0/33\n", `line 3: "10.0.0.0/33"`},
		{"ready:\n  url: localhost\n", `line 2: ready url "localhost"`},
		{"ready:\n  status: 42\n", `line 2: ready status "42"`},
		{"restart:\n  restart_command: x\n", "line 2: field restart_command not found"},
		{"health_checks:\n  rise: many\n", `line 2: "many": want a count from 1 to 100`},
		{"reconcile_interval: 50ms\n", "line 1: reconcile interval 50ms: must be at least 100ms"},
		{"socket_group: no-such-group-here\n", `line 1: socket group "no-such-group-here" does not exist`},
		{"\nmetrics_listen: nope\n", `line 2: metrics listen "nope"`},
	} {
		_, err := settle(tc.doc)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error = %v, want it to contain %q", tc.doc, err, tc.want)
		}
	}
}

// A document that fails to parse changes nothing, even the keys before
// the bad one.
func TestParseErrorChangesNothing(t *testing.T) {
	s := defaults()
	if _, err := Parse([]byte("backend: nftables\nstate_dir: /tmp/x\ndrain:\n  deadline: soon\n"), &s); err == nil {
		t.Fatal("accepted")
	}
	if !reflect.DeepEqual(s, defaults()) {
		t.Fatalf("changed: %+v", s)
	}
}

// Locate leaves alone what the file did not give: a flag's value, or a
// default.
func TestLocateOnlyTheFilesKeys(t *testing.T) {
	s := defaults()
	src, err := Parse([]byte("backend: nftables\n"), &s)
	if err != nil {
		t.Fatal(err)
	}
	s.Checks.Fall = 0 // as --fall 0 would
	err = src.Locate(s.Validate())
	if err == nil || strings.Contains(err.Error(), "line") {
		t.Fatalf("%v: want the error without a line", err)
	}
}

func TestEmptyAndMissing(t *testing.T) {
	s := defaults()
	src, err := Parse(nil, &s)
	if err != nil || !reflect.DeepEqual(s, defaults()) || src.Sets(settings.KeyForwards) {
		t.Errorf("empty document: %+v, %v", s, err)
	}
	_, err = Load(filepath.Join(t.TempDir(), "nope.yaml"), &s)
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file error = %v", err)
	}
}

// An empty value leaves the default, as it always has: "", [] and a zero
// duration. A count of 0 is no empty value: Validate refuses it.
func TestEmptyValuesKeepTheDefaults(t *testing.T) {
	s, err := settle("backend: \"\"\nforwards: []\nstate_dir: \"\"\ndrain:\n  min_wait: 0s\n  deadline: 0s\nready:\n  timeout: 0s\n  url: \"\"\n")
	d := defaults()
	d.Resolve(context.Background())
	if err != nil || !reflect.DeepEqual(s, d) {
		t.Fatalf("%+v, %v", s, err)
	}
	if _, err := settle("health_checks:\n  fall: 0\n"); err == nil || !strings.Contains(err.Error(), "line 2: fall 0") {
		t.Fatalf("fall 0: %v", err)
	}
}

func TestFullExampleIsValid(t *testing.T) {
	s := defaults()
	src, err := Load(filepath.Join("..", "..", "testdata", "config", "full.yaml"), &s)
	if err != nil {
		t.Fatal(err)
	}
	if s.Restart.Line != "auto" || s.Policy.Deadline != time.Minute ||
		s.Ready.Accept.String() != "200-399" || s.SocketGroup != "drainctl" || time.Duration(s.Reconcile) != 2*time.Second ||
		!s.Checks.Watch || s.Checks.Fall != 2 || s.Checks.Rise != 2 ||
		s.Policy.Grace != 500*time.Millisecond {
		t.Fatalf("%+v", s)
	}
	// The package creates the drainctl group; this host need not have it.
	s.SocketGroup = ""
	if err := src.Locate(s.Validate()); err != nil {
		t.Fatal(err)
	}
}

// full.yaml says "every key with its default": it is settings.Defaults, but
// for the two keys whose default is a rule rather than a value
// (socket_group: drainctl if it exists; ready.url: from the first
// forward), and it has every key the agent names.
func TestFullExampleIsTheDefaults(t *testing.T) {
	s := settings.Defaults()
	src, err := Load(filepath.Join("..", "..", "testdata", "config", "full.yaml"), &s)
	if err != nil {
		t.Fatal(err)
	}
	want := settings.Defaults()
	want.SocketGroup, want.Ready.URL = "drainctl", "http://127.0.0.1:80/"
	if !reflect.DeepEqual(s, want) {
		t.Errorf("full.yaml:\n%+v\nDefaults:\n%+v", s, want)
	}
	for _, st := range settings.All() {
		if src.Line(st.Key) == 0 {
			t.Errorf("full.yaml has no %s", st.Key)
		}
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "config", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range settings.All() {
		for _, old := range st.OldKeys {
			if strings.Contains(string(b), "\n  "+lastKey(old)+":") {
				t.Errorf("full.yaml uses the old key %s, not %s", old, st.Key)
			}
		}
	}
}

// The file's old keys are still read, as their settings; a setting given
// under both names is an error, naming both lines.
func TestOldKeys(t *testing.T) {
	old, err := settle("restart:\n  configtest_cmd: apachectl -t\n  configtest_timeout: 10s\n  restart_cmd: apachectl -k graceful\n  restart_timeout: 2m\n")
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := settle("configtest:\n  cmd: apachectl -t\n  timeout: 10s\nrestart:\n  cmd: apachectl -k graceful\n  timeout: 2m\n")
	if err != nil || !reflect.DeepEqual(old, fresh) || old.Restart.Timeout != 2*time.Minute || old.ConfigTest.Line != "apachectl -t" {
		t.Fatalf("old keys:\n%+v\nnew keys:\n%+v (%v)", old, fresh, err)
	}
	// Validate's errors name the old key's line.
	if _, err := settle("restart:\n  restart_cmd: x\n  configtest_timeout: -1s\n"); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("old key's error: %v, want line 3", err)
	}
	_, err = settle("restart:\n  restart_cmd: x\n  cmd: y\n")
	if err == nil || !strings.Contains(err.Error(), "line 2: restart.restart_cmd is restart.cmd, given on line 3") {
		t.Errorf("both names: %v", err)
	}
}

func TestReadyStatuses(t *testing.T) {
	for doc, want := range map[string]string{
		"ready:\n  status: 200\n":                 "200",
		"ready:\n  status: 200-399\n":             "200-399",
		"ready:\n  status: [200, 301, 500-599]\n": "200,301,500-599",
	} {
		s, err := settle(doc)
		if err != nil || s.Ready.Accept.String() != want {
			t.Errorf("%q: %q, %v; want %q", doc, s.Ready.Accept, err, want)
		}
	}
	if _, err := settle("backend: auto\nhealth_checks:\n  fall: 0\n"); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("fall 0: %v, want an error on line 3", err)
	}
	if _, err := settle("backend: auto\nready:\n  status: 700\n"); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("status 700: %v, want an error on line 3", err)
	}
}

// The file's durations land in the settings as given.
func TestDurations(t *testing.T) {
	s, err := settle("reconcile_interval: 500ms\ndrain:\n  quiet: 3s\nrestart:\n  restart_timeout: 2m\n")
	if err != nil || s.Reconcile != 500*time.Millisecond || s.Policy.Quiet != 3*time.Second || s.Restart.Timeout != 2*time.Minute {
		t.Fatalf("%+v, %v", s, err)
	}
}

// YAML's anchors and aliases are followed, as a struct decoder did.
func TestAnchorsAndAliases(t *testing.T) {
	s := settings.Defaults()
	doc := "ready:\n  timeout: &t 20s\nrestart:\n  timeout: *t\ndrain:\n  ignore: &nets [192.0.2.0/24]\npool: &p\n  name: web\n"
	if _, err := Parse([]byte(doc), &s); err != nil {
		t.Fatal(err)
	}
	if s.Restart.Timeout != 20*time.Second || s.Pool.Name != "web" || len(s.Policy.Ignore) != 1 {
		t.Fatalf("aliases not followed: restart.timeout %v, pool.name %q, drain.ignore %v", s.Restart.Timeout, s.Pool.Name, s.Policy.Ignore)
	}
}
