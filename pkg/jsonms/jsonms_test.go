package jsonms

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	type s struct {
		D Duration `json:"d_ms"`
	}
	b, err := json.Marshal(s{Duration(1500*time.Millisecond + 999*time.Microsecond)})
	if err != nil || string(b) != `{"d_ms":1500}` {
		t.Fatalf("marshal: %s, %v", b, err)
	}
	var v s
	if err := json.Unmarshal([]byte(`{"d_ms":7200000}`), &v); err != nil || time.Duration(v.D) != 2*time.Hour {
		t.Fatalf("unmarshal: %v, %v", time.Duration(v.D), err)
	}
	for _, bad := range []string{`"2h"`, `1.5`, `99999999999999999999`, `9223372036854775`} {
		err := json.Unmarshal([]byte(`{"d_ms":`+bad+`}`), &v)
		if err == nil || !strings.Contains(err.Error(), "duration") {
			t.Errorf("%s: err %v, want a duration error", bad, err)
		}
	}
}
