package window

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// 2026-06-01 is a Monday.
func utc(day, hour, minute int) time.Time {
	return time.Date(2026, 6, day, hour, minute, 0, 0, time.UTC)
}

func mustParse(t *testing.T, s string) Window {
	t.Helper()
	w, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return w
}

func TestContains(t *testing.T) {
	tests := []struct {
		window string
		at     time.Time
		want   bool
	}{
		{"Mon-Fri 02:00-05:00 UTC", utc(1, 2, 0), true},  // Mon, the first minute
		{"Mon-Fri 02:00-05:00 UTC", utc(1, 4, 59), true}, // the last minute
		{"Mon-Fri 02:00-05:00 UTC", utc(1, 5, 0), false}, // the end is not in
		{"Mon-Fri 02:00-05:00 UTC", utc(1, 1, 59), false},
		{"Mon-Fri 02:00-05:00 UTC", utc(6, 3, 0), false}, // Sat
		{"Mon-Fri 02:00-05:00 UTC", utc(5, 3, 0), true},  // Fri
		{"Mon-Fri 02:00-05:00 UTC", utc(1, 4, 59).Add(59*time.Second + 999*time.Millisecond), true},
		// Across midnight: Friday's opening runs into Saturday morning,
		// and Saturday itself has none.
		{"Fri 22:00-04:00 UTC", utc(5, 22, 0), true},
		{"Fri 22:00-04:00 UTC", utc(5, 23, 59), true},
		{"Fri 22:00-04:00 UTC", utc(6, 0, 0), true},
		{"Fri 22:00-04:00 UTC", utc(6, 3, 59), true},
		{"Fri 22:00-04:00 UTC", utc(6, 4, 0), false},
		{"Fri 22:00-04:00 UTC", utc(5, 21, 59), false},
		{"Fri 22:00-04:00 UTC", utc(5, 3, 0), false}, // belongs to Thursday, not in
		{"Fri 22:00-04:00 UTC", utc(6, 22, 30), false},
		// Sunday's opening runs into Monday: the week's boundary.
		{"Sun 22:00-04:00 UTC", utc(8, 3, 0), true}, // Mon 8 June
		{"Sun 22:00-04:00 UTC", utc(7, 3, 0), false},
		{"Sat 22:00-04:00 UTC", utc(7, 1, 0), true}, // Sun
		{"Sat,Sun 22:00-04:00 UTC", utc(8, 3, 0), true},
		{"Sat,Sun 22:00-04:00 UTC", utc(9, 3, 0), false}, // Tue
		{"Sun 22:00-24:00 UTC", utc(7, 23, 59), true},
		{"Sun 22:00-24:00 UTC", utc(8, 0, 0), false},
		{"23:59-00:00 UTC", utc(3, 23, 59), true},
		{"23:59-00:00 UTC", utc(4, 0, 0), false},
		{"00:00-24:00 UTC", utc(3, 12, 0), true},
		// t's own location does not matter, only the instant: 03:00 in
		// Berlin in June (CEST, +2) is 01:00 UTC.
		{"Mon 03:00-04:00 Europe/Berlin", utc(1, 1, 0), true},
		{"Mon 03:00-04:00 Europe/Berlin", utc(1, 3, 0), false},
		{"Mon 03:00-04:00 UTC", utc(1, 3, 30).In(time.FixedZone("x", 9*3600)), true},
		// Kolkata is +05:30: Mon 00:00-01:00 there is Sun 18:30-19:30 UTC.
		{"Mon 00:00-01:00 Asia/Kolkata", utc(7, 18, 30), true},
		{"Mon 00:00-01:00 Asia/Kolkata", utc(7, 19, 30), false},
		{"Mon 00:00-01:00 Asia/Kolkata", utc(8, 0, 30), false},
	}
	for _, tt := range tests {
		w := mustParse(t, tt.window)
		if got := w.Contains(tt.at); got != tt.want {
			t.Errorf("%q.Contains(%v) = %v, want %v", tt.window, tt.at, got, tt.want)
		}
	}
}

