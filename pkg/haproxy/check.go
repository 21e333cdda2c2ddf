package haproxy

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Finding is one thing in a haproxy.cfg that will lose requests or sessions
// during maintenance, and the line to change.
type Finding struct {
	Backend string `json:"backend"`
	Server  string `json:"server,omitempty"`
	Line    int    `json:"line"`
	Problem string `json:"problem"`
	Fix     string `json:"fix"`
}

type directive struct {
	line   int
	fields []string
}

type section struct {
	kind, name string
	line       int
	dirs       []directive
	defaults   *section // the defaults section in force
}

// proxy sections hold servers; the others are skipped.
var sectionKinds = map[string]bool{"global": true, "defaults": true, "frontend": true, "backend": true, "listen": true,
	"peers": true, "resolvers": true, "userlist": true, "program": true, "http-errors": true, "ring": true,
	"mailers": true, "cache": true, "crt-store": true, "log-forward": true, "fcgi-app": true}

func parse(r io.Reader) ([]*section, error) {
	var secs []*section
	var cur, defs *section
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if sectionKinds[f[0]] {
			cur = &section{kind: f[0], line: n, defaults: defs}
			if len(f) > 1 {
				cur.name = f[1]
			}
			if f[0] == "defaults" {
				defs = cur
			}
			secs = append(secs, cur)
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("line %d: %q outside any section", n, f[0])
		}
		cur.dirs = append(cur.dirs, directive{n, f})
	}
	return secs, sc.Err()
}

// find returns the first directive whose fields start with words, in the
// section or else in its defaults.
func (s *section) find(words ...string) (directive, bool) {
	for _, sec := range []*section{s, s.defaults} {
		if sec == nil {
			continue
		}
	next:
		for _, d := range sec.dirs {
			if len(d.fields) < len(words) {
				continue
			}
			for i, w := range words {
				if d.fields[i] != w {
					continue next
				}
			}
			return d, true
		}
	}
	return directive{}, false
}

type server struct {
	directive
	name, host string
	port       int
	cookie     string
	check      bool
	checkPort  int
	inter      time.Duration
	fall, rise int
	backup     bool
	agentCheck bool // agent-check: HAProxy asks an agent (drainctl's) for the state
	agentPort  int
}

func parseServer(d directive, def server) (server, bool) {
	if len(d.fields) < 3 || d.fields[0] != "server" {
		return server{}, false
	}
	s := server{directive: d, name: d.fields[1], inter: def.inter, fall: def.fall, rise: def.rise}
	host, port, err := net.SplitHostPort(d.fields[2])
	if err != nil {
		host = d.fields[2]
	}
	s.host = host
	s.port, _ = strconv.Atoi(port)
	args := d.fields[3:]
	for i := 0; i < len(args); i++ {
		val := ""
		if i+1 < len(args) {
			val = args[i+1]
		}
		switch args[i] {
		case "check":
			s.check = true
		case "backup":
			s.backup = true
		case "agent-check":
			s.agentCheck = true
		case "agent-port":
			s.agentPort, _ = strconv.Atoi(val)
			i++
		case "cookie":
			s.cookie, i = val, i+1
		case "port":
			s.checkPort, _ = strconv.Atoi(val)
			i++
		case "inter":
			if v, err := parseTime(val); err == nil {
				s.inter = v
			}
			i++
		case "fall":
			s.fall, _ = strconv.Atoi(val)
			i++
		case "rise":
			s.rise, _ = strconv.Atoi(val)
			i++
		}
	}
	return s, true
}

// parseTime reads HAProxy times: a number of milliseconds, or with a unit.
func parseTime(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Millisecond, nil
	}
	if strings.HasSuffix(s, "d") {
		n, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
		return time.Duration(n) * 24 * time.Hour, err
	}
	return time.ParseDuration(s)
}

// Expect is what the app servers' drainctl does: the forward port (81)
// and the web server's port (80), and the fall and rise its agent counts
// to confirm a withdraw and a restore (health_checks; 2 and 2).
type Expect struct {
	ForwardPort, ServicePort int
	Fall, Rise               int
}

// Check reads a haproxy.cfg and lists what will lose requests or sessions
// when drainctl withdraws a server, or make its confirmations wrong.
func Check(r io.Reader, e Expect) ([]Finding, error) {
	secs, err := parse(r)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, sec := range secs {
		if sec.kind != "backend" && sec.kind != "listen" {
			continue
		}
		servers := sec.servers()
		if len(servers) == 0 {
			continue
		}
		c := &checker{sec: sec, e: e, servers: servers}
		c.sectionSettings()
		for _, s := range servers {
			switch {
			case s.backup:
				// Judged with its primary (backupOf).
			case s.agentCheck:
				c.agentServer(s)
			default:
				c.forwardServer(s)
				c.backupOf(s)
			}
		}
		out = append(out, c.out...)
	}
	return out, nil
}

