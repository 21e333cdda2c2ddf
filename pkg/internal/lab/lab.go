// Package lab builds the end-to-end lab the tests and the demo share:
// a load balancer namespace running real HAProxy, and app server
// namespaces each running real Apache (Debian's apache2, its own config
// and pid file) or real nginx (Options.WebServer) and the drainctl agent, joined by veth links with no
// route out. Close removes every process (by PID) and namespace it made.
package lab

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drainctl/drainctl/pkg/haproxy"
	"github.com/drainctl/drainctl/pkg/internal/namespace"
)

// Pattern is how HAProxy reaches the app servers.
type Pattern string

const (
	// Recommended is the pattern drainctl recommends: traffic to 80,
	// check port 81, backup entry sharing the cookie, retry-on
	// (docs/design.md, "What each part prevents").
	Recommended Pattern = "recommended"
	// ThroughForward sends the traffic through 81, same backup and retry-on.
	ThroughForward Pattern = "through-forward"
	// Naive is the blog post's setup: traffic through 81, plain checks, no
	// backup, no retry-on; withdrawn by deleting the REDIRECT.
	Naive Pattern = "naive"
	// AgentCheck has one entry per server; HAProxy's agent-check asks each
	// agent (port 8081), which answers "drain" while the server is out.
	AgentCheck Pattern = "agent-check"
)

// Options describe a lab.
type Options struct {
	Binary   string  // the drainctl binary
	Backend  string  // nftables or iptables (agents' --backend)
	Pattern  Pattern // default Recommended
	Servers  int     // app servers; default 2
	Deadline time.Duration
	// Passive adds a second HAProxy, the passive one of an
	// active/passive pair, in a namespace of its own (dl-ID-lb2) linked
	// to every app server: it health-checks them but gets no traffic.
	Passive bool
	// Inter is the primary entries' check interval (default: haproxy-config's).
	Inter time.Duration
	// TimeoutConnect is HAProxy's timeout connect (default 2s; Debian's
	// haproxy.cfg has 5s). SetTimeoutConnect changes it in a running lab.
	TimeoutConnect time.Duration
	// CheckPort is the port the primary entries' checks use (default:
	// the forward port, 81). Another port is a broken haproxy.cfg.
	CheckPort uint16
	// AgentFlags are added to every agent's command line.
	AgentFlags []string
	// Pool, if set, runs an etcd cluster and puts the agents in a pool.
	Pool *PoolOptions
	// Hosted is how many of the app servers (the last ones) get only
	// their namespace, links and pool flags: the test runs their web
	// server and agent itself, in a container (hosted.go).
	Hosted int
	// WebServer is what the app servers run: Apache (the default) or
	// Nginx, each with its own config, pid file and logs in the server's
	// directory, reloaded gracefully by the agent.
	WebServer WebServer
	// ID makes names unique (namespaces dl-ID-lb, dl-ID-web1...).
	ID  string
	Dir string // work directory; removed by Close
}

// Web is one app server.
type Web struct {
	Name, Addr string
	ns         *namespace.NS
	addrs      []string // its other addresses (the passive HAProxy's link)
	dir, conf  string
	Socket     string // its agent's control socket
	server     WebServer
	binary     string
	backend    string
	poolFlags  []string // the agent's pool flags (Options.Pool)
	lab        *Lab     // for its agent's settings (Doctor)
	agent      *exec.Cmd
	agentDone  chan struct{}
	// Hosted: the test runs this server's web server and agent.
	Hosted bool
}

// KillAgent kills w's agent with SIGKILL, as a crash or the OOM killer
// would, and waits until it is gone.
func (w *Web) KillAgent() {
	if w.agent != nil {
		w.agent.Process.Kill()
		<-w.agentDone
		w.agent = nil
	}
}

// agentPort is where the agents answer HAProxy's agent-check (AgentCheck).
const agentPort = 8081

// Lab is a running lab.
type Lab struct {
	o       Options
	lb      *namespace.NS
	passive *namespace.NS // Options.Passive
	Webs    []*Web
	stats   string // HAProxy's stats socket
	pstats  string // the passive HAProxy's
	pids    []int
	// haproxies are the HAProxy processes by name (haproxy,
	// haproxy-passive), for SetTimeoutConnect.
	haproxies map[string]*haproxyProc
	// The pool's etcd (Options.Pool): the LAN namespace and the members.
	lan         *namespace.NS
	etcd        []*etcdMember
	etcdInitial string
}

// Frontend is where the load generator sends requests (inside the load
// balancer's namespace; use Dial).
const Frontend = "http://127.0.0.1:8000/"

