package lab

// The lab's HAProxy: its configuration for the lab's pattern, and the
// process, in the load balancer's namespace.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/drainctl/drainctl/pkg/haproxy"
	"github.com/drainctl/drainctl/pkg/internal/namespace"
)

// startHAProxy runs HAProxy in ns with the lab's backend for servers;
// name names its files in the lab dir. It returns its stats socket.
func (l *Lab) startHAProxy(ns *namespace.NS, name string, servers []haproxy.Server) (string, error) {
	stats := filepath.Join(l.o.Dir, name+".sock")
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
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
frontend www
    bind 127.0.0.1:8000
    http-request capture req.hdr(X-Drainctl-User) len 4
    default_backend app
%s`, stats, backend)
	path := filepath.Join(l.o.Dir, name+".cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return "", err
	}
	if out, err := ns.Exec("haproxy", "-c", "-f", path); err != nil {
		return "", fmt.Errorf("haproxy config: %w: %s", err, out)
	}
	cmd := ns.Command("haproxy", "-db", "-f", path)
	logf, _ := os.Create(filepath.Join(l.o.Dir, name+".log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return "", err
	}
	l.pids = append(l.pids, cmd.Process.Pid)
	go cmd.Wait()
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
