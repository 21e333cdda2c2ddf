package settings

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/metrics"
	"github.com/drainctl/drainctl/pkg/ready"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// `agent --check` prints the settings as scripts read them: every
// setting under its one name, in the file's order (durations in _ms
// fields), then the build; the golden file is that, byte for byte (go
// test -update rewrites it).
func TestSettingsJSON(t *testing.T) {
	s := Defaults()
	s.Backend = forward.BackendNftables
	s.Forwards = []forward.Forward{{From: 82, To: 8080}}
	s.Checks.Watch, s.Checks.Fall = false, 3
	s.Policy.OnDeadline = drain.Abort
	s.Policy.Ignore = []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("192.168.0.0/16")}
	s.Ready.Accept, s.Ready.Host, s.Ready.URL = ready.MustStatuses("200,301"), "example.com", "http://127.0.0.1:8080/"
	s.Restart.Line = "true"
	s.AgentCheckListen, s.MetricsListen = ":8081", "127.0.0.1:9188"
	s.Build = metrics.Build{Version: "v1.2.3", Commit: "abc", GoVersion: "go1.26"}
	got, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		os.WriteFile("testdata/settings.golden.json", append(got, '\n'), 0o644)
	}
	want, err := os.ReadFile("testdata/settings.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(got)+"\n" != string(want) {
		t.Fatalf("settings JSON changed:\n%s\nwant:\n%s", got, want)
	}
}

