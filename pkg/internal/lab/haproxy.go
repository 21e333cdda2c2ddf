package lab

// The lab's HAProxy: its configuration for the lab's pattern, and the
// process, in the load balancer's namespace.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/drainctl/drainctl/pkg/haproxy"
	"github.com/drainctl/drainctl/pkg/internal/namespace"
)

// startHAProxy runs HAProxy in ns with the lab's backend for servers;
// name names its files in the lab dir. It returns its stats socket.
func (l *Lab) startHAProxy(ns *namespace.NS, name string, servers []haproxy.Server) (string, error) {
	stats := filepath.Join(l.o.Dir, name+".sock")
	if l.haproxies == nil {
		l.haproxies = map[string]*haproxyProc{}
	}
	// Copied: the caller reuses its slice (the passive HAProxy's
	// addresses).
	l.haproxies[name] = &haproxyProc{ns: ns, servers: slices.Clone(servers)}
	var backend string
	if l.o.Pattern == Naive {
		var b strings.Builder
		b.WriteString("backend app\n    balance roundrobin\n    cookie SRV insert indirect nocache\n")
		for _, s := range servers {
			fmt.Fprintf(&b, "    server %s %s:81 cookie %s check\n", s.Name, s.Host, s.Name)
		}
		backend = b.String()
	} else {
		var err error
		o := haproxy.Options{Servers: servers, ThroughForward: l.o.Pattern == ThroughForward, Inter: l.o.Inter}
		if l.o.CheckPort != 0 {
			o.ForwardPort = l.o.CheckPort
		}
		if l.o.Pattern == AgentCheck {
			o.AgentPort = agentPort
		}
		if backend, err = haproxy.Backend(o); err != nil {
			return "", err
		}
	}
	// The log (haproxy.log in the lab dir) names each sticky user, for
	// tracing a lost session; errors are counted from the stats and the
	// load generator, not from it (it drops lines under load).
	cfg := fmt.Sprintf(`global
    maxconn 4096
    stats socket %s mode 600 level admin
    log stdout format raw local0
defaults
    mode http
    log global
    option httplog
    timeout connect %s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
frontend www
    bind 127.0.0.1:8000
    http-request capture req.hdr(X-Drainctl-User) len 4
    default_backend app
%s`, stats, hapTime(l.o.TimeoutConnect), backend)
	path := filepath.Join(l.o.Dir, name+".cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return "", err
	}
	if out, err := ns.Exec("haproxy", "-c", "-f", path); err != nil {
		return "", fmt.Errorf("haproxy config: %w: %s", err, out)
	}
	cmd := ns.Command("haproxy", "-db", "-f", path)
	// Appended to: a HAProxy run again (SetTimeoutConnect) logs after
	// the first one.
	logf, err := os.OpenFile(filepath.Join(l.o.Dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return "", err
	}
	l.pids = append(l.pids, cmd.Process.Pid)
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	l.haproxies[name].cmd, l.haproxies[name].done = cmd, done
	if waitFor(func() bool { _, err := haproxy.Command(stats, "show info"); return err == nil }) {
		return stats, nil
	}
	return "", fmt.Errorf("%s did not start", name)
}

// HAProxyConfig is the configuration HAProxy runs with.
func (l *Lab) HAProxyConfig() string {
	b, _ := os.ReadFile(l.HAProxyConfigFile())
	return string(b)
}

// haproxyProc is one of the lab's HAProxy processes and what it was
// started with.
type haproxyProc struct {
	ns      *namespace.NS
	servers []haproxy.Server
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
}

// SetTimeoutConnect runs the lab's HAProxy (and the passive one) again
// with timeout connect d: each process stops and a new one reads the
// changed configuration, so how HAProxy's connect timeout changes what
// users see can be measured in one lab (Debian's default haproxy.cfg
// has 5s, the lab 2s). Connections through HAProxy are cut: call it with
// no load running. It returns once the new processes answer on their
// stats sockets; their servers start UP (HAProxy's default), their
// checks run from then on.
func (l *Lab) SetTimeoutConnect(d time.Duration) error {
	l.o.TimeoutConnect = d
	for _, name := range []string{"haproxy", "haproxy-passive"} {
		p := l.haproxies[name]
		if p == nil {
			continue
		}
		pid := p.cmd.Process.Pid
		// SIGUSR1, HAProxy's soft stop: nothing is in flight.
		if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
			return fmt.Errorf("stop %s (pid %d): %w", name, pid, err)
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("%s (pid %d) still runs 10 s after SIGUSR1", name, pid)
		}
		// Gone and reaped: Close must not signal its pid, which may be
		// another process's by then.
		l.pids = slices.DeleteFunc(l.pids, func(p int) bool { return p == pid })
		stats, err := l.startHAProxy(p.ns, name, p.servers)
		if err != nil {
			return fmt.Errorf("%s with timeout connect %v: %w", name, d, err)
		}
		if name == "haproxy" {
			l.stats = stats
		} else {
			l.pstats = stats
		}
	}
	return nil
}

// hapTime formats d as HAProxy reads it ("2s", "1500ms").
func hapTime(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d.Milliseconds())
}
