package pool

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// stateOfKeys reads keys as read does (stateOf), without etcd. pairs
// alternate a key (after the pool's prefix) and its value.
func stateOfKeys(pairs [][]byte) (st State, holderKeys int) {
	p := &Pool{cfg: Config{Name: "web"}, prefix: Prefix("web")}
	var kvs []*mvccpb.KeyValue
	for i := 0; i+1 < len(pairs); i += 2 {
		if kind, _, _ := strings.Cut(string(pairs[i]), "/"); kind == "holders" {
			holderKeys++
		}
		kvs = append(kvs, &mvccpb.KeyValue{Key: append([]byte(p.prefix), pairs[i]...), Value: pairs[i+1], CreateRevision: int64(i + 1)})
	}
	return p.stateOf(1, kvs), holderKeys
}

// FuzzReadKeys gives the pool's reader any keys and values, as a
// damaged or hostile etcd could hold: it never panics, and the budget
// fails closed: every holder key counts as a held slot whatever its
// value, every holder is counted unavailable, a pause record that cannot
// be read still pauses, settings that cannot be read grant nothing, and
// settings that can be read survive their round trip and grant at least
// one slot.
func FuzzReadKeys(f *testing.F) {
	t0 := time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)
	claim, _ := json.Marshal(Claim{Op: "restart", Reason: "patch", By: "cron", Since: t0})
	health, _ := json.Marshal(Health{InService: false, Why: "web server not answering", Since: t0})
	seen, _ := json.Marshal(t0)
	settings, _ := json.Marshal(Settings{Version: SettingsVersion, MaxUnavailable: MustLimit("25%"), By: "admin", Since: t0})
	join := func(kv ...string) []byte { return []byte(strings.Join(kv, "\x00")) }
	f.Add(join("holders/web1", string(claim), "members/web1", "", "health/web2", string(health), "seen/web3", string(seen), "settings", string(settings)))
	f.Add(join("holders/web1", "{", "holders/a/b", "x", "paused", "not json", "settings", `{"version":1}`))
	f.Add(join("settings", `{"version":2,"max_unavailable":"0%"}`, "waiters/w", `{"op":"enter"}`, "bogus/x", "y", "settings/x", "z"))
	f.Add(join("settings", `{"version":99,"max_unavailable":"1"}`, "health/web1", `{"in_service":"yes"}`))
	f.Fuzz(func(t *testing.T, blob []byte) {
		st, holderKeys := stateOfKeys(bytes.Split(blob, []byte{0}))
		outs := st.Unavailable()
		allowed, size := st.Allowed(), st.Size()
		if len(st.Holders) != holderKeys {
			t.Fatalf("%d holder keys, %d slots counted", holderKeys, len(st.Holders))
		}
		for _, h := range st.Holders {
			if !isOut(outs, h.ID) {
				t.Fatalf("holder %q not counted unavailable: %+v", h.ID, outs)
			}
		}
		if size < len(st.Members) || allowed < 0 {
			t.Fatalf("size %d of %d members, allowed %d", size, len(st.Members), allowed)
		}
		if hasKey(blob, "paused") && st.Paused == nil {
			t.Fatal("a paused key that did not pause the pool")
		}
		switch {
		case st.SettingsError != "" || st.Settings == nil:
			if allowed != 0 {
				t.Fatalf("settings unread (%q), yet %d slots allowed", st.SettingsError, allowed)
			}
		default:
			if allowed < 1 {
				t.Fatalf("settings %+v allow no slot", *st.Settings)
			}
			b, err := json.Marshal(*st.Settings)
			if err != nil {
				t.Fatal(err)
			}
			back, err := parseSettings(b)
			if err != nil || !reflect.DeepEqual(back.MaxUnavailable, st.Settings.MaxUnavailable) || back.Version != st.Settings.Version || back.By != st.Settings.By || !back.Since.Equal(st.Settings.Since) {
				t.Fatalf("settings %+v, written %s, read back %+v (%v)", *st.Settings, b, back, err)
			}
			if l, err := ParseLimit(st.Settings.MaxUnavailable.String()); err != nil || l != st.Settings.MaxUnavailable {
				t.Fatalf("limit %v reads back as %v (%v)", st.Settings.MaxUnavailable, l, err)
			}
		}
	})
}

// hasKey says whether blob's pairs hold key as a key.
func hasKey(blob []byte, key string) bool {
	pairs := bytes.Split(blob, []byte{0})
	for i := 0; i+1 < len(pairs); i += 2 {
		if string(pairs[i]) == key {
			return true
		}
	}
	return false
}
