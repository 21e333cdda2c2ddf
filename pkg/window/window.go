// Package window reads and evaluates maintenance windows, as operators
// write them for drainctl maintenance reboot --window and run --window:
// days of the week, a time of day range and a time zone, such as
// "Mon-Fri 02:00-05:00 Europe/Berlin".
//
// A window is wall-clock time in its zone: "02:00-05:00 Europe/Berlin"
// is open whenever a clock in Berlin reads 02:00 to 04:59, whatever the
// offset from UTC is that day. On the days the clocks change that has two
// consequences, both deliberate:
//
//   - When the clocks go forward (Berlin, 2026-03-29, 02:00 becomes
//     03:00), wall times in the gap never happen. A window 02:30-04:00
//     opens at 03:00, the first moment the clock reads a time inside it;
//     a window 02:00-03:00 does not open at all that day. Opening at some
//     made-up instant instead would start maintenance at a time nobody
//     wrote.
//   - When the clocks go back (Berlin, 2026-10-25, 03:00 becomes 02:00),
//     wall times 02:00-02:59 happen twice. A window 02:00-03:00 is open
//     through both, two hours in all; a window 02:30-03:00 opens twice,
//     and closes in between while the clock reads 02:00-02:29 again. The
//     window is open exactly when the clock says so: that is what the
//     operator can check against a wall clock.
//
// Contains is the definition; Next and End find the instants at which it
// changes (see bounds.go).
package window

import (
	"fmt"
	"strings"
	"time"
)

const minutesPerDay = 24 * 60

// Window is a weekly maintenance window. The zero Window is no window: it
// is never open.
//
// Compare windows with Equal, not ==: two windows parsed from the same
// text hold different *time.Location values for the same zone.
type Window struct {
	// days has bit d set when the window opens on time.Weekday(d).
	days uint8
	// start and end are minutes after midnight: start 0-1439, end 1-1440.
	// An end before the start spans midnight into the next day.
	start, end int
	loc        *time.Location
}

// IsZero tells whether w is the zero Window (no window). encoding/json's
// omitzero uses it.
func (w Window) IsZero() bool { return w.days == 0 }

// Location is the zone w is read in: time.Local for a window written
// without one.
func (w Window) Location() *time.Location { return w.loc }

// Equal tells whether w and v open at the same wall-clock times in zones
// of the same name.
func (w Window) Equal(v Window) bool {
	return w.days == v.days && w.start == v.start && w.end == v.end && zoneName(w.loc) == zoneName(v.loc)
}

// zoneName is loc's name, "" for none (the zero Window).
func zoneName(loc *time.Location) string {
	if loc == nil {
		return ""
	}
	return loc.String()
}

// Contains tells whether the window is open at t.
func (w Window) Contains(t time.Time) bool {
	if w.IsZero() {
		return false
	}
	lt := t.In(w.loc)
	day := lt.Weekday()
	minute := lt.Hour()*60 + lt.Minute()
	if w.start < w.end {
		return w.opensOn(day) && w.start <= minute && minute < w.end
	}
	// Spanning midnight: the evening part belongs to today, the morning
	// part to the opening that started yesterday.
	yesterday := (day + 6) % 7
	return (w.opensOn(day) && minute >= w.start) || (w.opensOn(yesterday) && minute < w.end)
}

func (w Window) opensOn(d time.Weekday) bool { return w.days&(1<<d) != 0 }

// Next returns t if the window is open at t, else the instant it next
// opens. The zero Window never opens: Next returns the zero Time.
// The result is in t's location.
func (w Window) Next(t time.Time) time.Time {
	if w.IsZero() {
		return time.Time{}
	}
	if w.Contains(t) {
		return t
	}
	return w.firstAfter(t, true)
}

// End returns the instant the opening that contains t closes: the first
// instant after t at which the window is not open. It returns the zero
// Time if t is outside the window, and also for a window that never
// closes (every day 00:00-24:00). Openings that touch (Mon,Tue
// 00:00-24:00) are one opening. The result is in t's location.
func (w Window) End(t time.Time) time.Time {
	if !w.Contains(t) {
		return time.Time{}
	}
	return w.firstAfter(t, false)
}

// String returns w in the form Parse reads back to an equal window: days
// as ranges of three or more (Mon-Fri) and lists otherwise (Sat,Sun),
// left out for every day; times as HH:MM; the zone left out for
// time.Local. The zero Window is "".
func (w Window) String() string {
	if w.IsZero() {
		return ""
	}
	var b strings.Builder
	if w.days != allDays {
		b.WriteString(formatDays(w.days))
		b.WriteByte(' ')
	}
	fmt.Fprintf(&b, "%02d:%02d-%02d:%02d", w.start/60, w.start%60, w.end/60, w.end%60)
	if w.loc != time.Local {
		b.WriteByte(' ')
		b.WriteString(w.loc.String())
	}
	return b.String()
}

// MarshalText writes w as String does, so a window travels in JSON as the
// text an operator wrote.
func (w Window) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// UnmarshalText reads w as Parse does. Empty text is the zero Window (no
// window), as MarshalText writes it.
func (w *Window) UnmarshalText(text []byte) error {
	if len(text) == 0 {
		*w = Window{}
		return nil
	}
	v, err := Parse(string(text))
	if err != nil {
		return err
	}
	*w = v
	return nil
}

// weekOrder is the order days are written in: the week starts on Monday.
var weekOrder = [7]time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday}

// formatDays writes a set of days (not all seven) as runs in week order;
// a run through Sunday into Monday is written as one wrapping range
// first (Fri-Mon), as an operator would write it.
func formatDays(set uint8) string {
	type run struct{ from, to int } // indexes into weekOrder
	var runs []run
	for i := 0; i < 7; i++ {
		if set&(1<<weekOrder[i]) == 0 {
			continue
		}
		if n := len(runs); n > 0 && runs[n-1].to == i-1 {
			runs[n-1].to = i
		} else {
			runs = append(runs, run{i, i})
		}
	}
	if n := len(runs); n > 1 && runs[0].from == 0 && runs[n-1].to == 6 {
		wrapped := run{runs[n-1].from, runs[0].to + 7}
		runs = append([]run{wrapped}, runs[1:n-1]...)
	}
	parts := make([]string, 0, len(runs))
	for _, r := range runs {
		from, to := dayName(weekOrder[r.from%7]), dayName(weekOrder[r.to%7])
		switch r.to - r.from {
		case 0:
			parts = append(parts, from)
		case 1:
			parts = append(parts, from+","+to)
		default:
			parts = append(parts, from+"-"+to)
		}
	}
	return strings.Join(parts, ",")
}
