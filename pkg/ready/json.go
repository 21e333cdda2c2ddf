package ready

import (
	"encoding/json"

	"github.com/drainctl/drainctl/pkg/jsonms"
)

// Durations in JSON are whole milliseconds in _ms fields (package jsonms).
// A Check is only written (agent --check), never read.
func (c Check) MarshalJSON() ([]byte, error) {
	type fields Check
	return json.Marshal(struct {
		fields
		Timeout  jsonms.Duration `json:"timeout_ms"`
		Interval jsonms.Duration `json:"interval_ms"`
	}{fields(c), jsonms.Duration(c.Timeout), jsonms.Duration(c.Interval)})
}
