package apitype

import "github.com/drainctl/drainctl/pkg/jsonms"

// Durations are whole milliseconds in _ms fields (package jsonms): each
// type with a time.Duration field encodes and decodes through jsonms.

// MarshalJSON encodes r with its durations in milliseconds.
func (r Request) MarshalJSON() ([]byte, error) { return jsonms.Marshal(r) }

// UnmarshalJSON refuses unknown fields itself: a decoder's
// DisallowUnknownFields does not reach into an UnmarshalJSON method (the
// strict decoder reaches its CommandDone too).
func (r *Request) UnmarshalJSON(b []byte) error { return jsonms.UnmarshalStrict(b, r) }

// MarshalJSON encodes r with its duration in milliseconds.
func (r Result) MarshalJSON() ([]byte, error) { return jsonms.Marshal(r) }

// UnmarshalJSON decodes r with its duration in milliseconds.
func (r *Result) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, r) }

// MarshalJSON encodes o with its duration in milliseconds.
func (o Output) MarshalJSON() ([]byte, error) { return jsonms.Marshal(o) }

// UnmarshalJSON decodes o with its duration in milliseconds.
func (o *Output) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, o) }

// MarshalJSON encodes e with its durations in milliseconds.
func (e DrainEvent) MarshalJSON() ([]byte, error) { return jsonms.Marshal(e) }

// UnmarshalJSON decodes e with its durations in milliseconds.
func (e *DrainEvent) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, e) }

// MarshalJSON encodes c with its durations in milliseconds.
func (c ConnSummary) MarshalJSON() ([]byte, error) { return jsonms.Marshal(c) }

// UnmarshalJSON decodes c with its durations in milliseconds.
func (c *ConnSummary) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, c) }

// MarshalJSON encodes r with its duration in milliseconds.
func (r DrainResult) MarshalJSON() ([]byte, error) { return jsonms.Marshal(r) }

// UnmarshalJSON decodes r with its duration in milliseconds.
func (r *DrainResult) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, r) }

// MarshalJSON encodes c with its duration in milliseconds.
func (c Confirmation) MarshalJSON() ([]byte, error) { return jsonms.Marshal(c) }

// UnmarshalJSON decodes c with its duration in milliseconds.
func (c *Confirmation) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, c) }

// MarshalJSON encodes c with its duration in milliseconds.
func (c Confirmed) MarshalJSON() ([]byte, error) { return jsonms.Marshal(c) }

// UnmarshalJSON decodes c with its duration in milliseconds.
func (c *Confirmed) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, c) }

// MarshalJSON encodes l with its duration in milliseconds.
func (l LB) MarshalJSON() ([]byte, error) { return jsonms.Marshal(l) }

// UnmarshalJSON decodes l with its duration in milliseconds.
func (l *LB) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, l) }
