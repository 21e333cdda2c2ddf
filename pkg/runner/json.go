package runner

import (
	"encoding/json"

	"github.com/drainctl/drainctl/pkg/jsonms"
)

// Durations in JSON are whole milliseconds in _ms fields (package jsonms).

func (c Command) MarshalJSON() ([]byte, error) {
	type fields Command
	return json.Marshal(struct {
		fields
		Timeout jsonms.Duration `json:"timeout_ms"`
	}{fields(c), jsonms.Duration(c.Timeout)})
}

func (c *Command) UnmarshalJSON(b []byte) error {
	type fields Command
	return json.Unmarshal(b, &struct {
		*fields
		Timeout *jsonms.Duration `json:"timeout_ms"`
	}{(*fields)(c), jsonms.P(&c.Timeout)})
}

func (o Output) MarshalJSON() ([]byte, error) {
	type fields Output
	return json.Marshal(struct {
		fields
		Duration jsonms.Duration `json:"duration_ms"`
	}{fields(o), jsonms.Duration(o.Duration)})
}

func (o *Output) UnmarshalJSON(b []byte) error {
	type fields Output
	return json.Unmarshal(b, &struct {
		*fields
		Duration *jsonms.Duration `json:"duration_ms"`
	}{(*fields)(o), jsonms.P(&o.Duration)})
}