// The defaults are valid once resolved, and Resolve derives the readiness
// URL from the first forward's service port.
func TestDefaultsResolveAndValidate(t *testing.T) {
	s := Defaults()
	s.Restart.Line = "true" // no systemd question in a unit test
	s.Forwards = []forward.Forward{{From: 8081, To: 8080}, {From: 444, To: 443}}
	s.Resolve(context.Background())
	if s.Ready.URL != "http://127.0.0.1:8080/" {
		t.Errorf("ready URL %q", s.Ready.URL)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	s.Ready.URL = "http://web1.example/"
	s.Resolve(context.Background())
	if s.Ready.URL != "http://web1.example/" {
		t.Errorf("Resolve replaced a given URL: %q", s.Ready.URL)
	}
}

// The web server preset fills in the commands left auto; commands given
// win over it.
func TestWebServerPresets(t *testing.T) {
	s := Defaults()
	s.WebServer = "nginx"
	s.Resolve(context.Background())
	if s.ConfigTest.Line != "nginx -t" || !strings.Contains(s.Restart.Line, "nginx") || !strings.Contains(s.RestartReason, "nginx") {
		t.Errorf("nginx: configtest %q, restart %q (%s)", s.ConfigTest.Line, s.Restart.Line, s.RestartReason)
	}
	s = Defaults()
	s.Resolve(context.Background())
	if s.ConfigTest.Line != "apache2ctl -t" || !strings.Contains(s.Restart.Line, "apache2") {
		t.Errorf("apache: configtest %q, restart %q", s.ConfigTest.Line, s.Restart.Line)
	}
	s = Defaults()
	s.WebServer, s.ConfigTest.Line, s.Restart.Line = "nginx", "openresty -t", "openresty -s reload"
	s.Resolve(context.Background())
	if s.ConfigTest.Line != "openresty -t" || s.Restart.Line != "openresty -s reload" || s.Validate() != nil {
		t.Errorf("given commands replaced: %q, %q (%v)", s.ConfigTest.Line, s.Restart.Line, s.Validate())
	}
	s = Defaults()
	s.WebServer, s.ConfigTest.Line, s.Restart.Line = "custom", "true", "true"
	s.Resolve(context.Background())
	if err := s.Validate(); err != nil {
		t.Errorf("custom with both commands: %v", err)
	}
}

// Each setting Validate refuses is named by its key, which the CLI turns
// into the config file's line or leaves to the flag, and by a message
// that names the setting and its value.
func TestValidateNamesTheSetting(t *testing.T) {
	for _, tc := range []struct {
		key, want string
		change    func(*Settings)
	}{
		{KeyForwards, "already forwarded", func(s *Settings) { s.Forwards = append(s.Forwards, forward.Forward{From: 81, To: 8080}) }},
		{KeyBackend, `backend "pf"`, func(s *Settings) { s.Backend = "pf" }},
		{KeyReconcile, "reconcile interval 50ms: must be at least 100ms", func(s *Settings) { s.Reconcile = 50 * time.Millisecond }},
		{KeyConfigTestTimeout, "configtest timeout 0s: must be positive", func(s *Settings) { s.ConfigTest.Timeout = 0 }},
		{KeyRestartTimeout, "restart timeout -1s: must be positive", func(s *Settings) { s.Restart.Timeout = -time.Second }},
		{KeyReadyTimeout, "ready timeout 0s: must be positive", func(s *Settings) { s.Ready.Timeout = 0 }},
		{KeyConfigTestCmd, "configtest command: must be set", func(s *Settings) { s.ConfigTest.Line = "" }},
		{KeyRestartCmd, "restart command: must be set", func(s *Settings) { s.Restart.Line = "" }},
		{KeyReadyURL, `ready url "localhost"`, func(s *Settings) { s.Ready.URL = "localhost" }},
		{KeyReadyStatus, "no accepted status", func(s *Settings) { s.Ready.Accept = nil }},
		{KeyFall, "fall 0: want a count from 1 to 100", func(s *Settings) { s.Checks.Fall = 0 }},
		{KeyRise, "rise 101: want a count from 1 to 100", func(s *Settings) { s.Checks.Rise = 101 }},
		{KeySocketGroup, `socket group "no-such-group-here" does not exist`, func(s *Settings) { s.SocketGroup = "no-such-group-here" }},
		{KeyAgentCheckListen, `agent-check listen "8081"`, func(s *Settings) { s.AgentCheckListen = "8081" }},
		{KeyMetricsListen, `metrics listen "nope"`, func(s *Settings) { s.MetricsListen = "nope" }},
		{"", "drain deadline 1s: must not be shorter than min-wait 2s", func(s *Settings) { s.Policy.Deadline = time.Second }},
		{KeyWebServer, `web server "lighttpd": want apache, nginx or custom`, func(s *Settings) { s.WebServer = "lighttpd" }},
		{KeyConfigTestCmd, "web_server custom has no preset", func(s *Settings) { s.WebServer, s.ConfigTest.Line = "custom", "auto" }},
		{KeyRebootCmd, "reboot command: must be set", func(s *Settings) { s.Reboot.Command.Line = "" }},
		{KeyMaxTTL, "max ttl 0s: must be positive", func(s *Settings) { s.Limits.MaxTTL = 0 }},
		{KeyMaxDeadline, "max deadline 30s: below drain.deadline 1m0s", func(s *Settings) { s.Limits.MaxDeadline = 30 * time.Second }},
		{KeyMaxPoolWait, "max pool wait 1h0m0s: below pool.wait 2h0m0s", func(s *Settings) { s.Limits.MaxPoolWait = time.Hour }},
	} {
		s := Defaults()
		s.Restart.Line = "true"
		s.Resolve(context.Background())
		tc.change(&s)
		err := s.Validate()
		var se *SettingError
		switch {
		case err == nil || !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: %v, want %q", tc.key, err, tc.want)
		case tc.key == "" && errors.As(err, &se):
			t.Errorf("%v: keyed %s, want no key (the policy's rules span keys)", err, se.Key)
		case tc.key != "" && (!errors.As(err, &se) || se.Key != tc.key):
			t.Errorf("%v: want key %s", err, tc.key)
		}
	}
}

// The socket's roles: its groups given by name or number resolve once,
// to their gid and name; a read group asked for must exist; the default
// ones may be missing (then no such role but root's).
func TestSocketAccess(t *testing.T) {
	s := Defaults()
	s.SocketGroup, s.SocketReadGroup, s.SocketReadAll = "root", "0", true
	a, err := s.SocketAccess()
	if err != nil || a.Operators == nil || a.Operators.GID != 0 || a.Readers == nil || a.Readers.GID != 0 || a.Readers.Name != "root" || !a.ReadAll {
		t.Fatalf("root and 0: %+v %v", a, err)
	}
	s.SocketReadGroup = "no-such-group-here"
	if _, err := s.SocketAccess(); err == nil || !strings.Contains(err.Error(), `socket read group "no-such-group-here" does not exist`) {
		t.Fatalf("a missing read group: %v", err)
	}
	if err := Lookup(KeySocketReadGroup).check(s); err == nil {
		t.Fatal("Validate takes a missing read group")
	}
}
