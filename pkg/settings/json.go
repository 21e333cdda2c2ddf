package settings

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// MarshalJSON writes the settings as `agent --check` prints them: every
// setting of the table under its JSON path, in the table's order (the
// file's), then what is no setting: the binary's build and, when Resolve
// chose the restart command, why.
func (s Settings) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	section := "" // the object open inside the top one
	field := func(name string, v any) error {
		if c := b.Bytes()[b.Len()-1]; c != '{' {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		x, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("settings: %s: %w", name, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(x)
		return nil
	}
	for _, st := range All() {
		sec, name, nested := strings.Cut(st.JSON(), ".")
		if !nested {
			sec, name = "", sec
		}
		if sec != section {
			if section != "" {
				b.WriteByte('}')
			}
			if sec != "" {
				if err := field(sec, struct{}{}); err != nil {
					return nil, err
				}
				b.Truncate(b.Len() - 1) // {} opened, left open
			}
			section = sec
		}
		if err := field(name, st.jsonOf(s)); err != nil {
			return nil, err
		}
	}
	if section != "" {
		b.WriteByte('}')
	}
	if err := field("build", s.Build); err != nil {
		return nil, err
	}
	if s.RestartReason != "" {
		if err := field("restart_reason", s.RestartReason); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads what MarshalJSON wrote, and what `agent --check`
// printed before the settings had one name (OldJSON): a setting absent
// from the document keeps its value.
func (s *Settings) UnmarshalJSON(b []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return err
	}
	next := *s
	for _, st := range All() {
		for _, path := range append([]string{st.JSON()}, st.OldJSON...) {
			raw, ok := lookupJSON(top, path)
			if !ok {
				continue
			}
			if err := st.setJSON(&next, raw); err != nil {
				return fmt.Errorf("settings: %s: %w", path, err)
			}
			break
		}
	}
	if raw, ok := top["build"]; ok {
		if err := json.Unmarshal(raw, &next.Build); err != nil {
			return fmt.Errorf("settings: build: %w", err)
		}
	}
	if raw, ok := top["restart_reason"]; ok {
		if err := json.Unmarshal(raw, &next.RestartReason); err != nil {
			return fmt.Errorf("settings: restart_reason: %w", err)
		}
	}
	*s = next
	return nil
}

// lookupJSON finds a dotted path in a JSON object; null is no value.
func lookupJSON(obj map[string]json.RawMessage, path string) (json.RawMessage, bool) {
	head, rest, nested := strings.Cut(path, ".")
	raw, ok := obj[head]
	if !ok || string(raw) == "null" {
		return nil, false
	}
	if !nested {
		return raw, true
	}
	var inner map[string]json.RawMessage
	if json.Unmarshal(raw, &inner) != nil {
		return nil, false
	}
	return lookupJSON(inner, rest)
}
