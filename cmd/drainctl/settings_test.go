package main

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/ready"
	"github.com/drainctl/drainctl/pkg/settings"
)

// clearEnv keeps the host's DRAINCTL_* out of a test: an environment
// variable set even to "" counts as a given flag.
func clearEnv(t *testing.T) {
	for _, v := range []string{"DRAINCTL_CONFIG", "DRAINCTL_BACKEND", "DRAINCTL_SOCKET", "DRAINCTL_LOG_LEVEL"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
}

// settingsOf runs `drainctl [global...] config check` as far as the
// settings, with the config file doc (none if empty), and returns them.
func settingsOf(t *testing.T, doc string, global []string, args ...string) (settings.Settings, error) {
	t.Helper()
	if doc != "" {
		path := filepath.Join(t.TempDir(), "drainctl.yaml")
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", path}, args...)
	} else {
		args = append([]string{"--config", os.DevNull}, args...)
	}
	var got settings.Settings
	var gotErr error
	app := &cli.App{
		Flags: []cli.Flag{socketFlag()},
		Commands: []*cli.Command{{
			Name:  "check",
			Flags: append([]cli.Flag{configFlag()}, flagsOf(agentSettingFlags())...),
			Action: func(c *cli.Context) error {
				got, gotErr = agentSettings(c)
				return nil
			},
		}},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	argv := append(append(append([]string{"drainctl"}, global...), "check"), args...)
	if err := app.RunContext(context.Background(), argv); err != nil {
		t.Fatalf("%v: %v", argv, err)
	}
	return got, gotErr
}

// The merge: the defaults, the file's keys over them, then only the flags
// given; a flag's shown default never replaces the file's value.
func TestSettingsFileThenFlags(t *testing.T) {
	clearEnv(t)
	const doc = `backend: nftables
forwards: [82:8080]
state_dir: /srv/drainctl
health_checks:
  fall: 3
drain:
  deadline: 30s
  quiet: 1s
  on_deadline: abort
  ignore: [10.0.0.1]
restart:
  restart_cmd: apache2ctl -k graceful
ready:
  status: [200, 301]
`
	fileOnly, err := settingsOf(t, doc, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := settings.Defaults()
	want.Backend, want.Forwards, want.StateDir = forward.BackendNftables, []forward.Forward{{From: 82, To: 8080}}, "/srv/drainctl"
	want.Checks.Fall = 3
	want.Policy.Deadline, want.Policy.Quiet, want.Policy.OnDeadline = 30*time.Second, time.Second, drain.Abort
	want.Policy.Ignore = []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}
	want.Restart.Line, want.ConfigTest.Line = "apache2ctl -k graceful", "apache2ctl -t" // auto: Apache's
	want.Ready.Accept, want.Ready.URL = ready.MustStatuses("200,301"), "http://127.0.0.1:8080/"
	want.Build = fileOnly.Build
	if !reflect.DeepEqual(fileOnly, want) {
		t.Fatalf("file only:\n%+v\nwant\n%+v", fileOnly, want)
	}

	flags, err := settingsOf(t, doc, []string{"--socket", "/run/web1.sock"},
		"--deadline", "45s", "--fall", "4", "--forward", "83:80", "--forward", "444:443", "--ignore", "192.0.2.0/24",
		"--on-deadline", "proceed", "--reconcile-interval", "500ms", "--watch-checks=false", "--ready-status", "200")
	if err != nil {
		t.Fatal(err)
	}
	want.Socket = "/run/web1.sock"
	want.Policy.Deadline, want.Checks.Fall, want.Checks.Watch = 45*time.Second, 4, false
	want.Forwards = []forward.Forward{{From: 83, To: 80}, {From: 444, To: 443}}
	want.Policy.Ignore = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	want.Policy.OnDeadline, want.Reconcile = drain.Proceed, 500*time.Millisecond
	want.Ready.Accept, want.Ready.URL = ready.MustStatuses("200"), "http://127.0.0.1:80/"
	if !reflect.DeepEqual(flags, want) {
		t.Fatalf("file and flags:\n%+v\nwant\n%+v", flags, want)
	}
}

// With no file and no flag, the settings are the defaults; the flags'
// shown defaults are the same values.
func TestSettingsDefaults(t *testing.T) {
	clearEnv(t)
	got, err := settingsOf(t, "", nil, "--restart-cmd", "true")
	if err != nil {
		t.Fatal(err)
	}
	want := settings.Defaults()
	want.Restart.Line, want.Ready.URL, want.Build = "true", "http://127.0.0.1:80/", got.Build
	want.ConfigTest.Line = "apache2ctl -t"
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%+v\nwant\n%+v", got, want)
	}
	// Every flag given at the default it shows changes nothing: the shown
	// defaults are settings.Defaults'.
	args := []string{"--restart-cmd", "true"}
	for _, st := range agentSettingFlags() {
		name := "--" + st.flag.Names()[0]
		switch f := st.flag.(type) {
		case *cli.DurationFlag:
			args = append(args, name, f.Value.String())
		case *cli.IntFlag:
			args = append(args, name, strconv.Itoa(f.Value))
		case *cli.BoolFlag:
			args = append(args, name+"="+strconv.FormatBool(f.Value))
		case *cli.StringFlag:
			if f.Value != "" && f.Name != "restart-cmd" {
				args = append(args, name, f.Value)
			}
		}
	}
	shown, err := settingsOf(t, "", nil, args...)
	if err != nil || !reflect.DeepEqual(shown, got) {
		t.Fatalf("%v:\n%+v, %v\nwant\n%+v", args, shown, err, got)
	}
	if len(args) < 30 {
		t.Fatalf("only %v", args)
	}
}

// DRAINCTL_BACKEND is a given flag; --backend beats it.
func TestSettingsEnvironment(t *testing.T) {
	clearEnv(t)
	t.Setenv("DRAINCTL_BACKEND", "iptables-nft")
	s, err := settingsOf(t, "backend: nftables\n", nil, "--restart-cmd", "true")
	if err != nil || s.Backend != "iptables-nft" {
		t.Fatalf("backend %q, %v; want DRAINCTL_BACKEND's", s.Backend, err)
	}
	s, err = settingsOf(t, "", nil, "--restart-cmd", "true", "--backend", "nftables")
	if err != nil || s.Backend != "nftables" {
		t.Fatalf("backend %q, %v; want --backend's", s.Backend, err)
	}
}

// fileLine is how an error names a line of the config file.
var fileLine = regexp.MustCompile(`(^|: )line [0-9]+: `)

// A refused setting names the file's line when the file gave it, and
// not when a flag gave it after the file.
func TestSettingsErrorsSayWhere(t *testing.T) {
	clearEnv(t)
	for _, tc := range []struct {
		doc  string
		args []string
		want string // "" for no error
		line bool
	}{
		{"restart:\n  restart_cmd: x\nhealth_checks:\n  fall: 0\n", nil, "line 4: fall 0: want a count", true},
		{"restart:\n  restart_cmd: x\nhealth_checks:\n  fall: 0\n", []string{"--fall", "3"}, "", false},
		{"restart:\n  restart_cmd: x\nhealth_checks:\n  fall: 3\n", []string{"--fall", "0"}, "fall 0: want a count", false},
		{"restart:\n  restart_cmd: x\nbackend: pf\n", nil, `line 3: backend "pf"`, true},
		{"restart:\n  restart_cmd: x\n", []string{"--backend", "pf"}, `backend "pf"`, false},
		{"restart:\n  restart_cmd: x\nready:\n  url: localhost\n", nil, `line 4: ready url "localhost"`, true},
		{"restart:\n  restart_cmd: x\n", []string{"--ready-url", "localhost"}, `ready url "localhost"`, false},
		{"drain:\n  deadline: soon\n", nil, `line 2: "soon" is not a duration`, true},
		{"restart:\n  restart_cmd: x\n", []string{"--on-deadline", "later"}, `--drain-on-deadline: on_deadline "later": want proceed or abort`, false},
		{"restart:\n  restart_cmd: x\n", []string{"--ignore", "10.0.0.0/33"}, `--drain-ignore: "10.0.0.0/33"`, false},
		{"restart:\n  restart_cmd: x\n", []string{"--forward", "81"}, `forward "81": want FROM:TO`, false},
	} {
		_, err := settingsOf(t, tc.doc, nil, tc.args...)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q %v: %v", tc.doc, tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q %v: %v, want %q", tc.doc, tc.args, err, tc.want)
		case tc.want != "" && !tc.line && fileLine.MatchString(err.Error()):
			t.Errorf("%q %v: %v names a line of the file, but a flag gave the value", tc.doc, tc.args, err)
		case tc.want != "" && exitCode(err) != exitUsage:
			t.Errorf("%q %v: exit %d, want %d", tc.doc, tc.args, exitCode(err), exitUsage)
		}
	}
}

