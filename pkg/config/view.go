package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/drainctl/drainctl/pkg/agent"
	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/ready"
)

// view is the file's shape (testdata/config/full.yaml has every key),
// each key pointing at the setting it sets: decoding a document into it
// writes the keys the document has and nothing else. The yaml tags are
// the agent.Key* names.
type view struct {
	Backend          text     `yaml:"backend"`
	Forwards         forwards `yaml:"forwards"`
	Socket           text     `yaml:"socket"`
	SocketGroup      text     `yaml:"socket_group"`
	StateDir         text     `yaml:"state_dir"`
	Reconcile        duration `yaml:"reconcile_interval"`
	MetricsListen    text     `yaml:"metrics_listen"`
	AgentCheckListen text     `yaml:"agent_check_listen"`
	WebServer        text     `yaml:"web_server"`
	HealthChecks     struct {
		Watch boolean `yaml:"watch"`
		Fall  count   `yaml:"fall"`
		Rise  count   `yaml:"rise"`
	} `yaml:"health_checks"`
	Drain struct {
		Poll       duration   `yaml:"poll"`
		MinWait    duration   `yaml:"min_wait"`
		Quiet      duration   `yaml:"quiet"`
		IdleAfter  duration   `yaml:"idle_after"`
		Deadline   duration   `yaml:"deadline"`
		Grace      duration   `yaml:"grace"`
		OnDeadline onDeadline `yaml:"on_deadline"`
		Ignore     prefixes   `yaml:"ignore"`
	} `yaml:"drain"`
	Restart struct {
		ConfigTestCmd     text     `yaml:"configtest_cmd"`
		ConfigTestTimeout duration `yaml:"configtest_timeout"`
		RestartCmd        text     `yaml:"restart_cmd"`
		RestartTimeout    duration `yaml:"restart_timeout"`
	} `yaml:"restart"`
	Ready struct {
		URL     text     `yaml:"url"`
		Status  statuses `yaml:"status"`
		Host    text     `yaml:"host"`
		Timeout duration `yaml:"timeout"`
	} `yaml:"ready"`
	Reboot struct {
		Cmd          text     `yaml:"cmd"`
		Timeout      duration `yaml:"timeout"`
		ReadyTimeout duration `yaml:"ready_timeout"`
	} `yaml:"reboot"`
	Pool struct {
		Etcd           list     `yaml:"etcd"`
		Name           text     `yaml:"name"`
		ID             text     `yaml:"id"`
		MaxUnavailable limit    `yaml:"max_unavailable"`
		Wait           duration `yaml:"wait"`
		CAFile         text     `yaml:"ca_file"`
		CertFile       text     `yaml:"cert_file"`
		KeyFile        text     `yaml:"key_file"`
		Username       text     `yaml:"username"`
		PasswordFile   text     `yaml:"password_file"`
	} `yaml:"pool"`
}

func viewOf(s *agent.Settings) *view {
	v := &view{
		Backend: text{&s.Backend}, Forwards: forwards{&s.Forwards},
		Socket: text{&s.Socket}, SocketGroup: text{&s.SocketGroup}, StateDir: text{&s.StateDir},
		Reconcile:     duration{&s.Reconcile},
		MetricsListen: text{&s.MetricsListen}, AgentCheckListen: text{&s.AgentCheckListen},
		WebServer: text{&s.WebServer},
	}
	h := &v.HealthChecks
	h.Watch, h.Fall, h.Rise = boolean{&s.Checks.Watch}, count{&s.Checks.Fall}, count{&s.Checks.Rise}
	d, p := &v.Drain, &s.Policy
	d.Poll, d.MinWait, d.Quiet = duration{&p.Poll}, duration{&p.MinWait}, duration{&p.Quiet}
	d.IdleAfter, d.Deadline, d.Grace = duration{&p.IdleAfter}, duration{&p.Deadline}, duration{&p.Grace}
	d.OnDeadline, d.Ignore = onDeadline{&p.OnDeadline}, prefixes{&p.Ignore}
	r := &v.Restart
	r.ConfigTestCmd, r.ConfigTestTimeout = text{&s.ConfigTest.Line}, duration{&s.ConfigTest.Timeout}
	r.RestartCmd, r.RestartTimeout = text{&s.Restart.Line}, duration{&s.Restart.Timeout}
	y := &v.Ready
	y.URL, y.Status, y.Host, y.Timeout = text{&s.Ready.URL}, statuses{&s.Ready.Accept}, text{&s.Ready.Host}, duration{&s.Ready.Timeout}
	b := &v.Reboot
	b.Cmd, b.Timeout, b.ReadyTimeout = text{&s.Reboot.Command.Line}, duration{&s.Reboot.Timeout}, duration{&s.Reboot.ReadyTimeout}
	o, q := &v.Pool, &s.Pool
	o.Etcd, o.Name, o.ID, o.MaxUnavailable, o.Wait = list{&q.Etcd}, text{&q.Name}, text{&q.ID}, limit{&q.MaxUnavailable}, duration{&q.Wait}
	o.CAFile, o.CertFile, o.KeyFile = text{&q.CAFile}, text{&q.CertFile}, text{&q.KeyFile}
	o.Username, o.PasswordFile = text{&q.Username}, text{&q.PasswordFile}
	return v
}

