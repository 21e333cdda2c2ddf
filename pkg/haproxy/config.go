// Package haproxy writes the HAProxy backend drainctl's pattern needs,
// checks an existing haproxy.cfg against it, and reads HAProxy's stats
// socket (for the lab).
package haproxy

import (
	"fmt"
	"strings"
	"time"
)

// Server is one app server.
type Server struct {
	Name string // e.g. web1; the backup entry is Name-bak
	Host string // address or name HAProxy connects to
}

// Options describe the backend. Zero values take the defaults of
// the recommended pattern of docs/design.md.
type Options struct {
	Backend     string // backend name; default "app"
	Servers     []Server
	ServicePort uint16 // where traffic goes; default 80
	ForwardPort uint16 // what the primary entry's check uses; default 81
	Cookie      string // persistence cookie; default SRV
	CheckPath   string // default "/"
	// Primary entry checks: withdrawing the forward marks the server DOWN
	// within Fall×Inter (1 s by default); the agent sees the checks
	// refused and confirms it, so its health_checks fall and rise must be
	// these.
	Inter      time.Duration // default 500ms
	Fall, Rise int           // default 2, 2
	// Backup entry checks: tolerant, so a graceful restart cannot fail
	// them (docs/design.md: a fast fall 2 moved every user at once).
	BackupInter time.Duration // default 1s
	BackupFall  int           // default 3
	// ThroughForward sends the traffic itself through the forward port:
	// the other pattern, worse (users move). For comparison only.
	ThroughForward bool
	// AgentPort, when set, writes the agent-check pattern instead: one
	// entry per server, health-checked on the service port with the
	// backup entry's tolerant timings, and HAProxy's agent-check asking
	// drainctl's agent on this port, which answers "drain" while the
	// server is withdrawn, draining or held. HAProxy's DRAIN keeps
	// sending users whose cookie names the server, and no one else.
	AgentPort  uint16
	AgentInter time.Duration // default 500ms
}

func (o *Options) defaults() {
	if o.Backend == "" {
		o.Backend = "app"
	}
	if o.ServicePort == 0 {
		o.ServicePort = 80
	}
	if o.ForwardPort == 0 {
		o.ForwardPort = 81
	}
	if o.Cookie == "" {
		o.Cookie = "SRV"
	}
	if o.CheckPath == "" {
		o.CheckPath = "/"
	}
	if o.Inter == 0 {
		o.Inter = 500 * time.Millisecond
	}
	if o.Fall == 0 {
		o.Fall = 2
	}
	if o.Rise == 0 {
		o.Rise = 2
	}
	if o.BackupInter == 0 {
		o.BackupInter = time.Second
	}
	if o.BackupFall == 0 {
		o.BackupFall = 3
	}
	if o.AgentInter == 0 {
		o.AgentInter = 500 * time.Millisecond
	}
}

// ms renders a duration the way HAProxy reads it.
func ms(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// Backend renders the backend section.
func Backend(o Options) (string, error) {
	o.defaults()
	if len(o.Servers) == 0 {
		return "", fmt.Errorf("no server: give at least one NAME=ADDRESS")
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("backend %s", o.Backend)
	w("    balance roundrobin")
	if o.AgentPort != 0 {
		w("    # One cookie per app server: users keep their server while it drains.")
	} else {
		w("    # One cookie per app server, shared by its two entries: users keep")
		w("    # their server while it is withdrawn (through the backup entry).")
	}
	w("    cookie %s insert indirect nocache", o.Cookie)
	w("    option redispatch")
	w("    # A request on a keep-alive connection the graceful restart closes is")
	w("    # retried instead of failing.")
	w("    retries 3")
	w("    retry-on conn-failure empty-response response-timeout")
	w("    # Server connections stay with their client session: the restart")
	w("    # closes Apache's idle connections all at once, and a shared pool would")
	w("    # let a request's three retries all draw dead ones, then be redispatched")
	w("    # (a moved user). A private connection's retry opens a fresh one.")
	w("    http-reuse never")
	w("    option httpchk GET %s", o.CheckPath)
	for _, s := range o.Servers {
		if o.AgentPort != 0 {
			w("    # %s: traffic and a tolerant health check on %d (a graceful restart cannot", s.Name, o.ServicePort)
			w("    # fail it); drainctl's agent on %d answers \"drain\" while the server is", o.AgentPort)
			w("    # out: users whose cookie names %s stay, nobody new comes.", s.Name)
			w("    server %s %s:%d cookie %s check inter %s fall %d rise %d agent-check agent-port %d agent-inter %s",
				s.Name, s.Host, o.ServicePort, s.Name, ms(o.BackupInter), o.BackupFall, o.Rise, o.AgentPort, ms(o.AgentInter))
			continue
		}
		if o.ThroughForward {
			w("    server %s %s:%d cookie %s check inter %s fall %d rise %d",
				s.Name, s.Host, o.ForwardPort, s.Name, ms(o.Inter), o.Fall, o.Rise)
		} else {
			w("    # %s: traffic to %d, health-checked through the forward (%d): withdrawing", s.Name, o.ServicePort, o.ForwardPort)
			w("    # the forward takes it out for new users.")
			w("    server %s %s:%d cookie %s check port %d inter %s fall %d rise %d",
				s.Name, s.Host, o.ServicePort, s.Name, o.ForwardPort, ms(o.Inter), o.Fall, o.Rise)
		}
		w("    server %s-bak %s:%d cookie %s check inter %s fall %d rise %d backup",
			s.Name, s.Host, o.ServicePort, s.Name, ms(o.BackupInter), o.BackupFall, o.Rise)
	}
	return b.String(), nil
}
