package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/freetext"
	"github.com/drainctl/drainctl/pkg/maintenance"
	"github.com/drainctl/drainctl/pkg/state"
)

// FuzzDecodeRequest: no body makes the decoder panic; a body it accepts
// has known fields only and survives the round trip (encoded, it decodes
// to the same request); and the engine's check of it never panics, and
// lets through only free text that is bounded and free of control and
// bidi characters.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{`{"who":"cron","reason":"patch","ttl_ms":3600000}`, `{}`, `{"reason":"x"}{}`, `{"bogus":1}`, `null`, `[`,
		`{"who":"a\rb","reason":"\u202e","command":"x\u001b","command_done":{"command":"c","exit_code":-1,"output":"o\u0000"}}`,
		`{"who":"w","on_deadline":"proceed","deadline_ms":1e3,"pool_wait_ms":-1,"window":"Mon 02:00-05:00 UTC","outside_window":"wait"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeRequest(bytes.NewReader(b))
		if err != nil {
			return
		}
		enc, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("%q decoded to %+v, which does not encode: %v", b, req, err)
		}
		back, err := DecodeRequest(bytes.NewReader(enc))
		if err != nil || !reflect.DeepEqual(back, req) {
			t.Fatalf("%q decoded to %+v, encoded as %s, decoded back to %+v (%v)", b, req, enc, back, err)
		}
		for _, op := range []apitype.Op{apitype.OpEnter, apitype.OpExit, apitype.OpRestart, apitype.OpReboot, apitype.OpWebStop} {
			if maintenance.CheckRequest(state.Op(op), EngineRequest(req)) != nil {
				continue
			}
			for _, s := range []string{req.Who, req.Reason, req.Command, req.Log} {
				if len(s) > maintenance.MaxCommand || freetext.Check("", s, len(s)) != nil || strings.ContainsAny(s, "\r\n\x1b\u202e") {
					t.Fatalf("%s accepted %q: free text %q", op, b, s)
				}
			}
		}
	})
}
