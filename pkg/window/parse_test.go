package window

import (
	"strings"
	"testing"
	"time"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		in string
		// canonical is what String writes back.
		canonical  string
		days       []time.Weekday
		start, end int
		zone       string // "" for time.Local
	}{
		{"Mon-Fri 02:00-05:00 Europe/Berlin", "Mon-Fri 02:00-05:00 Europe/Berlin", week(1, 2, 3, 4, 5), 120, 300, "Europe/Berlin"},
		{"Sat,Sun 22:00-04:00 UTC", "Sat,Sun 22:00-04:00 UTC", week(6, 0), 1320, 240, "UTC"},
		{"Tue 03:00-03:30", "Tue 03:00-03:30", week(2), 180, 210, ""},
		{"02:00-05:00 UTC", "02:00-05:00 UTC", week(0, 1, 2, 3, 4, 5, 6), 120, 300, "UTC"},
		{"Mon,Wed-Fri 01:00-02:00 UTC", "Mon,Wed-Fri 01:00-02:00 UTC", week(1, 3, 4, 5), 60, 120, "UTC"},
		{"Fri-Mon 01:00-02:00 UTC", "Fri-Mon 01:00-02:00 UTC", week(5, 6, 0, 1), 60, 120, "UTC"},
		{"Sun-Mon 01:00-02:00 UTC", "Sun,Mon 01:00-02:00 UTC", week(0, 1), 60, 120, "UTC"},
		{"Sat-Mon,Wed 01:00-02:00 UTC", "Sat-Mon,Wed 01:00-02:00 UTC", week(6, 0, 1, 3), 60, 120, "UTC"},
		{"mon-FRI 02:00-05:00 UTC", "Mon-Fri 02:00-05:00 UTC", week(1, 2, 3, 4, 5), 120, 300, "UTC"},
		{"Mon-Sun 02:00-05:00 UTC", "02:00-05:00 UTC", week(0, 1, 2, 3, 4, 5, 6), 120, 300, "UTC"},
		{"Mon,Mon,Tue 02:00-05:00 UTC", "Mon,Tue 02:00-05:00 UTC", week(1, 2), 120, 300, "UTC"},
		{"Mon,Tue,Wed,Fri 02:00-05:00 UTC", "Mon-Wed,Fri 02:00-05:00 UTC", week(1, 2, 3, 5), 120, 300, "UTC"},
		{"Sun 2:00-5:30 UTC", "Sun 02:00-05:30 UTC", week(0), 120, 330, "UTC"},
		{"Sun 22:00-24:00 UTC", "Sun 22:00-24:00 UTC", week(0), 1320, 1440, "UTC"},
		{"00:00-24:00 UTC", "00:00-24:00 UTC", week(0, 1, 2, 3, 4, 5, 6), 0, 1440, "UTC"},
		{"23:59-00:00 UTC", "23:59-00:00 UTC", week(0, 1, 2, 3, 4, 5, 6), 1439, 0, "UTC"},
		{"  Mon   02:00-05:00\tUTC ", "Mon 02:00-05:00 UTC", week(1), 120, 300, "UTC"},
		{"Mon 02:00-05:00 Local", "Mon 02:00-05:00", week(1), 120, 300, ""},
		{"Mon 02:00-05:00 America/New_York", "Mon 02:00-05:00 America/New_York", week(1), 120, 300, "America/New_York"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			w, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := w.String(); got != tt.canonical {
				t.Errorf("String() = %q, want %q", got, tt.canonical)
			}
			var days uint8
			for _, d := range tt.days {
				days |= 1 << d
			}
			if w.days != days || w.start != tt.start || w.end != tt.end {
				t.Errorf("days %07b start %d end %d, want %07b %d %d", w.days, w.start, w.end, days, tt.start, tt.end)
			}
			want := tt.zone
			if want == "" {
				if w.Location() != time.Local {
					t.Errorf("zone %v, want time.Local", w.Location())
				}
			} else if w.Location().String() != want {
				t.Errorf("zone %v, want %s", w.Location(), want)
			}
		})
	}
}

