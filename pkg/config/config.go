// Package config reads drainctl's configuration file (YAML) over the
// agent's settings: agent.Defaults, then the file's keys, then (in the
// CLI) the flags that were given. The file only parses; agent.Settings'
// Validate judges the result, and a Source turns its errors back into
// the file's lines. Every error names the file and line, and a file that
// fails to load changes nothing.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/drainctl/drainctl/pkg/agent"
)

// DefaultPath is where drainctl looks for its configuration when no
// --config is given. A missing default file is not an error.
const DefaultPath = "/etc/drainctl/drainctl.yaml"

// Source is a configuration file that was laid over settings: its path
// and its keys, for the errors found once the flags are laid over it too.
type Source struct {
	// Path is the file's path; empty for a document given to Parse.
	Path string
	root *yaml.Node // the top mapping; nil for an empty document
}

// Load lays the file at path over s.
func Load(path string, s *agent.Settings) (*Source, error) {
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

// LoadDefault lays DefaultPath over s if it exists; when it does not, s
// is unchanged and the Source has no keys.
func LoadDefault(s *agent.Settings) (*Source, error) {
	src, err := Load(DefaultPath, s)
	if errors.Is(err, os.ErrNotExist) {
		return &Source{}, nil
	}
	return src, err
}

// Parse lays a configuration document over s: each key the document has
// replaces that setting, the others keep theirs. An error names the line
// and leaves s as it was.
func Parse(b []byte, s *agent.Settings) (*Source, error) {
	next := *s
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // a misspelt key is an error, not silently ignored
	if err := dec.Decode(viewOf(&next)); err != nil && !errors.Is(err, io.EOF) {
		return nil, err // yaml.v3's errors (and ours) say "line N: ..."
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	src := &Source{}
	if len(doc.Content) > 0 && doc.Content[0].Kind == yaml.MappingNode {
		src.root = doc.Content[0]
	}
	*s = next
	return src, nil
}

// node is the value of a key ("drain.deadline"), or nil.
func (src *Source) node(key string) *yaml.Node {
	n := src.root
	for _, k := range strings.Split(key, ".") {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return n
}

// Line is the line of a key's value in the file, 0 if it has none.
func (src *Source) Line(key string) int {
	if n := src.node(key); n != nil {
		return n.Line
	}
	return 0
}

// Sets says whether the file gives a key a value. An empty one (null,
// "", []) leaves the default, as for every key of the file.
func (src *Source) Sets(key string) bool {
	n := src.node(key)
	if n == nil || n.ShortTag() == "!!null" {
		return false
	}
	if n.Kind == yaml.ScalarNode {
		return n.Value != ""
	}
	return len(n.Content) > 0
}

// Locate adds the file and line to an error of agent.Settings' Validate
// about a setting the file gave; any other error is returned as it is.
// The caller leaves out the settings a flag gave after the file.
func (src *Source) Locate(err error) error {
	var se *agent.SettingError
	if !errors.As(err, &se) || !src.Sets(se.Key) {
		return err
	}
	if src.Path == "" {
		return fmt.Errorf("line %d: %w", src.Line(se.Key), err)
	}
	return fmt.Errorf("config %s: line %d: %w", src.Path, src.Line(se.Key), err)
}
