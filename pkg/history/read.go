package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// LastLines reads the last n lines (all with n <= 0) of what r holds up
// to size, oldest first, from the end backwards: the lines that are JSON
// and at most maxLen bytes long. Whatever the file holds, it reads no more
// than it must and holds no more than n lines of maxLen bytes: a line of
// gigabytes is skipped in passing, not read into memory.
func LastLines(r io.ReaderAt, size int64, n, maxLen int) ([][]byte, error) {
	return lastLines(r, size, n, maxLen, 64<<10)
}

// lastLines is LastLines reading chunkSize bytes at a time.
func lastLines(r io.ReaderAt, size int64, n, maxLen, chunkSize int) ([][]byte, error) {
	var (
		out  [][]byte // newest first
		cur  []byte   // the line being read, its end first found
		long bool     // cur is over maxLen: skipped
	)
	emit := func() {
		if !long && len(cur) > 0 && json.Valid(cur) {
			out = append(out, cur)
		}
		cur, long = nil, false
	}
	buf := make([]byte, chunkSize)
	for pos := size; pos > 0 && (n <= 0 || len(out) < n); {
		k := int(min(int64(len(buf)), pos))
		pos -= int64(k)
		chunk := buf[:k]
		if _, err := r.ReadAt(chunk, pos); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		for end := k; ; {
			i := bytes.LastIndexByte(chunk[:end], '\n')
			if seg := chunk[i+1 : end]; !long {
				if len(cur)+len(seg) > maxLen {
					cur, long = nil, true
				} else {
					cur = append(append(make([]byte, 0, len(seg)+len(cur)), seg...), cur...)
				}
			}
			if i < 0 {
				break
			}
			emit()
			end = i
			if n > 0 && len(out) >= n {
				break
			}
		}
		if pos == 0 && (n <= 0 || len(out) < n) {
			emit() // the file's first line
		}
	}
	slices.Reverse(out)
	return out, nil
}

// fit is e's line for the file, at most MaxLine bytes: an entry longer
// than that has its text cut (its head kept, the output's end), then
// its phases and warnings left out. A hostile or runaway field must not
// make a line no reader takes (the file would then grow for ever, every
// append failing its compaction).
func fit(e Entry) ([]byte, error) {
	line, err := json.Marshal(e)
	if err != nil || len(line) <= MaxLine {
		return line, err
	}
	for _, n := range []int{2 << 10, 256} {
		if line, err = json.Marshal(cut(e, n)); err != nil || len(line) <= MaxLine {
			return line, err
		}
	}
	c := cut(e, 64)
	c.Phases, c.Warnings = nil, []string{"phases and warnings left out: the entry was too long"}
	return json.Marshal(c)
}

// cut is e with each text at most about n bytes and at most 8 warnings.
func cut(e Entry, n int) Entry {
	for _, p := range []*string{&e.Who, &e.Reason, &e.Error, &e.Command, &e.Action} {
		*p = head(*p, n)
	}
	if len(e.CommandOutput) > n {
		o := e.CommandOutput[len(e.CommandOutput)-n:]
		for len(o) > 0 && !utf8.RuneStart(o[0]) {
			o = o[1:]
		}
		e.CommandOutput = "…" + o
	}
	if len(e.Warnings) > 0 {
		ws := make([]string, 0, 9)
		for i, w := range e.Warnings {
			if i == 8 {
				ws = append(ws, "… and more")
				break
			}
			ws = append(ws, head(w, n))
		}
		e.Warnings = ws
	}
	return e
}

// head is s's first n bytes (a character cut in two left out), with
// "…" when it was longer.
func head(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
