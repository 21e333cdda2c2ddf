package settings

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/jsonms"
)

// Kind is the shape of a setting's value. It decides which flag takes it
// and how the file and the JSON write it; every text a setting reads,
// from a flag or the file, goes through the setting's one parser.
type Kind int

// The kinds of settings.
const (
	// Text is a string: a string flag, a scalar in the file.
	Text Kind = iota
	// Duration is "2s", "500ms": a duration flag, a scalar in the file;
	// in JSON whole milliseconds under the name's _ms (the wire's rule).
	Duration
	// Count is an integer.
	Count
	// Bool is true or false.
	Bool
	// List is several values: a repeatable flag that also takes them
	// comma-separated; in the file a sequence, or one comma-separated
	// string.
	List
)

// value is where a setting lives in Settings and how its text reads and
// writes. Every method goes through the setting's parser or formatter.
type value interface {
	kind() Kind
	// set parses text (a flag's, a scalar of the file) into s.
	set(s *Settings, text string) error
	// setList parses several texts; an error about one is an
	// *ItemError. A Text value that takes a list (ready.status) joins
	// them with commas.
	setList(s *Settings, items []string) error
	// acceptsList says whether the file may give a sequence.
	acceptsList() bool
	// text is the value as a flag takes it: a default shown, an example.
	text(s Settings) string
	// json is the value as `agent --check` prints it; setJSON reads it.
	json(s Settings) any
	setJSON(s *Settings, raw json.RawMessage) error
}

// ItemError is a setting's list entry that does not parse: Index says
// which, for the file to name its line.
type ItemError struct {
	Index int
	Err   error
}

func (e *ItemError) Error() string { return e.Err.Error() }
func (e *ItemError) Unwrap() error { return e.Err }

// scalar is a value of one T, read by parse and written by format.
type scalar[T any] struct {
	k      Kind
	get    func(*Settings) *T
	parse  func(string) (T, error)
	format func(T) string
	// joins: the file may give a list, read as its entries joined with
	// commas (ready.status: [200, 301]).
	joins bool
}

func (v scalar[T]) kind() Kind { return v.k }

func (v scalar[T]) set(s *Settings, text string) error {
	x, err := v.parse(text)
	if err != nil {
		return err
	}
	*v.get(s) = x
	return nil
}

func (v scalar[T]) setList(s *Settings, items []string) error {
	if !v.joins {
		return errors.New("want one value, not a list")
	}
	return v.set(s, strings.Join(items, ","))
}

func (v scalar[T]) acceptsList() bool      { return v.joins }
func (v scalar[T]) text(s Settings) string { return v.format(*v.get(&s)) }
func (v scalar[T]) json(s Settings) any    { return *v.get(&s) }
func (v scalar[T]) setJSON(s *Settings, raw json.RawMessage) error {
	return json.Unmarshal(raw, v.get(s))
}

// durationValue is a scalar duration, in milliseconds in JSON.
type durationValue struct{ scalar[time.Duration] }

func (v durationValue) json(s Settings) any { return jsonms.Duration(*v.get(&s)) }

func (v durationValue) setJSON(s *Settings, raw json.RawMessage) error {
	var d jsonms.Duration
	if err := json.Unmarshal(raw, &d); err != nil {
		return err
	}
	*v.get(s) = time.Duration(d)
	return nil
}

// list is a value of several T, each read by parse.
type list[T any] struct {
	get    func(*Settings) *[]T
	parse  func(string) (T, error)
	format func(T) string
	// skipEmpty drops blank entries: `--pool-etcd ""` (or a stray comma)
	// means no endpoint there, as the comma-separated flag always read it.
	skipEmpty bool
}

func (v list[T]) kind() Kind                         { return List }
func (v list[T]) acceptsList() bool                  { return true }
func (v list[T]) set(s *Settings, text string) error { return v.setList(s, SplitList(text)) }

func (v list[T]) setList(s *Settings, items []string) error {
	out := make([]T, 0, len(items))
	for i, it := range items {
		if v.skipEmpty && strings.TrimSpace(it) == "" {
			continue
		}
		x, err := v.parse(strings.TrimSpace(it))
		if err != nil {
			return &ItemError{i, err}
		}
		out = append(out, x)
	}
	*v.get(s) = out
	return nil
}

func (v list[T]) text(s Settings) string {
	var parts []string
	for _, x := range *v.get(&s) {
		parts = append(parts, v.format(x))
	}
	return strings.Join(parts, ",")
}

// json prints an empty list as [], never null.
func (v list[T]) json(s Settings) any {
	if l := *v.get(&s); l != nil {
		return l
	}
	return []T{}
}

func (v list[T]) setJSON(s *Settings, raw json.RawMessage) error {
	return json.Unmarshal(raw, v.get(s))
}

// The values of the table, one constructor per shape.

func text(get func(*Settings) *string) value {
	return scalar[string]{k: Text, get: get, parse: func(t string) (string, error) { return t, nil }, format: func(t string) string { return t }}
}

func duration(get func(*Settings) *time.Duration) value {
	return durationValue{scalar[time.Duration]{k: Duration, get: get, parse: ParseDuration, format: time.Duration.String}}
}

func boolean(get func(*Settings) *bool) value {
	return scalar[bool]{k: Bool, get: get, parse: strconv.ParseBool, format: strconv.FormatBool}
}

// count is HAProxy's fall or rise; Validate checks the range.
func count(get func(*Settings) *int) value {
	return scalar[int]{k: Count, get: get, format: strconv.Itoa, parse: func(t string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(t))
		if err != nil {
			return 0, fmt.Errorf("%q: want a count from 1 to 100 (HAProxy's fall or rise)", t)
		}
		return n, nil
	}}
}

// textOf is a Text value of a type of its own (a pool.Limit, a
// drain.OnDeadline), read by parse and written by format.
func textOf[T any](get func(*Settings) *T, parse func(string) (T, error), format func(T) string) value {
	return scalar[T]{k: Text, get: get, parse: parse, format: format}
}

func listOf[T any](get func(*Settings) *[]T, parse func(string) (T, error), format func(T) string) value {
	return list[T]{get: get, parse: parse, format: format}
}

// endpointsOf is a list of text whose blank entries mean none.
func endpointsOf(get func(*Settings) *[]string) value {
	id := func(t string) string { return t }
	return list[string]{get: get, parse: func(t string) (string, error) { return t, nil }, format: id, skipEmpty: true}
}

// ParseDuration reads a duration setting: "2s", "500ms", "1m", not
// negative.
func ParseDuration(t string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(t))
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (e.g. 2s, 500ms, 1m)", t)
	}
	return d, nil
}

// SplitList reads "a,b , c" as [a b c]: a list given as one string, in
// the file or by a flag.
func SplitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// ParseOnDeadline reads what to do at the drain deadline. Every
// on-deadline drainctl reads goes through it: the file's, and the
// --drain-on-deadline of the agent, the --on-deadline of the operations
// and of wait-drained. Its error names the value only; callers say whose
// it is.
func ParseOnDeadline(s string) (drain.OnDeadline, error) {
	o, err := drain.ParseOnDeadline(s)
	if err != nil {
		// drain's text names the setting as the API does; the callers
		// name it as their user wrote it (on_deadline, --on-deadline).
		return "", errors.New(strings.TrimPrefix(err.Error(), "on-deadline "))
	}
	return o, nil
}

// ParsePrefix reads "203.0.113.0/24" or a single address.
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q: want an address or CIDR, e.g. 203.0.113.0/24", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
