package lab

import (
	"fmt"
	"os/exec"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// ns is one network namespace of the lab.
type ns struct {
	name   string
	handle netns.NsHandle
}

func newNS(name string) (*ns, error) {
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		exec.Command("ip", "netns", "del", name).Run()
		return nil, err
	}
	n := &ns{name: name, handle: h}
	if _, err := n.exec("ip", "link", "set", "lo", "up"); err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

func (n *ns) close() {
	n.handle.Close()
	exec.Command("ip", "netns", "del", n.name).Run()
}

// do runs f on a thread inside the namespace; the thread is never reused.
func (n *ns) do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(n.handle); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

func (n *ns) cmd(args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.name}, args...)...)
}

func (n *ns) exec(args ...string) (string, error) {
	out, err := n.cmd(args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s: %v: %s", n.name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
