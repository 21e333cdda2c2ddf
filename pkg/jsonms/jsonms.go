// Package jsonms puts durations in JSON as whole milliseconds. Go's
// time.Duration encodes as nanoseconds, which no script reading drainctl's
// JSON should have to know; the API's rule is that every duration is an
// integer number of milliseconds in a field whose name ends in _ms.
//
// The one way to follow the rule: a wire type keeps its time.Duration
// fields, tags each with its _ms name, and gives itself two one-line
// methods,
//
//	func (p Policy) MarshalJSON() ([]byte, error)   { return jsonms.Marshal(p) }
//	func (p *Policy) UnmarshalJSON(b []byte) error { return jsonms.Unmarshal(b, p) }
//
// Marshal and Unmarshal encode the struct as encoding/json would (same
// field order, tags, omitempty), except that every time.Duration field is
// a Duration: whole milliseconds, truncated. Go code keeps plain
// time.Durations and never converts; a duration field added later is in
// milliseconds without anyone listing it. A test of the API's types
// (pkg/api/wire_test.go) fails on any duration that escapes the rule.
package jsonms

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"time"
)

// Duration is a time.Duration that encodes as milliseconds. Marshal and
// Unmarshal put it in place of a struct's time.Duration fields; wire types
// need not name it.
type Duration time.Duration

// MarshalJSON writes whole milliseconds, truncated.
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, time.Duration(d).Milliseconds(), 10), nil
}

// UnmarshalJSON reads an integer number of milliseconds. null leaves d as
// it was.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	ms, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("duration %s: want whole milliseconds, e.g. 1500", b)
	}
	const limit = int64(1<<63-1) / int64(time.Millisecond)
	if ms > limit || ms < -limit {
		return fmt.Errorf("duration %s ms: out of range", b)
	}
	*d = Duration(time.Duration(ms) * time.Millisecond)
	return nil
}

// Marshal encodes v, a struct (or a pointer to one), as json.Marshal
// would, with its time.Duration fields as whole milliseconds. It is what a
// wire type's MarshalJSON returns.
func Marshal(v any) ([]byte, error) {
	sv := reflect.ValueOf(v)
	if sv.Kind() == reflect.Pointer {
		if sv.IsNil() {
			return []byte("null"), nil
		}
		sv = sv.Elem()
	}
	m, err := mirrorOf(sv.Type())
	if err != nil {
		return nil, err
	}
	mv := reflect.New(m.typ).Elem()
	m.fill(mv, sv)
	return json.Marshal(mv.Interface())
}

// Unmarshal decodes b into v, a pointer to a struct, as json.Unmarshal
// would, reading its time.Duration fields as whole milliseconds. Fields
// that b does not name keep their values. It is what a wire type's
// UnmarshalJSON returns.
func Unmarshal(b []byte, v any) error { return unmarshal(b, v, false) }

// UnmarshalStrict is Unmarshal refusing fields v does not have. A type
// whose UnmarshalJSON calls it refuses them however it is decoded: a
// decoder's DisallowUnknownFields does not reach into an UnmarshalJSON
// method.
func UnmarshalStrict(b []byte, v any) error { return unmarshal(b, v, true) }

func unmarshal(b []byte, v any, strict bool) error {
	pv := reflect.ValueOf(v)
	if pv.Kind() != reflect.Pointer || pv.IsNil() {
		return fmt.Errorf("jsonms: decoding needs a pointer to a struct, not %T", v)
	}
	sv := pv.Elem()
	m, err := mirrorOf(sv.Type())
	if err != nil {
		return err
	}
	mp := reflect.New(m.typ)
	m.fill(mp.Elem(), sv) // what b does not name stays as it was
	if strict {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		err = dec.Decode(mp.Interface())
	} else {
		err = json.Unmarshal(b, mp.Interface())
	}
	// Back even on an error, as json.Unmarshal leaves what it decoded.
	m.unfill(sv, mp.Elem())
	return err
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	durationPtrType = reflect.TypeFor[*time.Duration]()
	msType          = reflect.TypeFor[Duration]()
	msPtrType       = reflect.TypeFor[*Duration]()
)

// mirror is a struct type like another, without its methods (so encoding
// it does not call them again) and with Durations in place of its
// time.Durations; src maps each of its fields to the original's.
type mirror struct {
	typ reflect.Type
	src []int
}

var mirrors sync.Map // reflect.Type → *mirror

func mirrorOf(t reflect.Type) (*mirror, error) {
	if m, ok := mirrors.Load(t); ok {
		return m.(*mirror), nil
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("jsonms: %v is not a struct", t)
	}
	m := &mirror{}
	var fields []reflect.StructField
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			// Promoted fields would need encoding/json's rules of
			// precedence; no wire type embeds one.
			return nil, fmt.Errorf("jsonms: %v embeds %v: not supported", t, f.Type)
		}
		if !f.IsExported() || f.Tag.Get("json") == "-" {
			continue // encoding/json skips them too
		}
		switch f.Type {
		case durationType:
			f.Type = msType
		case durationPtrType:
			f.Type = msPtrType
		}
		fields = append(fields, reflect.StructField{Name: f.Name, Type: f.Type, Tag: f.Tag})
		m.src = append(m.src, i)
	}
	m.typ = reflect.StructOf(fields)
	mirrors.Store(t, m)
	return m, nil
}

// fill copies the original's fields sv into the mirror's mv.
func (m *mirror) fill(mv, sv reflect.Value) {
	for j, i := range m.src {
		mv.Field(j).Set(sv.Field(i).Convert(mv.Field(j).Type()))
	}
}

// unfill copies the mirror's fields mv back into the original's sv.
func (m *mirror) unfill(sv, mv reflect.Value) {
	for j, i := range m.src {
		sv.Field(i).Set(mv.Field(j).Convert(sv.Field(i).Type()))
	}
}
