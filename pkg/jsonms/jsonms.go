// Package jsonms puts durations in JSON as whole milliseconds. Go's
// time.Duration encodes as nanoseconds, which no script reading drainctl's
// JSON should have to know; the API's rule is that every duration is an
// integer number of milliseconds in a field whose name ends in _ms.
package jsonms

import (
	"fmt"
	"strconv"
	"time"
)

// Duration is a time.Duration that encodes as milliseconds. Structs keep
// time.Duration fields (json:"-") and name a Duration in their own
// MarshalJSON and UnmarshalJSON, so Go code never converts.
type Duration time.Duration

// MarshalJSON writes whole milliseconds, truncated.
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, time.Duration(d).Milliseconds(), 10), nil
}

// UnmarshalJSON reads an integer number of milliseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	ms, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("duration %s: want whole milliseconds, e.g. 1500", b)
	}
	const limit = int64(1<<63-1) / int64(time.Millisecond)
	if ms > limit || ms < -limit {
		return fmt.Errorf("duration %s ms: out of range", b)
	}
	*d = Duration(time.Duration(ms) * time.Millisecond)
	return nil
}

// P returns d as a *Duration, for the fields of a decoding struct that
// point into the value being decoded.
func P(d *time.Duration) *Duration { return (*Duration)(d) }
