package maintenance

import (
	"bytes"
	"encoding/json"

	"github.com/drainctl/drainctl/pkg/jsonms"
)

// Durations in JSON are whole milliseconds in _ms fields (package jsonms).

func (r Request) MarshalJSON() ([]byte, error) {
	type fields Request
	return json.Marshal(struct {
		fields
		TTL      jsonms.Duration `json:"ttl_ms,omitempty"`
		Deadline jsonms.Duration `json:"deadline_ms,omitempty"`
	}{fields(r), jsonms.Duration(r.TTL), jsonms.Duration(r.Deadline)})
}

// UnmarshalJSON refuses unknown fields itself: a decoder's
// DisallowUnknownFields does not reach into an UnmarshalJSON method, and a
// misspelt "ttl" must not become a hold without an end.
func (r *Request) UnmarshalJSON(b []byte) error {
	type fields Request
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(&struct {
		*fields
		TTL      *jsonms.Duration `json:"ttl_ms"`
		Deadline *jsonms.Duration `json:"deadline_ms"`
	}{(*fields)(r), jsonms.P(&r.TTL), jsonms.P(&r.Deadline)})
}

func (r Result) MarshalJSON() ([]byte, error) {
	type fields Result
	return json.Marshal(struct {
		fields
		Elapsed jsonms.Duration `json:"elapsed_ms"`
	}{fields(r), jsonms.Duration(r.Elapsed)})
}

func (r *Result) UnmarshalJSON(b []byte) error {
	type fields Result
	return json.Unmarshal(b, &struct {
		*fields
		Elapsed *jsonms.Duration `json:"elapsed_ms"`
	}{(*fields)(r), jsonms.P(&r.Elapsed)})
}