// servers reads the section's server lines. default-server sets check
// timings for every server; HAProxy's own defaults are inter 2s fall 3
// rise 2.
func (s *section) servers() []server {
	def := server{inter: 2 * time.Second, fall: 3, rise: 2}
	if d, ok := s.find("default-server"); ok {
		def, _ = parseServer(directive{d.line, append([]string{"server", "default", "x:0"}, d.fields[1:]...)}, def)
	}
	var servers []server
	for _, d := range s.dirs {
		if srv, ok := parseServer(d, def); ok {
			servers = append(servers, srv)
		}
	}
	return servers
}

// insertsCookie reports whether the section (or its defaults) has HAProxy
// set the server's cookie on responses (cookie NAME insert, rewrite or
// prefix): what keeps a user on one server.
func (s *section) insertsCookie() bool {
	d, ok := s.find("cookie")
	if !ok || len(d.fields) < 3 {
		return false
	}
	modes := d.fields[2:]
	return slices.Contains(modes, "insert") || slices.Contains(modes, "rewrite") || slices.Contains(modes, "prefix")
}

// checker gathers the findings of one backend or listen section, in the
// order Check reports them: the section's settings, then each primary
// server with its backup entry.
type checker struct {
	sec     *section
	e       Expect
	servers []server
	out     []Finding
}

func (c *checker) add(srv string, line int, problem, fix string) {
	c.out = append(c.out, Finding{Backend: c.sec.name, Server: srv, Line: line, Problem: problem, Fix: fix})
}

// sectionSettings checks what the section sets for all its servers:
// persistence, redispatch, retries and server connection reuse.
func (c *checker) sectionSettings() {
	sec := c.sec
	if !sec.insertsCookie() {
		c.add("", sec.line, "no cookie persistence: every user may land on another server at any time, and all users of a withdrawn server are moved",
			"cookie SRV insert indirect nocache  (and cookie NAME on each server line)")
	}
	if _, ok := sec.find("option", "redispatch"); !ok {
		c.add("", sec.line, "no option redispatch: a request whose server is down fails instead of going to another server",
			"option redispatch")
	}
	if _, ok := sec.find("retry-on"); !ok {
		c.add("", sec.line, "no retry-on: a request sent on a keep-alive connection that the graceful restart closes returns an error to the user",
			"retry-on conn-failure empty-response response-timeout")
	}
	if d, ok := sec.find("http-reuse"); !ok || len(d.fields) < 2 || d.fields[1] != "never" {
		c.add("", sec.line, "server connections are shared between client sessions (http-reuse): the graceful restart closes them all at once, and a request whose retries all draw dead ones is redispatched: a moved user",
			"http-reuse never")
	}
}

// agentServer checks a server of the agent-check pattern: drainctl's
// agent answers "drain" while the server is out; HAProxy's DRAIN keeps
// the server's cookie users on it, so no backup entry.
func (c *checker) agentServer(s server) {
	forwardPort, servicePort := c.e.ForwardPort, c.e.ServicePort
	agentFix := fmt.Sprintf("server %s %s:%d cookie %s check inter 1s fall 3 rise 2 agent-check agent-port %d agent-inter 500ms",
		s.name, s.host, servicePort, cmp.Or(s.cookie, s.name), cmp.Or(s.agentPort, 8081))
	switch {
	case s.agentPort == 0:
		c.add(s.name, s.line, "agent-check without agent-port: HAProxy does not know where drainctl's agent answers", agentFix)
	case s.port == forwardPort:
		c.add(s.name, s.line, fmt.Sprintf("traffic goes through the forward port %d: it is refused while the server is withdrawn, and its users are moved", forwardPort), agentFix)
	case !s.check:
		c.add(s.name, s.line, "not health-checked: a server that stops answering stays in rotation", agentFix)
	case time.Duration(s.fall)*s.inter < 3*time.Second:
		c.add(s.name, s.line, fmt.Sprintf("health check fails after %v (fall %d × inter %v): a graceful restart can fail it and move every user of %s at once", time.Duration(s.fall)*s.inter, s.fall, s.inter, s.name), agentFix)
	}
}

