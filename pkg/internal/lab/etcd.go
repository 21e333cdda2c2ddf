package lab

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/etcdtest"
	"github.com/drainctl/drainctl/pkg/internal/namespace"
)

// PoolOptions put the lab's app servers in a pool coordinated on a real
// etcd cluster: each member in a namespace of its own (dl-ID-etcdN), all
// of them and every app server on one bridged LAN (198.19.0.0/24, in the
// namespace dl-ID-lan), which no route leaves.
type PoolOptions struct {
	Members        int    // etcd members; default 3
	Name           string // the agents' --pool-name; default "web"
	MaxUnavailable string // the agents' --pool-max-unavailable; default "1"
	// Names, if set, puts web i in pool Names[i-1] (two pools, one etcd).
	Names []string
}

// etcdMember is one etcd server of the lab.
type etcdMember struct {
	name, client, peer, dir string
	ns                      *namespace.NS
	cmd                     *exec.Cmd
	done                    chan struct{}
}

func lanAddr(host int) string { return fmt.Sprintf("198.19.0.%d", host) }

// startEtcd makes the LAN and the etcd members, and waits until the
// cluster answers.
func (l *Lab) startEtcd(ctx context.Context) (err error) {
	p := l.o.Pool
	if p.Members == 0 {
		p.Members = 3
	}
	if l.lan, err = namespace.New("dl-" + l.o.ID + "-lan"); err != nil {
		return err
	}
	if _, err := l.lan.Exec("sh", "-c", "ip link add br0 type bridge && ip link set br0 up"); err != nil {
		return err
	}
	var initial []string
	for i := range p.Members {
		m := &etcdMember{name: fmt.Sprintf("etcd%d", i), dir: filepath.Join(l.o.Dir, fmt.Sprintf("etcd%d", i))}
		if m.ns, err = namespace.New(fmt.Sprintf("dl-%s-etcd%d", l.o.ID, i)); err != nil {
			return err
		}
		l.etcd = append(l.etcd, m)
		addr := lanAddr(10 + i)
		if err := l.joinLAN(m.ns, fmt.Sprintf("e%d", i), addr); err != nil {
			return err
		}
		m.client, m.peer = "http://"+addr+":2379", "http://"+addr+":2380"
		initial = append(initial, m.name+"="+m.peer)
	}
	l.etcdInitial = strings.Join(initial, ",")
	for i := range l.etcd {
		if err := l.StartEtcd(i); err != nil {
			return err
		}
	}
	return l.waitEtcd(ctx)
}

// joinLAN links ns to the LAN's bridge as eth2 with addr/24; port names
// the bridge's end.
func (l *Lab) joinLAN(ns *namespace.NS, port, addr string) error {
	for _, c := range []struct {
		ns   *namespace.NS
		args string
	}{
		{l.lan, fmt.Sprintf("ip link add %s type veth peer name eth2 netns %s", port, ns.Name)},
		{l.lan, fmt.Sprintf("ip link set %s master br0 up", port)},
		{ns, fmt.Sprintf("ip addr add %s/24 dev eth2", addr)},
		{ns, "ip link set eth2 up"},
	} {
		if _, err := c.ns.Exec(strings.Fields(c.args)...); err != nil {
			return err
		}
	}
	return nil
}

// StartEtcd starts member i (again, after KillEtcd, on its data).
func (l *Lab) StartEtcd(i int) error {
	m := l.etcd[i]
	state := "new"
	if _, err := os.Stat(m.dir); err == nil {
		state = "existing"
	}
	args := etcdtest.Args(m.name, m.dir, m.client, m.peer, l.etcdInitial, state, "dl-"+l.o.ID)
	m.cmd = m.ns.Command(args...)
	logf, err := os.OpenFile(m.dir+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		return err
	}
	m.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); logf.Close(); close(done) }(m.cmd, m.done)
	return nil
}

// KillEtcd kills member i with SIGKILL.
func (l *Lab) KillEtcd(i int) {
	m := l.etcd[i]
	if m.cmd != nil {
		m.cmd.Process.Signal(syscall.SIGKILL)
		<-m.done
		m.cmd = nil
	}
}

// EtcdEndpoints are the members' client URLs, comma-separated.
func (l *Lab) EtcdEndpoints() string {
	var e []string
	for _, m := range l.etcd {
		e = append(e, m.client)
	}
	return strings.Join(e, ",")
}

// waitEtcd waits until every running member answers, for 20 s at most.
func (l *Lab) waitEtcd(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for _, m := range l.etcd {
		for m.cmd != nil {
			out, err := m.ns.Exec("etcdctl", "--endpoints", m.client, "--command-timeout", "1s", "endpoint", "health")
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				b, _ := os.ReadFile(m.dir + ".log")
				return fmt.Errorf("etcd %s not healthy: %w %s\n%s", m.name, err, out, b)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// WaitEtcd waits until every running member answers again.
func (l *Lab) WaitEtcd(ctx context.Context) error { return l.waitEtcd(ctx) }

// poolFlags are web i's agent flags for the lab's pool (i from 1).
func (l *Lab) poolFlags(w *Web, i int) []string {
	p := l.o.Pool
	name := cmp.Or(p.Name, "web")
	if len(p.Names) >= i {
		name = p.Names[i-1]
	}
	return []string{"--pool-etcd", l.EtcdEndpoints(), "--pool-name", name,
		"--pool-max-unavailable", cmp.Or(p.MaxUnavailable, "1"), "--pool-id", w.Name}
}

// closeEtcd kills the members and removes their namespaces and the LAN.
func (l *Lab) closeEtcd() []error {
	var errs []error
	for i, m := range l.etcd {
		l.KillEtcd(i)
		if err := m.ns.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	l.etcd = nil
	if l.lan != nil {
		if err := l.lan.Close(); err != nil {
			errs = append(errs, err)
		}
		l.lan = nil
	}
	return errs
}
