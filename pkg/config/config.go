// Package config reads drainctl's configuration file (YAML). Every error
// names the file and line, and a file that fails to load changes nothing.
// Every setting is also a flag of `drainctl agent`, which overrides the
// file.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/ready"
)

// DefaultPath is where drainctl looks for its configuration when no
// --config is given. A missing default file is not an error.
const DefaultPath = "/etc/drainctl/drainctl.yaml"

// File is the configuration file; see testdata/config/full.yaml for every
// key. Zero values mean "not set": the default or a flag decides.
type File struct {
	Backend     string            `yaml:"backend"`
	Forwards    []forward.Forward `yaml:"-"`
	Socket      string            `yaml:"socket"`
	SocketGroup string            `yaml:"socket_group"`
	StateDir    string            `yaml:"state_dir"`
	Reconcile   Duration          `yaml:"reconcile_interval"`
	// MetricsListen is a TCP address for /metrics (the socket serves it
	// always).
	MetricsListen string `yaml:"metrics_listen"`
	// AgentCheckListen is a TCP address answering HAProxy's agent-check.
	AgentCheckListen string       `yaml:"agent_check_listen"`
	HealthChecks     HealthChecks `yaml:"health_checks"`
	Drain            Drain        `yaml:"drain"`
	Restart          Restart      `yaml:"restart"`
	Ready            Ready        `yaml:"ready"`
}

// HealthChecks is the load balancers' view section.
type HealthChecks struct {
	// Watch: see the health checks of the forward ports (default true).
	Watch *bool `yaml:"watch"`
	// Fall and Rise are HAProxy's check settings (0: default).
	Fall Count `yaml:"fall"`
	Rise Count `yaml:"rise"`
}

// Count is a check count, 1 to 100.
type Count int

func (c *Count) UnmarshalYAML(n *yaml.Node) error {
	var v int
	if err := n.Decode(&v); err != nil || v < 1 || v > 100 {
		return fmt.Errorf("line %d: %q: want a count from 1 to 100 (HAProxy's fall or rise)", n.Line, n.Value)
	}
	*c = Count(v)
	return nil
}

// Drain is the drain policy section.
type Drain struct {
	Poll       Duration   `yaml:"poll"`
	MinWait    Duration   `yaml:"min_wait"`
	Quiet      Duration   `yaml:"quiet"`
	IdleAfter  Duration   `yaml:"idle_after"`
	Deadline   Duration   `yaml:"deadline"`
	Grace      Duration   `yaml:"grace"`
	OnDeadline OnDeadline `yaml:"on_deadline"`
	Ignore     []Prefix   `yaml:"ignore"`
}

// Restart is the web server section.
type Restart struct {
	ConfigTestCmd     string   `yaml:"configtest_cmd"`
	ConfigTestTimeout Duration `yaml:"configtest_timeout"`
	RestartCmd        string   `yaml:"restart_cmd"`
	RestartTimeout    Duration `yaml:"restart_timeout"`
}

// Ready is the readiness check section.
type Ready struct {
	URL URL `yaml:"url"`
	// Status: the accepted statuses, a code, a list or ranges ("200-399").
	Status Statuses `yaml:"status"`
	// Host is the Host header to send (the site's name), if not the URL's.
	Host    string   `yaml:"host"`
	Timeout Duration `yaml:"timeout"`
}

// Statuses is a list of HTTP codes and ranges: 200, "200-399", or a YAML
// list [200, 301, "500-599"].
type Statuses string

func (s *Statuses) UnmarshalYAML(n *yaml.Node) error {
	v := n.Value
	if n.Kind == yaml.SequenceNode {
		var parts []string
		for _, c := range n.Content {
			parts = append(parts, c.Value)
		}
		v = strings.Join(parts, ",")
	}
	if _, err := ready.ParseStatuses(v); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = Statuses(v)
	return nil
}

// Duration is a YAML duration ("2s", "500ms").
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 2s, 500ms, 1m)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// OnDeadline is "proceed" or "abort".
type OnDeadline string

func (o *OnDeadline) UnmarshalYAML(n *yaml.Node) error {
	if n.Value != string(drain.Proceed) && n.Value != string(drain.Abort) {
		return fmt.Errorf("line %d: on_deadline %q: want proceed or abort", n.Line, n.Value)
	}
	*o = OnDeadline(n.Value)
	return nil
}

// Prefix is an address or CIDR.
type Prefix netip.Prefix

func (p *Prefix) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParsePrefix(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*p = Prefix(v)
	return nil
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

// URL is an http:// URL.
type URL string

func (u *URL) UnmarshalYAML(n *yaml.Node) error {
	if err := CheckURL(n.Value); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*u = URL(n.Value)
	return nil
}

// CheckURL accepts http:// and https:// URLs with a host.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("ready url %q: want http://HOST[:PORT]/PATH", s)
	}
	return nil
}

// doc is File as decoded, with the forwards kept as nodes for their lines.
type doc struct {
	File     `yaml:",inline"`
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
	var d doc
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // a misspelt key is an error, not silently ignored
	if err := dec.Decode(&d); err != nil && !errors.Is(err, io.EOF) {
		return nil, err // yaml.v3's errors (and ours) say "line N: ..."
	}
	f := d.File
	if f.Backend != "" {
		if _, err := forward.Choose(f.Backend, forward.HostRules{}); err != nil {
			return nil, fmt.Errorf("line %d: %w", lineOf(b, "backend"), err)
		}
	}
	for _, n := range d.Forwards {
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
			return nil, fmt.Errorf("line %d: %w", d.Forwards[0].Line, err)
		}
	}
	return &f, nil
}

// lineOf finds the line of a top-level key, for errors found after decoding.
func lineOf(b []byte, key string) int {
	var root yaml.Node
	if yaml.Unmarshal(b, &root) != nil || len(root.Content) == 0 {
		return 0
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i].Line
		}
	}
	return 0
}
