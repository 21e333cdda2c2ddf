package state

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st, err := s.Load(); err != nil || st.Phase != InService {
		t.Fatalf("fresh load: %+v, %v", st, err)
	}
	want := State{Version: 1, Phase: Held, Holder: &Holder{Who: "alice", Reason: "kernel update", Since: time.Unix(1700000000, 0).UTC()}}
	for i := 0; i < 80; i++ {
		want.History = append(want.History, Transition{Phase: Draining})
	}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil || got.Phase != Held || got.Holder.Who != "alice" || !got.Holder.Since.Equal(want.Holder.Since) {
		t.Fatalf("load: %+v, %v", got, err)
	}
	if len(got.History) != historyLen {
		t.Errorf("history kept %d entries, want %d", len(got.History), historyLen)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "in use by another drainctl agent") {
		t.Fatalf("second open: %v", err)
	}
	s.Close()
	s2, err := Open(dir)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	s2.Close()
}

// A state file that is not a valid state is an error naming the file and
// what is wrong, never a fresh (in service) start.
func TestInvalidFileIsAnErrorNotAFreshStart(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	defer s.Close()
	for _, tc := range []struct{ content, want string }{
		{"{half a file", "not valid JSON"},
		{"null", "null"},
		{"{}", "no version"},
		{"[]", "not valid JSON"},
		{`{"version": 2, "phase": "held"}`, "version 2"},
		{`{"version": 1, "phase": "parked"}`, `unknown phase "parked"`},
		{`{"version": 1, "phase": ""}`, `unknown phase ""`},
		{`{"version": 1, "phase": "held", "op": "reboot"}`, `phase "held" with operation "reboot"`},
		{`{"version": 1, "phase": "draining", "op": "upgrade"}`, `unknown operation "upgrade"`},
		{`{"version": 1, "phase": "rebooting", "op": "restart"}`, `phase "rebooting" with operation "restart"`},
		{`{"version": 1, "phase": "restarting", "op": "reboot"}`, `phase "restarting" with operation "reboot"`},
		{`{"version": 1, "phase": "rebooting", "op": "reboot"}`, `without the boot it leaves`},
		{`{"version": 1, "phase": "draining"}`, `phase "draining" with operation ""`},
		{`{"version": 1, "phase": "in-service", "op": "restart"}`, `phase "in-service" with operation "restart"`},
		{`{"version": "1", "phase": "held"}`, "not a drainctl state"},
		{`{"version": 1, "phase": "in-service", "owed": {"action": "restart"}}`, "restart owed without its unit"},
	} {
		os.WriteFile(s.Path(), []byte(tc.content), 0o600)
		_, err := s.Load()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), s.Path()) {
			t.Errorf("state file %q: error %v, want one naming the file and %q", tc.content, err, tc.want)
		}
	}
	os.WriteFile(s.Path(), []byte(`{"version": 1, "phase": "rebooting", "op": "reboot", "reboot": {"boot_id": "b1", "since": "2026-12-01T03:00:00Z"}}`), 0o600)
	if st, err := s.Load(); err != nil || st.Phase != Rebooting || st.Reboot == nil || st.Reboot.BootID != "b1" {
		t.Errorf("a valid rebooting state: %+v, %v", st, err)
	}
	// A restart deferred by policy-rc.d, as the agent writes it: read
	// back whole, and written again the same.
	owed := `{"version": 1, "phase": "in-service", "owed": {"unit": "apache2.service", "action": "restart", "reason": "dpkg: apache2 2.4.68-1~deb12u1 → 2.4.71-1~deb12u1", "since": "2026-12-01T03:00:00Z"}}`
	os.WriteFile(s.Path(), []byte(owed), 0o600)
	st, err := s.Load()
	if err != nil || st.Owed == nil || st.Owed.Unit != "apache2.service" || st.Owed.Action != "restart" || !strings.HasPrefix(st.Owed.Reason, "dpkg: apache2") || st.Owed.Since.IsZero() {
		t.Errorf("a state with a restart owed: %+v, %v", st, err)
	}
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	if again, err := s.Load(); err != nil || again.Owed == nil || *again.Owed != *st.Owed {
		t.Errorf("the restart owed, saved and read again: %+v, %v; want %+v", again.Owed, err, st.Owed)
	}
	os.WriteFile(s.Path(), []byte(`{"version": 1, "phase": "held", "backend": "iptables-nft"}`), 0o600)
	if st, err := s.Load(); err != nil || st.Phase != Held || st.Backend != "iptables-nft" {
		t.Errorf("a valid held state: %+v, %v", st, err)
	}
}

// FuzzParse: no input makes Parse panic, and what it accepts is a state
// the engine can act on, which saves and reads back the same.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"version":1,"phase":"held"}`, `{"version":1,"phase":"draining","op":"enter"}`, "null", "{}", `{"version":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := Parse(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(again); err != nil {
			t.Fatalf("accepted %q, but not its own encoding %q: %v", b, again, err)
		}
	})
}
