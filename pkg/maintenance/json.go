package maintenance

import "github.com/drainctl/drainctl/pkg/jsonms"

// Durations in JSON are whole milliseconds in _ms fields (package jsonms).

// MarshalJSON encodes r with its durations in milliseconds.
func (r Request) MarshalJSON() ([]byte, error) { return jsonms.Marshal(r) }

// UnmarshalJSON refuses unknown fields itself: a decoder's
// DisallowUnknownFields does not reach into an UnmarshalJSON method, and a
// misspelt "ttl" must not become a hold without an end.
func (r *Request) UnmarshalJSON(b []byte) error { return jsonms.UnmarshalStrict(b, r) }

// MarshalJSON encodes r with its duration in milliseconds.
func (r Result) MarshalJSON() ([]byte, error) { return jsonms.Marshal(r) }

// UnmarshalJSON decodes r with its duration in milliseconds.
func (r *Result) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, r) }