// week lists days as time.Weekday numbers (Sunday 0).
func week(days ...time.Weekday) []time.Weekday { return days }

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in string
		// want are parts the error must have: the input and the bad part.
		want []string
	}{
		{"", []string{`window ""`, "empty"}},
		{"   ", []string{`window "   "`, "empty"}},
		{"Mon-Fry 02:00-05:00", []string{`window "Mon-Fry 02:00-05:00": unknown day "Fry" (days: Mon Tue Wed Thu Fri Sat Sun)`}},
		{"Monday 02:00-05:00", []string{`unknown day "Monday"`}},
		{"Mon,,Tue 02:00-05:00", []string{`empty day in "Mon,,Tue"`}},
		{"Mon, 02:00-05:00", []string{`empty day in "Mon,"`}},
		{"Mon-Mon 02:00-05:00", []string{`day range "Mon-Mon" starts and ends on the same day`}},
		{"Mon-Tue-Wed 02:00-05:00", []string{`unknown day "Tue-Wed"`}},
		{"Mon", []string{`window "Mon": no time range`}},
		{"Mon 02:00", []string{`time range "02:00" has no '-'`}},
		{"Mon 02:00-", []string{`time "" is not HH:MM`}},
		{"Mon 2-5", []string{`time "2" is not HH:MM`}},
		{"Mon 02:0-05:00", []string{`time "02:0" is not HH:MM`}},
		{"Mon 002:00-05:00", []string{`time "002:00" is not HH:MM`}},
		{"Mon +2:00-05:00", []string{`time "+2:00" is not HH:MM`}},
		{"Mon 25:00-05:00", []string{`time "25:00" is out of range`}},
		{"Mon 02:60-05:00", []string{`time "02:60" is out of range`}},
		{"Mon 02:00-24:01", []string{`time "24:01" is out of range`}},
		{"Mon 24:00-05:00", []string{`start "24:00": 24:00 is only allowed as an end`}},
		{"Mon 02:00-02:00", []string{`time range "02:00-02:00" starts and ends at the same time`}},
		{"00:00-00:00 UTC", []string{`starts and ends at the same time`, "00:00-24:00"}},
		{"Mon 02:00-05:00 Europe/Berln", []string{`window "Mon 02:00-05:00 Europe/Berln": unknown time zone "Europe/Berln"`, "IANA", "Europe/Berlin"}},
		{"Mon 02:00-05:00 ../etc/passwd", []string{`unknown time zone "../etc/passwd"`}},
		{"Mon 02:00-05:00 /etc/localtime", []string{`unknown time zone "/etc/localtime"`}},
		{"Mon 02:00-05:00 UTC extra", []string{`unexpected "extra" after the zone`}},
		{"02:00-05:00 UTC Mon", []string{`unexpected "Mon" after the zone`}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			w, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse = %q, want an error", w)
			}
			for _, part := range tt.want {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not say %q", err, part)
				}
			}
			if !w.IsZero() {
				t.Errorf("Parse returned %q with its error, want the zero Window", w)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	for _, in := range []string{
		"Mon-Fri 02:00-05:00 Europe/Berlin",
		"Sat,Sun 22:00-04:00 UTC",
		"Tue 03:00-03:30",
		"02:00-05:00 UTC",
		"fri-mon,wed 23:00-01:00 Asia/Kolkata",
		"Thu,Sat 00:00-24:00 Australia/Lord_Howe",
	} {
		w, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		back, err := Parse(w.String())
		if err != nil {
			t.Fatalf("Parse(%q) (String of %q): %v", w.String(), in, err)
		}
		if !back.Equal(w) {
			t.Errorf("%q: String %q reads back as %q", in, w, back)
		}
	}
}