// forwardServer checks a primary server of the forward pattern: its
// health check must go through the forward port, with the fall and rise
// drainctl's agent counts.
func (c *checker) forwardServer(s server) {
	forwardPort, servicePort := c.e.ForwardPort, c.e.ServicePort
	fix := fmt.Sprintf("server %s %s:%d cookie %s check port %d inter 500ms fall 2 rise 2", s.name, s.host, servicePort, cmp.Or(s.cookie, s.name), forwardPort)
	switch {
	case s.port == forwardPort:
		c.add(s.name, s.line, fmt.Sprintf("traffic goes through the forward port %d: users with this server's cookie who open a new connection while it is withdrawn are moved to another server", forwardPort), fix)
	case !s.check:
		c.add(s.name, s.line, "not health-checked: withdrawing the forward does not take it out of rotation", fix)
	case s.checkPort != forwardPort:
		c.add(s.name, s.line, fmt.Sprintf("its health check does not use the forward port %d: withdrawing the forward does not take it out of rotation", forwardPort), fix)
	}
	if s.check && (s.checkPort == forwardPort || s.checkPort == 0 && s.port == forwardPort) {
		if p := countsDiffer(s, c.e); p != "" {
			c.add(s.name, s.line, p, fmt.Sprintf("server %s %s:%d cookie %s check port %d inter 500ms fall %d rise %d",
				s.name, s.host, servicePort, cmp.Or(s.cookie, s.name), forwardPort, c.e.Fall, c.e.Rise))
		}
	}
}

// backupOf checks the backup entry of primary s (the last backup server
// on the same host): it keeps s's users on the host, straight to the
// service port, while the forward is withdrawn.
func (c *checker) backupOf(s server) {
	forwardPort, servicePort := c.e.ForwardPort, c.e.ServicePort
	var bak *server
	for i := range c.servers {
		if b := &c.servers[i]; b.backup && b.host == s.host {
			bak = b
		}
	}
	bakFix := fmt.Sprintf("server %s-bak %s:%d cookie %s check inter 1s fall 3 rise 2 backup", s.name, s.host, servicePort, cmp.Or(s.cookie, s.name))
	switch {
	case bak == nil:
		c.add(s.name, s.line, "no backup entry for this server sharing its cookie: its users are moved to other servers while it is withdrawn", bakFix)
	case s.cookie != "" && bak.cookie != s.cookie:
		c.add(bak.name, bak.line, fmt.Sprintf("backup entry without the primary's cookie (%q): users of %s are moved while it is withdrawn", s.cookie, s.name), bakFix)
	case bak.port == forwardPort:
		c.add(bak.name, bak.line, fmt.Sprintf("backup entry goes through the forward port %d: it is refused while withdrawn", forwardPort), bakFix)
	case bak.check && time.Duration(bak.fall)*bak.inter < 3*time.Second:
		c.add(bak.name, bak.line, fmt.Sprintf("backup check fails after %v (fall %d × inter %v): a graceful restart can fail it and move every user of %s at once", time.Duration(bak.fall)*bak.inter, bak.fall, bak.inter, s.name), bakFix)
	}
}

// countsDiffer says what goes wrong when a primary entry's fall or rise
// is not what drainctl's agent counts, or "".
func countsDiffer(s server, e Expect) string {
	var p []string
	switch {
	case s.fall > e.Fall:
		p = append(p, fmt.Sprintf("fall %d, but drainctl's agent counts %d refused checks: it would say the server is out of rotation while HAProxy still sends it new users", s.fall, e.Fall))
	case s.fall < e.Fall:
		p = append(p, fmt.Sprintf("fall %d, but drainctl's agent counts %d refused checks: every withdraw waits a check longer than needed", s.fall, e.Fall))
	}
	switch {
	case s.rise > e.Rise:
		p = append(p, fmt.Sprintf("rise %d, but drainctl's agent counts %d accepted checks: it would say the server is back in rotation before HAProxy sends it users (a fleet roll would take the next one out too soon)", s.rise, e.Rise))
	case s.rise < e.Rise:
		p = append(p, fmt.Sprintf("rise %d, but drainctl's agent counts %d accepted checks: every restore waits a check longer than needed", s.rise, e.Rise))
	}
	if len(p) == 0 {
		return ""
	}
	return strings.Join(p, "; ") + fmt.Sprintf(" (or set health_checks fall: %d, rise: %d in drainctl.yaml)", s.fall, s.rise)
}

// Entry is a primary (not backup) server entry of a haproxy.cfg, with
// the check timings in force for it.
type Entry struct {
	Backend   string        `json:"backend"`
	Name      string        `json:"name"`
	Line      int           `json:"line"`
	Host      string        `json:"host"`
	Port      int           `json:"port"`
	CheckPort int           `json:"check_port"` // the port its checks go to
	Inter     time.Duration `json:"inter"`
	Fall      int           `json:"fall"`
	Rise      int           `json:"rise"`
}

// Primaries lists the checked primary entries of every backend and
// listen section: what a host compares with the checks it sees.
func Primaries(r io.Reader) ([]Entry, error) {
	secs, err := parse(r)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, sec := range secs {
		if sec.kind != "backend" && sec.kind != "listen" {
			continue
		}
		for _, s := range sec.servers() {
			if s.backup || !s.check {
				continue
			}
			out = append(out, Entry{Backend: sec.name, Name: s.name, Line: s.line, Host: s.host, Port: s.port,
				CheckPort: cmp.Or(s.checkPort, s.port), Inter: s.inter, Fall: s.fall, Rise: s.rise})
		}
	}
	return out, nil
}
