// Package etcdtest runs real etcd servers (Debian's etcd-server) for
// tests: one member or a cluster, each a process of the test's own with
// its data under the test's temporary directory, killed by PID when the
// test ends.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// Member is one etcd server of a Cluster.
type Member struct {
	Name   string
	Client string // its client URL
	peer   string
	dir    string
	cmd    *exec.Cmd
	log    *os.File
	ns     []string // the command prefix that runs it in a namespace, if any
	extra  []string // more flags (TLS)
}

// Cluster is a set of etcd members that know each other.
type Cluster struct {
	Members []*Member
	initial string
	tls     *TLS // StartTLS's: how etcdctl reaches it
}

// Endpoints are the members' client URLs.
func (c *Cluster) Endpoints() []string {
	var e []string
	for _, m := range c.Members {
		e = append(e, m.Client)
	}
	return e
}

// freePort picks a port on loopback that nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs an n-member cluster on loopback and waits until it answers.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	hosts := make([]string, n)
	for i := range hosts {
		hosts[i] = "127.0.0.1"
	}
	return StartOn(t, hosts, nil)
}

// StartDefaultTimers is Start with etcd's own heartbeat and election
// timeout (100 ms, 1 s) rather than the tests' fast elections: for a
// load that starves etcd of CPU (a benchmark at fleet scale), where a
// 500 ms election timeout makes a leader change at every stall.
func StartDefaultTimers(t testing.TB, n int) *Cluster {
	t.Helper()
	hosts := make([]string, n)
	for i := range hosts {
		hosts[i] = "127.0.0.1"
	}
	return startOn(t, hosts, nil, []string{"--heartbeat-interval", "100", "--election-timeout", "1000", "--enable-pprof"})
}

// StartOn runs one member on each address in hosts; prefixes[i], if
// given, is the command prefix that puts member i in its namespace
// (ip netns exec NS).
func StartOn(t testing.TB, hosts []string, prefixes [][]string) *Cluster {
	t.Helper()
	return startOn(t, hosts, prefixes, nil)
}

// startOn is StartOn, with extra flags for every member.
func startOn(t testing.TB, hosts []string, prefixes [][]string, extra []string) *Cluster {
	t.Helper()
	nstest.RequireCmd(t, "etcd")
	c := &Cluster{}
	var initial []string
	base := t.TempDir()
	for i, h := range hosts {
		cp, pp := 2379, 2380
		if prefixes == nil {
			cp, pp = freePort(t), freePort(t)
		}
		m := &Member{
			Name:   fmt.Sprintf("m%d", i),
			Client: fmt.Sprintf("http://%s:%d", h, cp),
			peer:   fmt.Sprintf("http://%s:%d", h, pp),
			dir:    filepath.Join(base, fmt.Sprintf("m%d", i)),
		}
		if prefixes != nil {
			m.ns = prefixes[i]
		}
		m.extra = append(m.extra, extra...)
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.peer)
	}
	c.initial = strings.Join(initial, ",")
	for _, m := range c.Members {
		m.start(t, c.initial, "new")
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.Kill()
		}
	})
	c.WaitHealthy(t)
	return c
}

// Args is the command line of one etcd member: its name, data directory,
// client and peer URLs, the cluster's members (name=peerURL,...), "new"
// or "existing", and the cluster's token.
func Args(name, dir, client, peer, initial, state, token string) []string {
	return []string{"etcd",
		"--name", name, "--data-dir", dir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", initial, "--initial-cluster-state", state,
		"--initial-cluster-token", token,
		// Fast elections, so killing a member costs the tests ~1 s, not 5.
		"--heartbeat-interval", "50", "--election-timeout", "500",
		"--log-level", "warn", "--logger", "zap"}
}

func (m *Member) start(t testing.TB, initial, state string) {
	t.Helper()
	args := append(append([]string{}, m.ns...), Args(m.Name, m.dir, m.Client, m.peer, initial, state, "drainctl-test-"+filepath.Base(filepath.Dir(m.dir)))...)
	args = append(args, m.extra...)
	log, err := os.OpenFile(m.dir+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	m.log = log
	m.cmd = exec.Command(args[0], args[1:]...)
	m.cmd.Stdout, m.cmd.Stderr = log, log
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("etcd %s: %v", m.Name, err)
	}
}

// Kill stops the member with SIGKILL and waits for it. Safe to repeat.
func (m *Member) Kill() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	m.cmd.Process.Kill()
	m.cmd.Wait()
	m.cmd = nil
	m.log.Close()
}

// Restart starts a killed member again on its data.
func (m *Member) Restart(t testing.TB, c *Cluster) {
	t.Helper()
	m.start(t, c.initial, "existing")
}

// Log is what the member wrote.
func (m *Member) Log() string {
	b, _ := os.ReadFile(m.dir + ".log")
	return string(b)
}

// WaitHealthy waits until every running member answers a linearizable
// read (a cluster with a leader), for at most 20 s.
func (c *Cluster) WaitHealthy(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, m := range c.Members {
		if m.cmd == nil {
			continue
		}
		for {
			args := append(append([]string{}, m.ns...), "etcdctl", "--endpoints", m.Client, "--command-timeout", "1s")
			if c.tls != nil {
				args = append(args, "--cacert", c.tls.CA, "--cert", c.tls.Cert, "--key", c.tls.Key)
			}
			args = append(args, "endpoint", "health")
			out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("etcd %s not healthy after 20 s: %v %s\n%s", m.Name, err, out, m.Log())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
