package history

import (
	"fmt"
	"os"
	"testing"
	"time"
)

func TestAppendListAndBound(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 20)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_700_000_000, 0).UTC()
	for i := 0; i < 45; i++ {
		if err := s.Append(Entry{Op: "restart", Who: fmt.Sprint("job ", i), Start: t0, Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.List(0)
	if err != nil {
		t.Fatal(err)
	}
	// Rewritten to the last 20 once over 22; appended to since.
	if len(all) < 20 || len(all) > 22 || all[len(all)-1].Who != "job 44" {
		t.Fatalf("kept %d entries, last %+v", len(all), all[len(all)-1])
	}
	last3, _ := s.List(3)
	if len(last3) != 3 || last3[0].Who != "job 42" || last3[2].Who != "job 44" {
		t.Fatalf("last 3: %+v", last3)
	}
	// A line cut by a crash is skipped, not fatal; a new store counts
	// what is there.
	f, _ := os.OpenFile(s.Path(), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"op":"enter","who":"cut`)
	f.Close()
	s2, err := Open(dir, 20)
	if err != nil {
		t.Fatal(err)
	}
	s2.Append(Entry{Op: "exit", Who: "after the crash", Outcome: "ok"})
	all, _ = s2.List(0)
	if all[len(all)-1].Who != "after the crash" || all[len(all)-2].Who != "job 44" {
		t.Fatalf("after a cut line: %+v", all[len(all)-2:])
	}
}
