package drain

import (
	"encoding/json"

	"github.com/drainctl/drainctl/pkg/jsonms"
)

// The JSON of these types gives durations as whole milliseconds, in fields
// ending in _ms (package jsonms). Each method embeds the type's other
// fields through a conversion that drops the methods, so it does not
// recurse.

func (p Policy) MarshalJSON() ([]byte, error) {
	type fields Policy
	return json.Marshal(struct {
		fields
		Poll      jsonms.Duration `json:"poll_ms"`
		MinWait   jsonms.Duration `json:"min_wait_ms"`
		Quiet     jsonms.Duration `json:"quiet_ms"`
		IdleAfter jsonms.Duration `json:"idle_after_ms"`
		Deadline  jsonms.Duration `json:"deadline_ms"`
		Grace     jsonms.Duration `json:"grace_ms"`
	}{fields(p), jsonms.Duration(p.Poll), jsonms.Duration(p.MinWait), jsonms.Duration(p.Quiet),
		jsonms.Duration(p.IdleAfter), jsonms.Duration(p.Deadline), jsonms.Duration(p.Grace)})
}

func (p *Policy) UnmarshalJSON(b []byte) error {
	type fields Policy
	return json.Unmarshal(b, &struct {
		*fields
		Poll      *jsonms.Duration `json:"poll_ms"`
		MinWait   *jsonms.Duration `json:"min_wait_ms"`
		Quiet     *jsonms.Duration `json:"quiet_ms"`
		IdleAfter *jsonms.Duration `json:"idle_after_ms"`
		Deadline  *jsonms.Duration `json:"deadline_ms"`
		Grace     *jsonms.Duration `json:"grace_ms"`
	}{(*fields)(p), jsonms.P(&p.Poll), jsonms.P(&p.MinWait), jsonms.P(&p.Quiet), jsonms.P(&p.IdleAfter), jsonms.P(&p.Deadline), jsonms.P(&p.Grace)})
}

func (c ConnSummary) MarshalJSON() ([]byte, error) {
	type fields ConnSummary
	return json.Marshal(struct {
		fields
		Age  jsonms.Duration `json:"age_ms"`
		Idle jsonms.Duration `json:"idle_ms"`
	}{fields(c), jsonms.Duration(c.Age), jsonms.Duration(c.Idle)})
}

func (c *ConnSummary) UnmarshalJSON(b []byte) error {
	type fields ConnSummary
	return json.Unmarshal(b, &struct {
		*fields
		Age  *jsonms.Duration `json:"age_ms"`
		Idle *jsonms.Duration `json:"idle_ms"`
	}{(*fields)(c), jsonms.P(&c.Age), jsonms.P(&c.Idle)})
}

func (e Event) MarshalJSON() ([]byte, error) {
	type fields Event
	return json.Marshal(struct {
		fields
		Elapsed    jsonms.Duration `json:"elapsed_ms"`
		QuietFor   jsonms.Duration `json:"quiet_for_ms"`
		DeadlineIn jsonms.Duration `json:"deadline_in_ms"`
	}{fields(e), jsonms.Duration(e.Elapsed), jsonms.Duration(e.QuietFor), jsonms.Duration(e.DeadlineIn)})
}

func (e *Event) UnmarshalJSON(b []byte) error {
	type fields Event
	return json.Unmarshal(b, &struct {
		*fields
		Elapsed    *jsonms.Duration `json:"elapsed_ms"`
		QuietFor   *jsonms.Duration `json:"quiet_for_ms"`
		DeadlineIn *jsonms.Duration `json:"deadline_in_ms"`
	}{(*fields)(e), jsonms.P(&e.Elapsed), jsonms.P(&e.QuietFor), jsonms.P(&e.DeadlineIn)})
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
