package window

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// dayNames are the accepted day names, in the order an error lists them.
const dayNames = "Mon Tue Wed Thu Fri Sat Sun"

// allDays has a bit for every weekday: a window written without days.
const allDays = 1<<7 - 1

// Parse reads a window as an operator writes it: optional days, a time
// range, an optional zone, separated by spaces:
//
//	Mon-Fri 02:00-05:00 Europe/Berlin
//	Sat,Sun 22:00-04:00 UTC
//	Tue 03:00-03:30          (no zone: the host's local zone, time.Local)
//	02:00-05:00 UTC          (no days: every day)
//
// Days are three-letter English names in any case, as a list, ranges or
// both (Mon,Wed-Fri); a range may wrap (Fri-Mon). Times are H:MM or HH:MM
// on a 24-hour clock; 24:00 is allowed as an end. A range whose end is
// before its start spans midnight and belongs to the day it starts on.
// The zone is an IANA name (Europe/Berlin), read from the system's tzdata.
func Parse(s string) (Window, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return Window{}, fmt.Errorf("window %q: empty (want e.g. \"Mon-Fri 02:00-05:00 Europe/Berlin\")", s)
	}
	w := Window{days: allDays, loc: time.Local}
	// A time range has a colon and a day list never does, so the first
	// field tells whether days were written.
	if !strings.Contains(fields[0], ":") {
		days, err := parseDays(fields[0])
		if err != nil {
			return Window{}, fmt.Errorf("window %q: %w", s, err)
		}
		w.days = days
		fields = fields[1:]
	}
	if len(fields) == 0 {
		return Window{}, fmt.Errorf("window %q: no time range (want e.g. 02:00-05:00 after the days)", s)
	}
	start, end, err := parseRange(fields[0])
	if err != nil {
		return Window{}, fmt.Errorf("window %q: %w", s, err)
	}
	w.start, w.end = start, end
	fields = fields[1:]
	if len(fields) > 0 {
		loc, err := loadZone(fields[0])
		if err != nil {
			return Window{}, fmt.Errorf("window %q: %w", s, err)
		}
		w.loc = loc
		fields = fields[1:]
	}
	if len(fields) > 0 {
		return Window{}, fmt.Errorf("window %q: unexpected %q after the zone (want [days] HH:MM-HH:MM [zone])", s, strings.Join(fields, " "))
	}
	return w, nil
}

// parseDays reads a comma-separated list of days and day ranges.
func parseDays(s string) (uint8, error) {
	var set uint8
	for _, item := range strings.Split(s, ",") {
		if item == "" {
			return 0, fmt.Errorf("empty day in %q (days: %s, separated by commas)", s, dayNames)
		}
		from, to, isRange := strings.Cut(item, "-")
		first, err := parseDay(from)
		if err != nil {
			return 0, err
		}
		if !isRange {
			set |= 1 << first
			continue
		}
		last, err := parseDay(to)
		if err != nil {
			return 0, err
		}
		// Mon-Mon could mean the one day or the whole week round: refuse
		// to guess.
		if first == last {
			return 0, fmt.Errorf("day range %q starts and ends on the same day (write %s alone, or leave the days out for every day)", item, dayName(first))
		}
		for d := first; ; d = (d + 1) % 7 {
			set |= 1 << d
			if d == last {
				break
			}
		}
	}
	return set, nil
}

// parseDay reads one day name, in any case.
func parseDay(s string) (time.Weekday, error) {
	for d := time.Sunday; d <= time.Saturday; d++ {
		if strings.EqualFold(s, dayName(d)) {
			return d, nil
		}
	}
	return 0, fmt.Errorf("unknown day %q (days: %s)", s, dayNames)
}

// dayName is the three-letter name Parse reads and String writes.
func dayName(d time.Weekday) string { return d.String()[:3] }

// parseRange reads HH:MM-HH:MM into minutes after midnight.
func parseRange(s string) (start, end int, err error) {
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("time range %q has no '-' (want HH:MM-HH:MM, e.g. 02:00-05:00)", s)
	}
	if start, err = parseClock(from); err != nil {
		return 0, 0, err
	}
	if start == minutesPerDay {
		return 0, 0, fmt.Errorf("start %q: 24:00 is only allowed as an end (start at 00:00)", from)
	}
	if end, err = parseClock(to); err != nil {
		return 0, 0, err
	}
	if start == end {
		return 0, 0, fmt.Errorf("time range %q starts and ends at the same time (for all day write 00:00-24:00)", s)
	}
	return start, end, nil
}

// parseClock reads H:MM or HH:MM, 00:00 to 24:00, into minutes after
// midnight.
func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) < 1 || len(h) > 2 || len(m) != 2 || !digits(h) || !digits(m) {
		return 0, fmt.Errorf("time %q is not HH:MM (want e.g. 02:00 or 23:30)", s)
	}
	hour, _ := strconv.Atoi(h)
	minute, _ := strconv.Atoi(m)
	if hour > 24 || minute > 59 || (hour == 24 && minute != 0) {
		return 0, fmt.Errorf("time %q is out of range (want 00:00 to 23:59, or 24:00 as an end)", s)
	}
	return hour*60 + minute, nil
}

// digits tells whether s is all ASCII digits (strconv.Atoi would also take
// a sign).
func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// loadZone loads an IANA zone from the system's tzdata. The binary does
// not embed Go's copy (time/tzdata, about 450 KB): every host drainctl
// runs on has tzdata, and the system's copy is the one that gets updates
// when a country changes its rules.
func loadZone(name string) (*time.Location, error) {
	loc, err := time.LoadLocation(name)
	if err == nil {
		return loc, nil
	}
	// LoadLocation says "unknown time zone NAME" when no source has the
	// name and "invalid location name" for one with ".." or a leading
	// slash; any other error (a file it could not read) is worth passing
	// on. It has no sentinel errors to match, so the text is all there is.
	if msg := err.Error(); strings.HasPrefix(msg, "unknown time zone") || strings.Contains(msg, "invalid location name") {
		return nil, fmt.Errorf("unknown time zone %q (want an IANA name such as Europe/Berlin, America/New_York or UTC, as in the host's /usr/share/zoneinfo)", name)
	}
	return nil, fmt.Errorf("time zone %q: %w", name, err)
}
