// Package namespace makes named network namespaces and runs code, commands
// and connections inside them. The lab and the test helpers (nstest) share
// it.
package namespace

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/vishvananda/netns"
)

// NS is one named network namespace (as `ip netns add` makes).
type NS struct {
	Name   string
	handle netns.NsHandle
}

// New makes the namespace name with its loopback up.
func New(name string) (*NS, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %w: %s", name, err, out)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		exec.Command("ip", "netns", "del", name).Run()
		return nil, fmt.Errorf("open namespace %s: %w", name, err)
	}
	n := &NS{Name: name, handle: h}
	if _, err := n.Exec("ip", "link", "set", "lo", "up"); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Close deletes the namespace.
func (n *NS) Close() error {
	n.handle.Close()
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %w: %s", n.Name, err, out)
	}
	return nil
}

// FD is the namespace's file descriptor (for nftables.WithNetNSFd).
func (n *NS) FD() int { return int(n.handle) }

// Do runs f on an OS thread switched into the namespace. Sockets f opens
// belong to the namespace for good and can be used from any goroutine
// afterwards; processes f starts run in it. The thread is never handed back
// to the Go scheduler: the goroutine exits locked, so the runtime destroys
// the thread instead of reusing it in the wrong namespace.
func (n *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(n.handle); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", n.Name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// DialContext opens a connection from inside the namespace. It fits
// http.Transport.DialContext, whose dials run on goroutines of their own.
func (n *NS) DialContext(ctx context.Context, network, addr string) (c net.Conn, err error) {
	err = n.Do(func() error {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Command is a command that runs in the namespace.
func (n *NS) Command(args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

// ExecTimeout bounds Exec: the commands it runs (nft, iptables-save,
// apache2 -k start, drainctl forward) take well under a second.
const ExecTimeout = time.Minute

// Exec runs a command in the namespace and returns its combined output,
// killing it after ExecTimeout.
func (n *NS) Exec(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ExecTimeout)
	defer cancel()
	cmd := n.Command(args...)
	cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("killed after %v: %w", ExecTimeout, err)
	}
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s: %w: %s", n.Name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