// list is a list of strings: a YAML sequence, or one comma-separated
// string (as --pool-etcd takes it).
type list struct{ p *[]string }

func (l list) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l.p = SplitList(n.Value)
		return nil
	case yaml.SequenceNode:
		var out []string
		if err := n.Decode(&out); err != nil {
			return fmt.Errorf("line %d: want a list of strings", n.Line)
		}
		*l.p = out
		return nil
	}
	return fmt.Errorf("line %d: want a list, or one comma-separated string", n.Line)
}

// SplitList reads "a,b , c" as [a b c]: a list given as one string, in
// the file or by a flag (--pool-etcd).
func SplitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// limit is max_unavailable: a count or a percentage.
type limit struct{ p *pool.Limit }

func (l limit) UnmarshalYAML(n *yaml.Node) error {
	v, err := pool.ParseLimit(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*l.p = v
	return nil
}

// The decoders below parse one key each, naming the line of what they
// cannot read; whether a value can work is agent.Settings' Validate's
// business. An empty string or a zero duration leaves the default, as it
// always has in this file: the file cannot set a duration to 0 (a flag
// can).

// text is a string setting.
type text struct{ p *string }

func (t text) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a string", n.Line)
	}
	if n.Value != "" {
		*t.p = n.Value
	}
	return nil
}

// duration is a duration setting: "2s", "500ms".
type duration struct{ p *time.Duration }

func (d duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 2s, 500ms, 1m)", n.Line, n.Value)
	}
	if v != 0 {
		*d.p = v
	}
	return nil
}

// boolean is a true/false setting.
type boolean struct{ p *bool }

func (b boolean) UnmarshalYAML(n *yaml.Node) error { return n.Decode(b.p) }

// count is HAProxy's fall or rise.
type count struct{ p *int }

func (c count) UnmarshalYAML(n *yaml.Node) error {
	if err := n.Decode(c.p); err != nil {
		return fmt.Errorf("line %d: %q: want a count from 1 to 100 (HAProxy's fall or rise)", n.Line, n.Value)
	}
	return nil
}

// onDeadline is "proceed" or "abort".
type onDeadline struct{ p *drain.OnDeadline }

func (o onDeadline) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseOnDeadline(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: on_deadline %w", n.Line, err)
	}
	*o.p = v
	return nil
}

// ParseOnDeadline reads what to do at the drain deadline. Every
// on-deadline drainctl reads goes through it: the file's, and the
// --on-deadline of the agent, of the operations and of wait-drained. Its
// error names the value only; callers say whose it is.
func ParseOnDeadline(s string) (drain.OnDeadline, error) {
	o, err := drain.ParseOnDeadline(s)
	if err != nil {
		// drain's text names the setting as the API does; the callers
		// name it as their user wrote it (on_deadline, --on-deadline).
		return "", errors.New(strings.TrimPrefix(err.Error(), "on-deadline "))
	}
	return o, nil
}

// prefixes is a list of addresses or CIDRs.
type prefixes struct{ p *[]netip.Prefix }

func (ps prefixes) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: want a list of addresses or CIDRs, e.g. [203.0.113.7, 10.0.0.0/8]", n.Line)
	}
	var out []netip.Prefix
	for _, c := range n.Content {
		p, err := ParsePrefix(c.Value)
		if err != nil {
			return fmt.Errorf("line %d: %w", c.Line, err)
		}
		out = append(out, p)
	}
	*ps.p = out
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

// statuses is a list of HTTP codes and ranges: 200, "200-399", or a YAML
// list [200, 301, "500-599"].
type statuses struct{ p *ready.Statuses }

func (s statuses) UnmarshalYAML(n *yaml.Node) error {
	v := n.Value
	if n.Kind == yaml.SequenceNode {
		var parts []string
		for _, c := range n.Content {
			parts = append(parts, c.Value)
		}
		v = strings.Join(parts, ",")
	}
	st, err := ready.ParseStatuses(v)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s.p = st
	return nil
}

// forwards is the list of FROM:TO; an empty list leaves the default.
type forwards struct{ p *[]forward.Forward }

func (fs forwards) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: forwards: want a list of FROM:TO, e.g. [81:80]", n.Line)
	}
	var out []forward.Forward
	for _, c := range n.Content {
		if c.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: forwards: each entry is FROM:TO, e.g. 81:80", c.Line)
		}
		f, err := forward.Parse(c.Value)
		if err != nil {
			return fmt.Errorf("line %d: %w", c.Line, err)
		}
		out = append(out, f)
	}
	if len(out) > 0 {
		*fs.p = out
	}
	return nil
}