func TestNext(t *testing.T) {
	tests := []struct {
		window   string
		at, want time.Time
	}{
		{"Mon-Fri 02:00-05:00 UTC", utc(1, 3, 0), utc(1, 3, 0)}, // inside: t itself
		{"Mon-Fri 02:00-05:00 UTC", utc(1, 1, 0), utc(1, 2, 0)},
		{"Mon-Fri 02:00-05:00 UTC", utc(1, 5, 0), utc(2, 2, 0)},
		{"Mon-Fri 02:00-05:00 UTC", utc(5, 5, 0), utc(8, 2, 0)}, // Fri → next Mon
		// Sun → Mon across the week's boundary, and a whole week round.
		{"Mon 02:00-05:00 UTC", utc(7, 23, 0), utc(8, 2, 0)},
		{"Mon 02:00-05:00 UTC", utc(1, 5, 0), utc(8, 2, 0)},
		{"Sun 22:00-04:00 UTC", utc(8, 4, 0), utc(14, 22, 0)},
		{"Sun 22:00-04:00 UTC", utc(8, 3, 59), utc(8, 3, 59)},
		{"Fri-Mon 01:00-02:00 UTC", utc(2, 1, 30), utc(5, 1, 0)},
		{"Fri-Mon 01:00-02:00 UTC", utc(7, 2, 0), utc(8, 1, 0)},
		// Strictly after t, to the nanosecond.
		{"Mon 02:00-05:00 UTC", utc(1, 2, 0).Add(-time.Nanosecond), utc(1, 2, 0)},
		// Zones: Tue 03:00 in New York (EDT, -4) is 07:00 UTC.
		{"Tue 03:00-03:30 America/New_York", utc(1, 12, 0), utc(2, 7, 0)},
		{"Mon 00:00-01:00 Asia/Kolkata", utc(7, 12, 0), utc(7, 18, 30)},
		{"00:00-24:00 UTC", utc(3, 12, 0), utc(3, 12, 0)},
	}
	for _, tt := range tests {
		w := mustParse(t, tt.window)
		got := w.Next(tt.at)
		if !got.Equal(tt.want) {
			t.Errorf("%q.Next(%v) = %v, want %v", tt.window, tt.at, got, tt.want)
		}
		if got.Location() != tt.at.Location() {
			t.Errorf("%q.Next(%v) is in %v, want t's location", tt.window, tt.at, got.Location())
		}
		if !w.Contains(got) {
			t.Errorf("%q.Next(%v) = %v, where the window is closed", tt.window, tt.at, got)
		}
	}
}

func TestNextKeepsLocation(t *testing.T) {
	tokyo := time.FixedZone("JST", 9*3600)
	w := mustParse(t, "Mon 02:00-05:00 UTC")
	got := w.Next(utc(1, 1, 0).In(tokyo))
	if got.Location() != tokyo || !got.Equal(utc(1, 2, 0)) {
		t.Errorf("Next = %v, want %v in JST", got, utc(1, 2, 0).In(tokyo))
	}
}

func TestEnd(t *testing.T) {
	tests := []struct {
		window   string
		at, want time.Time // want zero: none
	}{
		{"Mon-Fri 02:00-05:00 UTC", utc(2, 3, 0), utc(2, 5, 0)},
		{"Mon-Fri 02:00-05:00 UTC", utc(2, 2, 0), utc(2, 5, 0)},
		{"Mon-Fri 02:00-05:00 UTC", utc(2, 5, 0), time.Time{}}, // outside
		{"Mon-Fri 02:00-05:00 UTC", utc(6, 3, 0), time.Time{}},
		{"Fri 22:00-04:00 UTC", utc(5, 23, 0), utc(6, 4, 0)},
		{"Fri 22:00-04:00 UTC", utc(6, 1, 0), utc(6, 4, 0)},
		{"Sun 22:00-04:00 UTC", utc(7, 22, 0), utc(8, 4, 0)},
		{"Sun 22:00-24:00 UTC", utc(7, 23, 0), utc(8, 0, 0)},
		// Whole days that touch are one opening.
		{"Mon,Tue 00:00-24:00 UTC", utc(1, 10, 0), utc(3, 0, 0)},
		{"Mon-Sat 00:00-24:00 UTC", utc(1, 0, 0), utc(7, 0, 0)},
		{"Sat-Mon 00:00-24:00 UTC", utc(6, 0, 0), utc(9, 0, 0)},
		// Every day, all day: it never closes.
		{"00:00-24:00 UTC", utc(3, 12, 0), time.Time{}},
		{"Tue 03:00-03:30 America/New_York", utc(2, 7, 10), utc(2, 7, 30)},
	}
	for _, tt := range tests {
		w := mustParse(t, tt.window)
		if got := w.End(tt.at); !got.Equal(tt.want) {
			t.Errorf("%q.End(%v) = %v, want %v", tt.window, tt.at, got, tt.want)
		}
	}
}

