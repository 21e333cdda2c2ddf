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

// inner has methods of its own: the mirror of wire keeps calling them.
type inner struct {
	Age time.Duration `json:"age_ms"`
}

func (i inner) MarshalJSON() ([]byte, error)     { return Marshal(i) }
func (i *inner) UnmarshalJSON(b []byte) error    { return Unmarshal(b, i) }
func (w wire) MarshalJSON() ([]byte, error)      { return Marshal(w) }
func (w *wire) UnmarshalJSON(b []byte) error     { return Unmarshal(b, w) }
func (w strict) MarshalJSON() ([]byte, error)    { return Marshal(w) }
func (w *strict) UnmarshalJSON(b []byte) error   { return UnmarshalStrict(b, w) }
func (w embedding) MarshalJSON() ([]byte, error) { return Marshal(w) }

type wire struct {
	Name     string         `json:"name"`
	Elapsed  time.Duration  `json:"elapsed_ms"`
	TTL      time.Duration  `json:"ttl_ms,omitempty"`
	Wait     *time.Duration `json:"wait_ms,omitempty"`
	Skipped  time.Duration  `json:"-"`
	Untagged int
	Inner    inner   `json:"inner"`
	Outer    *inner  `json:"outer,omitempty"`
	List     []inner `json:"list,omitempty"`
	hidden   int
}

type strict struct {
	TTL time.Duration `json:"ttl_ms"`
}

type embedding struct {
	inner
}

// Marshal and Unmarshal are encoding/json with whole milliseconds: the
// fields' order, their tags and omitempty as declared, durations
// truncated, nested types' own methods called; what the JSON does not name
// keeps its value, null among it.
func TestMarshalUnmarshal(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n)*time.Millisecond + 999*time.Microsecond }
	wait := ms(7)
	w := wire{Name: "a", Elapsed: ms(1500), Wait: &wait, Skipped: time.Hour, Untagged: 3, Inner: inner{ms(2)},
		Outer: &inner{ms(3)}, List: []inner{{ms(4)}}, hidden: 5}
	b, err := json.Marshal(w)
	want := `{"name":"a","elapsed_ms":1500,"wait_ms":7,"Untagged":3,"inner":{"age_ms":2},"outer":{"age_ms":3},"list":[{"age_ms":4}]}`
	if err != nil || string(b) != want {
		t.Fatalf("marshal:\n got %s, %v\nwant %s", b, err, want)
	}
	if b, _ := json.Marshal(&w); string(b) != want {
		t.Errorf("through a pointer: %s", b)
	}
	if b, _ := json.Marshal(wire{}); string(b) != `{"name":"","elapsed_ms":0,"Untagged":0,"inner":{"age_ms":0}}` {
		t.Errorf("zero value: %s", b)
	}
	got := wire{TTL: time.Minute, Skipped: time.Hour, hidden: 5}
	if err := json.Unmarshal([]byte(`{"name":"b","elapsed_ms":1500,"wait_ms":7,"inner":{"age_ms":2},"outer":{"age_ms":3},"list":[{"age_ms":4}],"ttl_ms":null,"bogus":1}`), &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "b" || got.Elapsed != 1500*time.Millisecond || got.Wait == nil || *got.Wait != 7*time.Millisecond ||
		got.Inner.Age != 2*time.Millisecond || got.Outer == nil || got.Outer.Age != 3*time.Millisecond ||
		len(got.List) != 1 || got.List[0].Age != 4*time.Millisecond ||
		got.TTL != time.Minute || got.Skipped != time.Hour || got.hidden != 5 {
		t.Errorf("unmarshal: %+v", got)
	}
	if err := json.Unmarshal([]byte(`{"elapsed_ms":"2h"}`), &got); err == nil || !strings.Contains(err.Error(), "whole milliseconds") {
		t.Errorf("a duration that is not milliseconds: %v", err)
	}
}

func TestUnmarshalStrict(t *testing.T) {
	var s strict
	if err := json.Unmarshal([]byte(`{"ttl_ms":60000}`), &s); err != nil || s.TTL != time.Minute {
		t.Fatalf("%+v, %v", s, err)
	}
	for _, bad := range []string{`{"ttl":60000000000}`, `{"ttl_ms":1,"x":2}`} {
		if err := json.Unmarshal([]byte(bad), &s); err == nil || !strings.Contains(err.Error(), "unknown field") {
			t.Errorf("%s: %v, want an unknown field", bad, err)
		}
	}
}

func TestUnsupported(t *testing.T) {
	if _, err := json.Marshal(embedding{}); err == nil || !strings.Contains(err.Error(), "embeds") {
		t.Errorf("an embedded field: %v", err)
	}
	if _, err := Marshal(3); err == nil {
		t.Error("an int: no error")
	}
	if err := Unmarshal([]byte(`{}`), wire{}); err == nil {
		t.Error("decoding into a value: no error")
	}
	if b, err := Marshal((*wire)(nil)); err != nil || string(b) != "null" {
		t.Errorf("nil: %s, %v", b, err)
	}
}
