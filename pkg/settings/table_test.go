package settings

import (
	"context"
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every setting is declared whole: a doc, a key of the file whose flag
// and JSON name follow from it, a default that its own check accepts,
// and names that no other setting (nor its old names) has. The sections
// are contiguous, for the JSON to nest them.
func TestTableDeclaresEverySetting(t *testing.T) {
	d := Defaults()
	d.Restart.Line = "true" // no systemd question in a unit test
	d.Resolve(context.Background())
	names := map[string]string{}
	claim := func(kind, name, key string) {
		if other, ok := names[kind+" "+name]; ok {
			t.Errorf("%s %s: both %s's and %s's", kind, name, other, key)
		}
		names[kind+" "+name] = key
	}
	done := map[string]bool{}
	section := ""
	for _, st := range All() {
		if st.Key == "" || st.Doc == "" || st.v == nil {
			t.Errorf("%q: a key, a doc and a value, please", st.Key)
			continue
		}
		if strings.Count(st.Key, ".") > 1 || strings.ToLower(st.Key) != st.Key || strings.ContainsAny(st.Key, "- ") {
			t.Errorf("%s: want a key of lower-case words and underscores, at most one section deep", st.Key)
		}
		if st.Flag() != strings.NewReplacer(".", "-", "_", "-").Replace(st.Key) || st.JSON() == "" {
			t.Errorf("%s: flag %q, JSON %q", st.Key, st.Flag(), st.JSON())
		}
		if strings.HasSuffix(st.JSON(), "_ms") != (st.Kind() == Duration) {
			t.Errorf("%s: JSON %q: a duration, and only a duration, ends in _ms", st.Key, st.JSON())
		}
		claim("key", st.Key, st.Key)
		claim("flag", st.Flag(), st.Key)
		for _, k := range st.OldKeys {
			claim("key", k, st.Key)
		}
		for _, f := range st.OldFlags {
			claim("flag", f, st.Key)
		}
		if sec, _, ok := strings.Cut(st.Key, "."); ok && sec != section {
			if done[sec] {
				t.Errorf("%s: section %s is not contiguous", st.Key, sec)
			}
			done[section], section = true, sec
		} else if !ok {
			done[section], section = true, ""
		}
		if st.check != nil {
			if err := st.check(d); err != nil {
				t.Errorf("%s: the default %q is refused: %v", st.Key, st.Text(d), err)
			}
		}
		// The default's text reads back as the default: the flags show
		// it, the file may say it.
		back := Defaults()
		if err := st.Set(&back, st.Default()); st.Kind() != List && (err != nil || !reflect.DeepEqual(back, Defaults())) {
			t.Errorf("%s: the default %q does not read back: %v", st.Key, st.Default(), err)
		}
		if Lookup(st.Key) != st {
			t.Errorf("%s: Lookup finds another", st.Key)
		}
	}
	if err := d.Validate(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
}

// agent --check's JSON reads back as the settings, and the JSON names of
// before (configtest.command, restart.command, ready.accept,
// reboot.command.command) are still read.
func TestSettingsJSONReadsBack(t *testing.T) {
	s := Defaults()
	s.Restart.Line, s.ConfigTest.Line, s.RestartReason = "apachectl -k graceful", "apachectl -t", "given"
	s.Policy.Deadline, s.Pool.CAFile = 45*time.Second, "/etc/ca.pem"
	s.Policy.Ignore = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	back := Defaults() // with what is no setting: the reboot command's own timeout
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, s) {
		t.Fatalf("%s\nread back as\n%+v (%v)", b, back, err)
	}
	const old = `{"configtest": {"command": "nginx -t", "timeout_ms": 5000},
		"restart": {"command": "nginx -s reload", "timeout_ms": 7000},
		"ready": {"accept": "200,301"}, "reboot": {"command": {"command": "shutdown -r now", "timeout_ms": 30000}},
		"drain": {"deadline_ms": 1000}, "reconcile_interval_ms": 500}`
	got := Defaults()
	if err := json.Unmarshal([]byte(old), &got); err != nil {
		t.Fatal(err)
	}
	if got.ConfigTest.Line != "nginx -t" || got.ConfigTest.Timeout != 5*time.Second || got.Restart.Line != "nginx -s reload" ||
		got.Restart.Timeout != 7*time.Second || got.Ready.Accept.String() != "200,301" || got.Reboot.Command.Line != "shutdown -r now" ||
		got.Policy.Deadline != time.Second || got.Reconcile != 500*time.Millisecond || got.Checks != Defaults().Checks {
		t.Fatalf("old JSON read as %+v", got)
	}
}