// Start builds the lab. On error everything made so far is removed.
func Start(ctx context.Context, o Options) (l *Lab, err error) {
	l = &Lab{o: o.withDefaults()}
	o = l.o
	if o.WebServer != Apache && o.WebServer != Nginx {
		return nil, fmt.Errorf("lab: web server %q, want %s or %s", o.WebServer, Apache, Nginx)
	}
	defer func() {
		if err != nil {
			l.Close()
			l = nil
		}
	}()
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return l, err
	}
	if l.lb, err = namespace.New("dl-" + o.ID + "-lb"); err != nil {
		return l, err
	}
	if o.Pool != nil {
		if err := l.startEtcd(ctx); err != nil {
			return l, err
		}
	}
	var servers []haproxy.Server
	for i := 1; i <= o.Servers; i++ {
		w := &Web{Name: fmt.Sprintf("web%d", i), Addr: fmt.Sprintf("198.18.%d.2", i), binary: o.Binary, backend: o.Backend,
			server: o.WebServer, lab: l}
		if w.ns, err = namespace.New(fmt.Sprintf("dl-%s-web%d", o.ID, i)); err != nil {
			return l, err
		}
		l.Webs = append(l.Webs, w)
		if err := l.linkWeb(w, i); err != nil {
			return l, err
		}
		if o.Passive {
			if err := l.linkPassive(w, i); err != nil {
				return l, err
			}
			w.addrs = append(w.addrs, passiveAddr(i))
		}
		if o.Pool != nil {
			w.poolFlags = l.poolFlags(w, i)
			if err := l.joinLAN(w.ns, fmt.Sprintf("w%d", i), lanAddr(100+i)); err != nil {
				return l, err
			}
		}
		w.Hosted = i > o.Servers-o.Hosted
		if err := l.startWeb(w); err != nil {
			return l, err
		}
		servers = append(servers, haproxy.Server{Name: w.Name, Host: w.Addr})
	}
	if l.stats, err = l.startHAProxy(l.lb, "haproxy", servers); err != nil {
		return l, err
	}
	if o.Passive {
		for i := range servers {
			servers[i].Host = passiveAddr(i + 1)
		}
		if l.pstats, err = l.startHAProxy(l.passive, "haproxy-passive", servers); err != nil {
			return l, err
		}
	}
	return l, l.waitUp(ctx)
}

// withDefaults fills in what o leaves zero: the recommended pattern, two
// servers, a 5s drain deadline, HAProxy's timeout connect 2s, Apache.
func (o Options) withDefaults() Options {
	if o.Pattern == "" {
		o.Pattern = Recommended
	}
	if o.Servers == 0 {
		o.Servers = 2
	}
	if o.Deadline == 0 {
		o.Deadline = 5 * time.Second
	}
	if o.TimeoutConnect == 0 {
		o.TimeoutConnect = 2 * time.Second
	}
	if o.WebServer == "" {
		o.WebServer = Apache
	}
	return o
}

