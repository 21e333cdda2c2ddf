package ready

import (
	"fmt"
	"strconv"
	"strings"
)

// Statuses is a set of accepted HTTP statuses, written as a list of codes
// and ranges: "200-399" (the default), "200", "200,301,302", "200-299,401".
type Statuses []statusRange

type statusRange struct{ lo, hi int }

// DefaultStatuses accepts every success and redirect: a site that answers
// "/" with 301 to its login page is up. Redirects are not followed: the
// check is of this server, not of where it points.
const DefaultStatuses = "200-399"

// ParseStatuses reads a list of codes and ranges.
func ParseStatuses(s string) (Statuses, error) {
	var out Statuses
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(strings.TrimSpace(hi))
		}
		if err1 != nil || err2 != nil || a < 100 || b > 599 || a > b {
			return nil, fmt.Errorf("ready status %q: want HTTP codes (100-599) and ranges, e.g. 200-399 or 200,301", s)
		}
		out = append(out, statusRange{a, b})
	}
	return out, nil
}

// MustStatuses is ParseStatuses for constants.
func MustStatuses(s string) Statuses {
	st, err := ParseStatuses(s)
	if err != nil {
		panic(err)
	}
	return st
}

// Has reports whether code is accepted.
func (s Statuses) Has(code int) bool {
	for _, r := range s {
		if code >= r.lo && code <= r.hi {
			return true
		}
	}
	return false
}

// String is the list form, as ParseStatuses reads it: "200-399,401".
func (s Statuses) String() string {
	parts := make([]string, len(s))
	for i, r := range s {
		parts[i] = strconv.Itoa(r.lo)
		if r.hi != r.lo {
			parts[i] += "-" + strconv.Itoa(r.hi)
		}
	}
	return strings.Join(parts, ",")
}

// MarshalText writes the list form, for JSON (agent --check).
func (s Statuses) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads the list form.
func (s *Statuses) UnmarshalText(b []byte) error {
	v, err := ParseStatuses(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