// The old spellings still work: the flags from before the settings had
// one name (aliases of the new ones), and the config file's old keys.
func TestSettingsOldSpellings(t *testing.T) {
	clearEnv(t)
	const oldDoc = "restart:\n  configtest_cmd: apachectl -t\n  restart_cmd: apachectl -k graceful\n  restart_timeout: 2m\n"
	old, err := settingsOf(t, oldDoc, nil, "--forward", "83:80", "--forward", "444:443", "--deadline", "45s", "--fall", "4", "--rise", "3",
		"--watch-checks=false", "--ignore", "192.0.2.0/24", "--on-deadline", "abort", "--boot-ready-timeout", "7m",
		"--poll", "300ms", "--min-wait", "3s", "--quiet", "1s", "--idle-after", "6s", "--grace", "1s")
	if err != nil {
		t.Fatal(err)
	}
	const newDoc = "configtest:\n  cmd: apachectl -t\nrestart:\n  cmd: apachectl -k graceful\n  timeout: 2m\n"
	fresh, err := settingsOf(t, newDoc, nil, "--forwards", "83:80", "--forwards", "444:443", "--drain-deadline", "45s",
		"--health-checks-fall", "4", "--health-checks-rise", "3", "--health-checks-watch=false", "--drain-ignore", "192.0.2.0/24",
		"--drain-on-deadline", "abort", "--reboot-ready-timeout", "7m",
		"--drain-poll", "300ms", "--drain-min-wait", "3s", "--drain-quiet", "1s", "--drain-idle-after", "6s", "--drain-grace", "1s")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(old, fresh) {
		t.Fatalf("old spellings:\n%+v\nnew:\n%+v", old, fresh)
	}
	if old.ConfigTest.Line != "apachectl -t" || old.Restart.Timeout != 2*time.Minute || old.Checks.Fall != 4 || old.Reboot.ReadyTimeout != 7*time.Minute {
		t.Fatalf("old spellings not read: %+v", old)
	}
	// The pool's renamed flags.
	dir := t.TempDir()
	ca, cert := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "c.pem")
	key, pw := filepath.Join(dir, "k.pem"), filepath.Join(dir, "pw")
	for _, f := range []string{ca, cert, key, pw} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p, err := settingsOf(t, "", nil, "--restart-cmd", "true", "--pool-etcd", "https://10.0.0.5:2379,https://10.0.0.6:2379", "--pool-id", "web1",
		"--pool-ca", ca, "--pool-cert", cert, "--pool-key", key, "--pool-user", "drainctl", "--pool-password-file", pw)
	if err != nil {
		t.Fatal(err)
	}
	if p.Pool.CAFile != ca || p.Pool.CertFile != cert || p.Pool.KeyFile != key || p.Pool.Username != "drainctl" || len(p.Pool.Etcd) != 2 {
		t.Fatalf("pool: %+v", p.Pool)
	}
}

// --pool-etcd "" switches the file's pool off, and a stray comma is no
// endpoint, as the comma-separated flag always read them; repeated, the
// flag gives each endpoint.
func TestSettingsPoolEtcdBlankEntries(t *testing.T) {
	clearEnv(t)
	const doc = "pool:\n  etcd: [http://192.0.2.1:2379]\n"
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--pool-etcd", ""}, []string{}},
		{[]string{"--pool-etcd", "http://192.0.2.2:2379,,http://192.0.2.3:2379,"}, []string{"http://192.0.2.2:2379", "http://192.0.2.3:2379"}},
		{[]string{"--pool-etcd", "http://192.0.2.2:2379", "--pool-etcd", "http://192.0.2.3:2379"}, []string{"http://192.0.2.2:2379", "http://192.0.2.3:2379"}},
	} {
		s, err := settingsOf(t, doc, nil, c.args...)
		if err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		if !slices.Equal(s.Pool.Etcd, c.want) {
			t.Errorf("%q: pool.etcd %q, want %q", c.args, s.Pool.Etcd, c.want)
		}
	}
}
