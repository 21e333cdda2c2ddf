package api

import (
	"strings"
	"testing"
	"time"
)

// A request's durations are milliseconds in _ms fields; any other field,
// the old nanosecond "ttl" among them, is refused rather than ignored.
func TestDecodeRequest(t *testing.T) {
	req, err := DecodeRequest(strings.NewReader(`{"who":"cron","reason":"patch","ttl_ms":7200000,"deadline_ms":30000,"on_deadline":"abort"}`))
	if err != nil || req.TTL != 2*time.Hour || req.Deadline != 30*time.Second || req.OnDeadline != "abort" || req.Who != "cron" {
		t.Fatalf("got %+v, %v", req, err)
	}
	for _, bad := range []string{`{"ttl":3600000000000}`, `{"bogus":1}`, `{"ttl_ms":"2h"}`, `{}{}`} {
		if _, err := DecodeRequest(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
