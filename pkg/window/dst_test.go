package window

import (
	"testing"
	"time"
)

// Europe/Berlin changes its clocks at 01:00 UTC: on 2026-03-29 from 02:00
// CET (+1) to 03:00 CEST (+2), on 2026-10-25 from 03:00 CEST back to
// 02:00 CET. The cases are in UTC so that each instant is unambiguous.
func at(month time.Month, day, hour, minute int) time.Time {
	return time.Date(2026, month, day, hour, minute, 0, 0, time.UTC)
}

func TestDSTSpringForward(t *testing.T) {
	tests := []struct {
		name, window string
		from         time.Time
		next, end    time.Time
	}{
		// 02:00-03:00 does not happen that Sunday: the window skips to
		// the next week.
		{"all in the gap", "Sun 02:00-03:00 Europe/Berlin", at(3, 28, 12, 0), at(4, 5, 0, 0), at(4, 5, 1, 0)},
		// It opens at 03:00 CEST, the first instant the clock reads a
		// time inside it, and still closes at 04:00 CEST.
		{"starts in the gap", "Sun 02:30-04:00 Europe/Berlin", at(3, 28, 12, 0), at(3, 29, 1, 0), at(3, 29, 2, 0)},
		// It closes when the clock jumps past its end: an hour early.
		{"ends in the gap", "Sun 01:00-02:30 Europe/Berlin", at(3, 28, 12, 0), at(3, 29, 0, 0), at(3, 29, 1, 0)},
		// Wall time 01:00-04:00 is two hours that day.
		{"spans the gap", "Sun 01:00-04:00 Europe/Berlin", at(3, 28, 12, 0), at(3, 29, 0, 0), at(3, 29, 2, 0)},
		{"after the change", "Sun 03:00-04:00 Europe/Berlin", at(3, 28, 12, 0), at(3, 29, 1, 0), at(3, 29, 2, 0)},
		// Across midnight on the night of the change: 23:00 CET to 04:00
		// CEST is four hours.
		{"overnight", "Sat 23:00-04:00 Europe/Berlin", at(3, 28, 12, 0), at(3, 28, 22, 0), at(3, 29, 2, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkOpening(t, mustParse(t, tt.window), tt.from, tt.next, tt.end)
		})
	}
	w := mustParse(t, "Sun 02:00-03:00 Europe/Berlin")
	for m := 0; m < 24*60; m++ {
		if c := at(3, 28, 23, 0).Add(time.Duration(m) * time.Minute); w.Contains(c) {
			t.Fatalf("%q is open at %v, in a day without 02:00-03:00", w, c.In(w.Location()))
		}
	}
}

func TestDSTFallBack(t *testing.T) {
	tests := []struct {
		name, window string
		from         time.Time
		next, end    time.Time
	}{
		// 02:00-03:00 happens twice and the window is open through both:
		// from 02:00 CEST (00:00 UTC) to 03:00 CET (02:00 UTC).
		{"the repeated hour", "Sun 02:00-03:00 Europe/Berlin", at(10, 24, 12, 0), at(10, 25, 0, 0), at(10, 25, 2, 0)},
		// 02:30-03:00 happens twice with 02:00-02:29 between: two
		// openings, 02:30-03:00 CEST, then 02:30-03:00 CET.
		{"first of two", "Sun 02:30-03:00 Europe/Berlin", at(10, 24, 12, 0), at(10, 25, 0, 30), at(10, 25, 1, 0)},
		{"second of two", "Sun 02:30-03:00 Europe/Berlin", at(10, 25, 1, 0), at(10, 25, 1, 30), at(10, 25, 2, 0)},
		// 02:00-02:30 CEST, and again when the clock goes back to 02:00
		// CET: the second opening starts at the change itself.
		{"reopens at the change", "Sun 02:00-02:30 Europe/Berlin", at(10, 25, 0, 30), at(10, 25, 1, 0), at(10, 25, 1, 30)},
		// Wall time 01:00-04:00 is four hours that day.
		{"spans the change", "Sun 01:00-04:00 Europe/Berlin", at(10, 24, 12, 0), at(10, 24, 23, 0), at(10, 25, 3, 0)},
		{"overnight", "Sat 23:00-03:00 Europe/Berlin", at(10, 24, 12, 0), at(10, 24, 21, 0), at(10, 25, 2, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkOpening(t, mustParse(t, tt.window), tt.from, tt.next, tt.end)
		})
	}
	// Both passes through 02:10 are inside 02:00-03:00.
	w := mustParse(t, "Sun 02:00-03:00 Europe/Berlin")
	for _, c := range []time.Time{at(10, 25, 0, 10), at(10, 25, 1, 10)} {
		if !w.Contains(c) {
			t.Errorf("%q is closed at %v", w, c.In(w.Location()))
		}
	}
}

// checkOpening checks that w, closed at from, next opens at next and
// that that opening ends at end, and that Contains agrees minute by
// minute across it.
func checkOpening(t *testing.T, w Window, from, next, end time.Time) {
	t.Helper()
	if w.Contains(from) {
		t.Fatalf("%q is open at %v", w, from)
	}
	if got := w.Next(from); !got.Equal(next) {
		t.Fatalf("Next(%v) = %v, want %v", from, got.In(w.Location()), next.In(w.Location()))
	}
	if got := w.End(next); !got.Equal(end) {
		t.Errorf("End(%v) = %v, want %v", next, got.In(w.Location()), end.In(w.Location()))
	}
	for c := next; c.Before(end); c = c.Add(time.Minute) {
		if !w.Contains(c) {
			t.Fatalf("closed at %v, inside the opening %v-%v", c.In(w.Location()), next, end)
		}
	}
	if w.Contains(next.Add(-time.Nanosecond)) || w.Contains(end) {
		t.Errorf("open just before %v or at %v", next, end)
	}
}
