package history

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// An entry is written as one line of at most MaxLine bytes, whatever
// its fields hold: its text cut, what it began with kept.
func TestAppendBoundsTheLine(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, 20)
	if err != nil {
		t.Fatal(err)
	}
	huge := Entry{Op: "enter", Who: "alice", Reason: "kernel update " + strings.Repeat("r", 1<<20),
		CommandOutput: strings.Repeat("\x01", 1<<20) + "the end", Error: strings.Repeat("é", 100000),
		Warnings: make([]string, 5000), Outcome: "ok"}
	if err := s.Append(huge); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxLine+1 || bytes.Count(b, []byte("\n")) != 1 {
		t.Fatalf("the line is %d bytes (%d lines), want at most %d", len(b), bytes.Count(b, []byte("\n")), MaxLine)
	}
	all, err := s.List(0)
	if err != nil || len(all) != 1 {
		t.Fatalf("%d entries, %v", len(all), err)
	}
	if e := all[0]; e.Who != "alice" || !strings.HasPrefix(e.Reason, "kernel update rrr") || !strings.HasSuffix(e.Reason, "…") ||
		!strings.HasSuffix(e.CommandOutput, "the end") || !strings.HasPrefix(e.Error, "éé") {
		t.Errorf("kept %.80q, %.80q, …%q", e.Who, e.Reason, e.CommandOutput[max(0, len(e.CommandOutput)-20):])
	}
}

// A line longer than any read takes (17 MiB: the scanner's limit was 16)
// is skipped, not fatal: appends go on, the file is compacted without
// it, and List works all along. It once made every append fail and the
// file grow for ever.
func TestOverlongLineSurvived(t *testing.T) {
	dir := t.TempDir()
	var file bytes.Buffer
	for i := range 3 {
		fmt.Fprintf(&file, `{"op":"restart","who":"before %d","outcome":"ok"}`+"\n", i)
	}
	file.WriteString(`{"op":"enter","who":"` + strings.Repeat("x", 17<<20) + `","outcome":"ok"}` + "\n")
	if err := os.WriteFile(dir+"/"+fileName, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Append(Entry{Op: "exit", Who: fmt.Sprint("after ", i), Outcome: "ok"}); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	all, err := s.List(0)
	if err != nil {
		t.Fatal(err)
	}
	var who []string
	for _, e := range all {
		who = append(who, e.Who)
	}
	if strings.Join(who, ",") != "before 2,after 0,after 1,after 2" {
		t.Errorf("entries %q", who)
	}
	if fi, err := os.Stat(s.Path()); err != nil || fi.Size() > 4<<10 {
		t.Errorf("the file is still %d bytes after its compaction (%v)", fi.Size(), err)
	}
}

// countingReader counts the bytes read.
type countingReader struct {
	r *bytes.Reader
	n atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// The last few entries are read from the end: a history of 10 MB is not
// read whole for them.
func TestLastLinesReadsFromTheEnd(t *testing.T) {
	var file bytes.Buffer
	for i := 0; file.Len() < 10<<20; i++ {
		fmt.Fprintf(&file, `{"op":"restart","who":"job %d","reason":"%s"}`+"\n", i, strings.Repeat("r", 200))
	}
	c := &countingReader{r: bytes.NewReader(file.Bytes())}
	lines, err := LastLines(c, int64(file.Len()), 3, readMax)
	if err != nil || len(lines) != 3 {
		t.Fatalf("%d lines, %v", len(lines), err)
	}
	var last Entry
	json.Unmarshal(lines[2], &last)
	if !strings.HasPrefix(string(lines[0]), `{"op":"restart","who":"job `) || c.n.Load() > 64<<10 {
		t.Errorf("read %d bytes for the last 3 lines (last %q)", c.n.Load(), last.Who)
	}
}
