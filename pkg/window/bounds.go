package window

import (
	"slices"
	"time"
)

// searchDays is how many days of wall-clock dates, from the day before
// t's, firstAfter looks at. An opening recurs weekly, so the next one
// starts within 8 days of t's date; the longest opening (six whole days)
// ends within 7. One day more covers zones up to a day off UTC.
const searchDays = 10

// firstAfter returns the first instant after t at which Contains is open
// (open true) or closed (open false), in t's location, or the zero Time
// if there is none within the search (a window that never closes).
//
// Contains changes only where the wall clock reaches one of the window's
// boundary times, or where it jumps because the zone's offset changes
// (into a window whose start fell in a gap, or out of one whose end did,
// or back over its start on the day the clocks go back). Those instants
// are the candidates; Contains decides which of them count.
func (w Window) firstAfter(t time.Time, open bool) time.Time {
	lt := t.In(w.loc)
	first := time.Date(lt.Year(), lt.Month(), lt.Day()-1, 0, 0, 0, 0, time.UTC)
	var cands []time.Time
	for i := 0; i < searchDays; i++ {
		day := first.AddDate(0, 0, i)
		for _, minute := range []int{w.start, w.end % minutesPerDay} {
			wall := day.Add(time.Duration(minute) * time.Minute)
			cands = append(cands, wallInstants(w.loc, wall)...)
		}
	}
	cands = append(cands, transitions(t, t.AddDate(0, 0, searchDays+1), w.loc)...)
	slices.SortFunc(cands, time.Time.Compare)
	for _, c := range cands {
		if c.After(t) && w.Contains(c) == open {
			return c.In(t.Location())
		}
	}
	return time.Time{}
}

// wallInstants returns the instants at which a clock in loc reads wall
// (given as a UTC time with the same fields): none if the clocks skip it,
// two if they go back over it, else one.
func wallInstants(loc *time.Location, wall time.Time) []time.Time {
	guess := time.Date(wall.Year(), wall.Month(), wall.Day(), wall.Hour(), wall.Minute(), 0, 0, loc)
	// Whichever of the two readings time.Date chose, the other one (if
	// any) has the offset of the zone period just before or after it.
	probes := []time.Time{guess}
	from, to := guess.ZoneBounds()
	if !from.IsZero() {
		probes = append(probes, from.Add(-time.Nanosecond))
	}
	if !to.IsZero() {
		probes = append(probes, to)
	}
	var out []time.Time
	for _, p := range probes {
		_, offset := p.Zone()
		at := wall.Add(-time.Duration(offset) * time.Second).In(loc)
		if sameWall(at, wall) && !slices.ContainsFunc(out, at.Equal) {
			out = append(out, at)
		}
	}
	return out
}

// sameWall tells whether a clock showing t reads the same as wall.
func sameWall(t, wall time.Time) bool {
	y, m, d := t.Date()
	wy, wm, wd := wall.Date()
	return y == wy && m == wm && d == wd && t.Hour() == wall.Hour() && t.Minute() == wall.Minute() && t.Second() == wall.Second()
}

// transitions returns the instants in (from, to] at which loc's offset
// changes.
func transitions(from, to time.Time, loc *time.Location) []time.Time {
	var out []time.Time
	for at := from.In(loc); ; {
		_, next := at.ZoneBounds()
		if next.IsZero() || next.After(to) {
			return out
		}
		out = append(out, next)
		at = next
	}
}
