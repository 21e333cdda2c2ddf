package pool

import (
	"fmt"
	"strconv"
	"strings"
)

// Limit is how many servers of a pool may be out at once: a count, or a
// percentage of the pool's members. The zero Limit is one server.
type Limit struct {
	n       int
	percent bool
}

// ParseLimit reads "N" (a count, at least 1) or "P%" (1 to 100 percent of
// the members, rounded down, at least one server).
func ParseLimit(s string) (Limit, error) {
	t := strings.TrimSpace(s)
	pct := strings.HasSuffix(t, "%")
	n, err := strconv.Atoi(strings.TrimSuffix(t, "%"))
	switch {
	case err != nil:
		return Limit{}, fmt.Errorf("max_unavailable %q: want a count (2) or a percentage (25%%)", s)
	case pct && (n < 1 || n > 100):
		return Limit{}, fmt.Errorf("max_unavailable %q: a percentage from 1%% to 100%%", s)
	case !pct && n < 1:
		return Limit{}, fmt.Errorf("max_unavailable %q: at least 1 (0 would never let a server out)", s)
	}
	return Limit{n: n, percent: pct}, nil
}

// MustLimit is ParseLimit for constants.
func MustLimit(s string) Limit {
	l, err := ParseLimit(s)
	if err != nil {
		panic(err)
	}
	return l
}

// Allowed is how many servers may be out in a pool of members.
func (l Limit) Allowed(members int) int {
	if l.n == 0 {
		return 1
	}
	if !l.percent {
		return l.n
	}
	// Rounded down, as Kubernetes' maxUnavailable is, but never 0: a
	// limit that lets nobody out would hold every maintenance forever.
	return max(1, members*l.n/100)
}

// String is the limit as ParseLimit reads it.
func (l Limit) String() string {
	switch {
	case l.n == 0:
		return "1"
	case l.percent:
		return strconv.Itoa(l.n) + "%"
	}
	return strconv.Itoa(l.n)
}

// MarshalText writes the limit as ParseLimit reads it.
func (l Limit) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads the limit with ParseLimit.
func (l *Limit) UnmarshalText(b []byte) error {
	v, err := ParseLimit(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}
