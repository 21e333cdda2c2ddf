package window

import (
	"testing"
	"time"
)

// FuzzParse checks that Parse never panics and that whatever it accepts
// reads back from String to an equal window, and that Next and End agree
// with Contains.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"Mon-Fri 02:00-05:00 Europe/Berlin",
		"Sat,Sun 22:00-04:00 UTC",
		"Tue 03:00-03:30",
		"02:00-05:00 UTC",
		"Mon,Wed-Fri 00:00-24:00 Asia/Kolkata",
		"Fri-Mon 23:59-00:00 America/New_York",
		"Mon-Fry 02:00-05:00",
		"sun 2:00-3:00 Europe/Berlin",
		"",
		"24:00-01:00",
		"Mon,,Tue 1:00-2:00 ../x",
	} {
		f.Add(s, int64(1774746000)) // 2026-03-29 01:00 UTC, Berlin's change
	}
	f.Fuzz(func(t *testing.T, s string, unix int64) {
		w, err := Parse(s)
		if err != nil {
			return
		}
		back, err := Parse(w.String())
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its String %q does not parse: %v", s, w, err)
		}
		if !back.Equal(w) || back.String() != w.String() {
			t.Fatalf("Parse(%q) = %q, read back as %q", s, w, back)
		}
		// Keep the instant within years the zone data describes well.
		at := time.Unix(1_700_000_000+unix%400_000_000, 0)
		next := w.Next(at)
		if next.Before(at) || !w.Contains(next) {
			t.Fatalf("%q.Next(%v) = %v: before t or closed", w, at, next)
		}
		if end := w.End(next); !end.IsZero() && (!end.After(next) || w.Contains(end)) {
			t.Fatalf("%q.End(%v) = %v: not after or still open", w, next, end)
		}
	})
}
