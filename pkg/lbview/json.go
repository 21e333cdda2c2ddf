package lbview

import "github.com/drainctl/drainctl/pkg/jsonms"

// Durations in JSON are whole milliseconds in _ms fields (package jsonms).

// MarshalJSON encodes l with its interval in milliseconds.
func (l LB) MarshalJSON() ([]byte, error) { return jsonms.Marshal(l) }

// UnmarshalJSON decodes l with its interval in milliseconds.
func (l *LB) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, l) }

// MarshalJSON encodes c with its durations in milliseconds.
func (c Confirmation) MarshalJSON() ([]byte, error) { return jsonms.Marshal(c) }

// UnmarshalJSON decodes c with its durations in milliseconds.
func (c *Confirmation) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, c) }

// MarshalJSON encodes c with its durations in milliseconds.
func (c Confirmed) MarshalJSON() ([]byte, error) { return jsonms.Marshal(c) }

// UnmarshalJSON decodes c with its durations in milliseconds.
func (c *Confirmed) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, c) }
