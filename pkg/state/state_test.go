package state

import (
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

func TestCorruptFileIsAnErrorNotAFreshStart(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	defer s.Close()
	os.WriteFile(s.Path(), []byte("{half a file"), 0o600)
	if _, err := s.Load(); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt file: %v", err)
	}
}
