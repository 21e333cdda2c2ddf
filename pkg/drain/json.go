package drain

import "github.com/drainctl/drainctl/pkg/jsonms"

// The JSON of these types gives durations as whole milliseconds, in the
// fields ending in _ms (package jsonms).

// MarshalJSON encodes p with its durations in milliseconds.
func (p Policy) MarshalJSON() ([]byte, error) { return jsonms.Marshal(p) }

// UnmarshalJSON decodes p with its durations in milliseconds.
func (p *Policy) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, p) }

// MarshalJSON encodes c with its durations in milliseconds.
func (c ConnSummary) MarshalJSON() ([]byte, error) { return jsonms.Marshal(c) }

// UnmarshalJSON decodes c with its durations in milliseconds.
func (c *ConnSummary) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, c) }

// MarshalJSON encodes e with its durations in milliseconds.
func (e Event) MarshalJSON() ([]byte, error) { return jsonms.Marshal(e) }

// UnmarshalJSON decodes e with its durations in milliseconds.
func (e *Event) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, e) }

// MarshalJSON encodes r with its durations in milliseconds.
func (r Result) MarshalJSON() ([]byte, error) { return jsonms.Marshal(r) }

// UnmarshalJSON decodes r with its durations in milliseconds.
func (r *Result) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, r) }
