package ready

import "github.com/drainctl/drainctl/pkg/jsonms"

// Durations in JSON are whole milliseconds in _ms fields (package jsonms).

// MarshalJSON encodes c (agent --check prints it) with its durations in
// milliseconds.
func (c Check) MarshalJSON() ([]byte, error) { return jsonms.Marshal(c) }

// UnmarshalJSON decodes c with its durations in milliseconds. Nothing
// reads a Check today; without it, decoding one would take the _ms fields
// for nanoseconds.
func (c *Check) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, c) }