// waitUp waits until every HAProxy (the passive one too) reports every
// web server UP.
func (l *Lab) waitUp(ctx context.Context) error {
	for _, w := range l.Webs {
		if w.Hosted {
			continue // up once the test has started it
		}
		if _, err := l.WaitStatus(ctx, w.Name, "UP", 15*time.Second); err != nil {
			return err
		}
		if l.o.Passive {
			if _, err := l.waitStatus(ctx, l.pstats, w.Name, "UP", 15*time.Second); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *Lab) startWeb(w *Web) error {
	if w.Hosted {
		return nil
	}
	w.dir = filepath.Join(l.o.Dir, w.Name)
	if err := os.MkdirAll(filepath.Join(w.dir, "www"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(w.dir, "www", "index.html"), []byte(w.Name+"\n"), 0o644); err != nil {
		return err
	}
	start := startApache
	if w.server == Nginx {
		start = startNginx
	}
	pid, err := start(w)
	if err != nil {
		return err
	}
	l.pids = append(l.pids, pid)
	if _, err := w.ns.Exec(w.binary, "forward", "apply", "--backend", l.o.Backend); err != nil {
		return err
	}
	if l.o.Pattern == Naive {
		return nil // no agent: the naive procedure edits the rules by hand
	}
	return l.StartAgent(w)
}

// agentSettings are the settings flags w's agent runs with: `drainctl
// agent` and `drainctl doctor` (Web.Doctor) take the same, so doctor
// reads the host exactly as the agent is configured.
func (l *Lab) agentSettings(w *Web) []string {
	args := []string{"--socket", w.socketPath(), "--state-dir", filepath.Join(w.dir, "state"),
		"--backend", l.o.Backend, "--forward", "81:80", "--web-server", string(w.server),
		"--configtest-cmd", strings.Join(w.configTestCmd(), " "), "--restart-cmd", w.ReloadCommand(),
		"--ready-url", "http://127.0.0.1:80/", "--reconcile-interval", "1s",
		// check inter 500ms fall 2 takes ≤ 1 s to mark the server DOWN.
		"--min-wait", "2s", "--quiet", "1s", "--deadline", l.o.Deadline.String()}
	if l.o.Pattern == AgentCheck {
		args = append(args, "--agent-check-listen", fmt.Sprintf("%s:%d", w.Addr, agentPort))
	}
	return append(append(args, w.poolFlags...), l.o.AgentFlags...)
}

// socketPath is where w's agent serves its control socket.
func (w *Web) socketPath() string { return filepath.Join(w.dir, "agent.sock") }

// StartAgent starts w's agent (again, after KillAgent) and waits for its
// socket.
func (l *Lab) StartAgent(w *Web) error {
	w.Socket = w.socketPath()
	cmd := w.ns.Command(append([]string{w.binary, "agent"}, l.agentSettings(w)...)...)
	// Appended to, so a restarted agent's log follows the first one's.
	logf, err := os.OpenFile(filepath.Join(w.dir, "agent.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	l.pids = append(l.pids, cmd.Process.Pid)
	w.agent = cmd
	w.agentDone = make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); logf.Close(); close(done) }(w.agentDone)
	if waitFor(func() bool {
		c, err := net.Dial("unix", w.Socket)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		return nil
	}
	b, _ := os.ReadFile(filepath.Join(w.dir, "agent.log"))
	return fmt.Errorf("agent of %s did not start: %s", w.Name, b)
}

// waitFor checks cond every 50 ms for up to 5 s, and says whether it
// became true: daemons the lab starts answer within that.
func waitFor(cond func() bool) bool {
	for i := 0; i < 100; i++ {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// waitPidFileNow reads a pid file without waiting.
func waitPidFileNow(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func waitPidFile(path string) (pid int, err error) {
	if waitFor(func() bool {
		b, rerr := os.ReadFile(path)
		if rerr != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	}) {
		return pid, nil
	}
	return 0, errors.New("no pid file")
}

// Close stops every process the lab started (by PID) and deletes its
// namespaces and directory. It returns what it could not remove (the demo
// says so instead of claiming a clean machine). Safe to call twice.
func (l *Lab) Close() error {
	var errs []error
	// A web server started again by a test (a patch that stops and
	// starts it) has a pid the lab did not record: its pid file has it.
	for _, w := range l.Webs {
		if pid, err := waitPidFileNow(w.pidFile()); err == nil && !slices.Contains(l.pids, pid) {
			l.pids = append(l.pids, pid)
		}
	}
	for _, pid := range l.pids {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	for _, pid := range l.pids {
		for i := 0; i < 30 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, pid := range l.pids {
		// A killed child is reaped by its Wait; give it a moment.
		for i := 0; i < 20 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			errs = append(errs, fmt.Errorf("process %d still runs", pid))
		}
	}
	l.pids = nil
	for _, w := range l.Webs {
		if w.ns != nil {
			if err := w.ns.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, ns := range []*namespace.NS{l.lb, l.passive} {
		if ns != nil {
			if err := ns.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, l.closeEtcd()...)
	l.Webs, l.lb, l.passive = nil, nil, nil
	if l.o.Dir != "" {
		if err := os.RemoveAll(l.o.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Dial opens a connection from the load balancer's namespace (to reach
// the HAProxy frontend on its loopback).
func (l *Lab) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return l.lb.DialContext(ctx, network, addr)
}

// Status is HAProxy's status of a server ("UP", "DOWN", "UP 1/2"...).
func (l *Lab) Status(server string) (string, error) { return statusOf(l.stats, server) }

// Statuses is HAProxy's status of every server of the backend, keyed
// by name, from one reading of its stats: for a test that asks whether
// several were out at the same instant.
func (l *Lab) Statuses() (map[string]string, error) {
	st, err := haproxy.ShowStat(l.stats)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for key, s := range st {
		if name, ok := strings.CutPrefix(key, "app/"); ok {
			out[name] = s["status"]
		}
	}
	return out, nil
}

func statusOf(stats, server string) (string, error) {
	st, err := haproxy.ShowStat(stats)
	if err != nil {
		return "", err
	}
	s, ok := st["app/"+server]
	if !ok {
		return "", fmt.Errorf("haproxy has no server app/%s", server)
	}
	return s["status"], nil
}

// WaitStatus waits until HAProxy reports server as want (exactly "UP" or
// "DOWN"; transitions like "UP 1/2" do not count) and says how long it took.
func (l *Lab) WaitStatus(ctx context.Context, server, want string, timeout time.Duration) (time.Duration, error) {
	return l.waitStatus(ctx, l.stats, server, want, timeout)
}

func (l *Lab) waitStatus(ctx context.Context, stats, server, want string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	var last string
	for time.Since(start) < timeout {
		s, err := statusOf(stats, server)
		if err == nil && s == want {
			return time.Since(start), nil
		}
		last = s
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("haproxy: %s still %q after %v, want %s", server, last, timeout, want)
}

// DrainctlIn is Drainctl run inside w's namespace, as on the host itself:
// for `maintenance run`, whose command must run there.
func (w *Web) DrainctlIn(ctx context.Context, args ...string) (string, int, error) {
	return exitOf(exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", w.ns.Name, w.binary, "--socket", w.Socket}, args...)...))
}

// Drainctl runs the drainctl CLI against w's agent and returns its output
// and exit code.
func (w *Web) Drainctl(ctx context.Context, args ...string) (string, int, error) {
	return exitOf(exec.CommandContext(ctx, w.binary, append([]string{"--socket", w.Socket}, args...)...))
}

// exitOf runs cmd and returns its combined output and exit code; err is
// only for a command that did not run.
func exitOf(cmd *exec.Cmd) (string, int, error) {
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode(), nil
	}
	return string(out), 0, err
}
