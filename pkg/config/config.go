// Package config reads drainctl's configuration file (YAML) over the
// agent's settings: settings.Defaults, then the file's keys, then (in the
// CLI) the flags that were given. The file's keys are the settings'
// (settings.All): each is read by its setting's own parser, under its key
// or one of its old keys. The file only parses; settings.Settings'
// Validate judges the result, and a Source turns its errors back into the
// file's lines. Every error names the file and line, and a file that
// fails to load changes nothing.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/drainctl/drainctl/pkg/internal/fileowner"
	"github.com/drainctl/drainctl/pkg/settings"
)

// DefaultPath is where drainctl looks for its configuration when no
// --config is given. A missing default file is not an error.
const DefaultPath = "/etc/drainctl/drainctl.yaml"

// Source is a configuration file that was laid over settings: its path
// and its keys, for the errors found once the flags are laid over it too.
type Source struct {
	// Path is the file's path; empty for a document given to Parse.
	Path string
	// values are the settings' values in the file by the settings' keys,
	// whichever key (new or old) the file gave them under.
	values map[string]*yaml.Node
}

// Load lays the file at path over s.
func Load(path string, s *settings.Settings) (*Source, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	src, err := Parse(b, s)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	src.Path = path
	return src, nil
}

// CheckFile refuses a config file that another user than root (or the
// agent's own user) owns, or that its group or others may write: the
// file defines the commands the agent runs as root, so whoever can
// change it can run anything as root. The agent and config check call
// it on the file they load; no file (path "", or /dev/null) is not
// checked.
func CheckFile(path string) error {
	if path == "" || path == os.DevNull { // no file, or the empty one
		return nil
	}
	fi, err := fileowner.Stat("config", path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if m := fi.Mode().Perm(); m&0o022 != 0 {
		return fmt.Errorf("config %s: mode %04o lets its group or others change it, and it defines the commands the agent runs as root: chmod go-w %s", path, m, path)
	}
	return nil
}

// LoadDefault lays DefaultPath over s if it exists; when it does not, s
// is unchanged and the Source has no keys.
func LoadDefault(s *settings.Settings) (*Source, error) {
	src, err := Load(DefaultPath, s)
	if errors.Is(err, os.ErrNotExist) {
		return &Source{}, nil
	}
	return src, err
}

// Parse lays a configuration document over s: each key the document has
// replaces that setting, the others keep theirs. An error names the line
// (yaml.v3's errors and ours say "line N: ...") and leaves s as it was.
func Parse(b []byte, s *settings.Settings) (*Source, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	src := &Source{values: map[string]*yaml.Node{}}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return src, nil
	}
	leaves := map[string]*yaml.Node{}
	if err := walk(doc.Content[0], "", leaves); err != nil {
		return nil, err
	}
	next := *s
	for _, st := range settings.All() {
		n, err := find(st, leaves)
		if err != nil {
			return nil, err
		}
		if n == nil {
			continue
		}
		src.values[st.Key] = n
		if err := decode(st, n, &next); err != nil {
			return nil, err
		}
	}
	*s = next
	return src, nil
}

// known says what a dotted path of the file is: a setting's key (new or
// old), or a section holding some.
func known(path string) (leaf, section bool) {
	if settings.Lookup(path) != nil {
		return true, false
	}
	for _, st := range settings.All() {
		for _, k := range append([]string{st.Key}, st.OldKeys...) {
			if strings.HasPrefix(k, path+".") {
				return false, true
			}
		}
	}
	return false, false
}

// walk collects the values of the mapping n (at path) by their dotted
// keys, refusing a key no setting has, as a misspelt key is an error,
// not silently ignored.
func walk(n *yaml.Node, path string, leaves map[string]*yaml.Node) error {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %swant a mapping of settings, e.g. backend: auto", n.Line, strings.TrimPrefix(path+": ", ": "))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if line, dup := seen[k.Value]; dup {
			return fmt.Errorf("line %d: mapping key %q already defined at line %d", k.Line, k.Value, line)
		}
		seen[k.Value] = k.Line
		p := strings.TrimPrefix(path+"."+k.Value, ".")
		switch leaf, section := known(p); {
		case leaf:
			leaves[p] = v
		case section && isNull(v):
		case section:
			if err := walk(v, p, leaves); err != nil {
				return err
			}
		default:
			return fmt.Errorf("line %d: field %s not found", k.Line, k.Value)
		}
	}
	return nil
}

