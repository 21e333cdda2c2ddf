package runner

import "github.com/drainctl/drainctl/pkg/jsonms"

// Durations in JSON are whole milliseconds in _ms fields (package jsonms).

// MarshalJSON encodes c with its timeout in milliseconds.
func (c Command) MarshalJSON() ([]byte, error) { return jsonms.Marshal(c) }

// UnmarshalJSON decodes c with its timeout in milliseconds.
func (c *Command) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, c) }

// MarshalJSON encodes o with its duration in milliseconds.
func (o Output) MarshalJSON() ([]byte, error) { return jsonms.Marshal(o) }

// UnmarshalJSON decodes o with its duration in milliseconds.
func (o *Output) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, o) }
