// Package config reads drainctl's configuration file (YAML). Every error
// names the file and line, and a file that fails to load changes nothing.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/drainctl/drainctl/pkg/forward"
)

// DefaultPath is where drainctl looks for its configuration when no
// --config is given. A missing default file is not an error.
const DefaultPath = "/etc/drainctl/drainctl.yaml"

// File is the configuration file. Example:
//
//	backend: auto          # auto, nftables, iptables, iptables-nft, iptables-legacy
//	forwards:
//	  - 81:80              # FROM:TO, forward port : service port
//	  - 444:443
type File struct {
	Backend  string            `yaml:"backend"`
	Forwards []forward.Forward `yaml:"-"`
}

// raw mirrors File with the YAML nodes kept, for line numbers.
type raw struct {
	Backend  yaml.Node   `yaml:"backend"`
	Forwards []yaml.Node `yaml:"forwards"`
}

// Load reads and validates the file at path.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return f, nil
}

// LoadDefault reads DefaultPath if it exists; it returns an empty File
// when it does not.
func LoadDefault() (*File, error) {
	f, err := Load(DefaultPath)
	if errors.Is(err, os.ErrNotExist) {
		return &File{}, nil
	}
	return f, err
}

// Parse reads and validates a configuration document.
func Parse(b []byte) (*File, error) {
	var r raw
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // a misspelt key is an error, not silently ignored
	if err := dec.Decode(&r); err != nil && !errors.Is(err, io.EOF) {
		return nil, err // yaml.v3's errors already say "line N: ..."
	}
	f := &File{}
	if !r.Backend.IsZero() {
		f.Backend = r.Backend.Value
		if _, err := forward.Choose(f.Backend, forward.HostRules{}); err != nil {
			return nil, fmt.Errorf("line %d: %w", r.Backend.Line, err)
		}
	}
	for _, n := range r.Forwards {
		if n.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: forwards: each entry is FROM:TO, e.g. 81:80", n.Line)
		}
		fw, err := forward.Parse(n.Value)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		f.Forwards = append(f.Forwards, fw)
	}
	if len(f.Forwards) > 0 {
		if err := forward.CheckSet(f.Forwards); err != nil {
			return nil, fmt.Errorf("line %d: %w", r.Forwards[0].Line, err)
		}
	}
	return f, nil
}