func TestLocalZone(t *testing.T) {
	w := mustParse(t, "Tue 03:00-03:30")
	if w.Location() != time.Local {
		t.Fatalf("zone %v, want time.Local", w.Location())
	}
	// 2026-06-02 is a Tuesday wherever the host is.
	at := time.Date(2026, 6, 2, 3, 10, 0, 0, time.Local)
	if !w.Contains(at) {
		t.Errorf("Contains(%v) = false, want true", at)
	}
	if got, want := w.End(at), time.Date(2026, 6, 2, 3, 30, 0, 0, time.Local); !got.Equal(want) {
		t.Errorf("End = %v, want %v", got, want)
	}
}

func TestZeroWindow(t *testing.T) {
	var w Window
	now := utc(1, 3, 0)
	if w.Contains(now) || !w.Next(now).IsZero() || !w.End(now).IsZero() || w.String() != "" {
		t.Errorf("zero Window: Contains %v, Next %v, End %v, String %q; want never open and \"\"", w.Contains(now), w.Next(now), w.End(now), w.String())
	}
	if !w.Equal(Window{}) || w.Equal(mustParse(t, "Mon 02:00-03:00 UTC")) {
		t.Error("zero Window: Equal is wrong")
	}
}

func TestEqual(t *testing.T) {
	a := mustParse(t, "Mon-Fri 02:00-05:00 Europe/Berlin")
	for _, same := range []string{"mon,tue,wed,thu,fri 2:00-5:00 Europe/Berlin", "Fri-Fri,Mon-Thu 02:00-05:00 Europe/Berlin"} {
		if b, err := Parse(same); err == nil && !a.Equal(b) {
			t.Errorf("%q and %q are not Equal", a, same)
		}
	}
	for _, other := range []string{"Mon-Fri 02:00-05:00 UTC", "Mon-Fri 02:00-05:00", "Mon-Thu 02:00-05:00 Europe/Berlin", "Mon-Fri 02:00-05:01 Europe/Berlin", "Mon-Fri 02:01-05:00 Europe/Berlin"} {
		if a.Equal(mustParse(t, other)) {
			t.Errorf("%q and %q are Equal", a, other)
		}
	}
}

func TestJSON(t *testing.T) {
	type request struct {
		Window Window `json:"window,omitzero"`
	}
	in := request{Window: mustParse(t, "sat,sun 22:00-04:00 Europe/Berlin")}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"window":"Sat,Sun 22:00-04:00 Europe/Berlin"}`; string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
	var out request
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !out.Window.Equal(in.Window) {
		t.Errorf("round trip: %q, want %q", out.Window, in.Window)
	}

	// No window: left out, and read back as none.
	b, err = json.Marshal(request{})
	if err != nil || string(b) != `{}` {
		t.Errorf("Marshal(no window) = %s, %v; want {}", b, err)
	}
	out = request{Window: in.Window}
	if err := json.Unmarshal([]byte(`{"window":""}`), &out); err != nil || !out.Window.IsZero() {
		t.Errorf(`Unmarshal("") = %q, %v; want the zero Window`, out.Window, err)
	}

	err = json.Unmarshal([]byte(`{"window":"Mon-Fry 02:00-05:00"}`), &out)
	if err == nil || !strings.Contains(err.Error(), `unknown day "Fry"`) {
		t.Errorf("Unmarshal(bad window) error = %v, want it to name the bad day", err)
	}
}