// find is the value the file gives st, under its key or an old one; two
// of them are an error (which would win?).
func find(st *settings.Setting, leaves map[string]*yaml.Node) (*yaml.Node, error) {
	var found *yaml.Node
	var under string
	for _, k := range append([]string{st.Key}, st.OldKeys...) {
		n, ok := leaves[k]
		if !ok {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("line %d: %s is %s, given on line %d: give it once", n.Line, k, under, found.Line)
		}
		found, under = n, k
	}
	return found, nil
}

// resolve is the node an alias (*name) stands for: YAML's anchors and
// aliases are the file's to use, as a struct decoder would follow them.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// isNull: a key without a value, which leaves the default.
func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// decode lays the file's value n of st over s. An empty value ("", [],
// null, a zero duration) leaves the default, as it always has in this
// file: the file cannot set a duration to 0 (a flag can).
func decode(st *settings.Setting, n *yaml.Node, s *settings.Settings) error {
	if isNull(n) { // n is walk's: an alias already resolved
		return nil
	}
	if n.Kind == yaml.SequenceNode && st.AcceptsList() {
		items := make([]string, len(n.Content))
		for i, c := range n.Content {
			if c = resolve(c); c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: %s: each entry is %s", c.Line, lastKey(st.Key), placeholder(st.Doc))
			}
			items[i] = c.Value
		}
		if len(items) == 0 {
			return nil
		}
		err := st.SetList(s, items)
		var ie *settings.ItemError
		if errors.As(err, &ie) {
			return fmt.Errorf("line %d: %w", n.Content[ie.Index].Line, err)
		}
		return lined(n, err)
	}
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: %s: want %s", n.Line, lastKey(st.Key), placeholder(st.Doc))
	}
	v := n.Value
	switch st.Kind() {
	case settings.Text, settings.List:
		if v == "" {
			return nil
		}
	case settings.Duration:
		if d, err := settings.ParseDuration(v); err == nil && d == 0 {
			return nil
		}
	case settings.Bool:
		// YAML's booleans, not only Go's (true, false).
		var b bool
		if err := n.Decode(&b); err != nil {
			return err
		}
		v = fmt.Sprint(b)
	}
	return lined(n, st.Set(s, v))
}

// lined names the line of n in an error of a setting's parser.
func lined(n *yaml.Node, err error) error {
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// lastKey is a key's last name, as the file writes it.
func lastKey(key string) string { return key[strings.LastIndex(key, ".")+1:] }

// placeholder is what a setting's doc calls its value (`FROM:TO`), else
// "a value".
func placeholder(doc string) string {
	if _, rest, ok := strings.Cut(doc, "`"); ok {
		if p, _, ok := strings.Cut(rest, "`"); ok {
			return p
		}
	}
	return "a value"
}

// Line is the line of a setting's value in the file (by its Key, whichever
// key the file gave it under), 0 if it has none.
func (src *Source) Line(key string) int {
	if n := src.values[key]; n != nil {
		return n.Line
	}
	return 0
}

// Sets says whether the file gives a setting a value. An empty one
// (null, "", []) leaves the default, as for every key of the file.
func (src *Source) Sets(key string) bool {
	n := src.values[key]
	if n == nil || isNull(n) {
		return false
	}
	if n.Kind == yaml.ScalarNode {
		return n.Value != ""
	}
	return len(n.Content) > 0
}

// Locate adds the file and line to an error of settings.Settings'
// Validate about a setting the file gave; any other error is returned as
// it is. The caller leaves out the settings a flag gave after the file.
func (src *Source) Locate(err error) error {
	var se *settings.SettingError
	if !errors.As(err, &se) || !src.Sets(se.Key) {
		return err
	}
	if src.Path == "" {
		return fmt.Errorf("line %d: %w", src.Line(se.Key), err)
	}
	return fmt.Errorf("config %s: line %d: %w", src.Path, src.Line(se.Key), err)
}
