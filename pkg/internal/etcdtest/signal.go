package etcdtest

import (
	"errors"
	"os"
	"syscall"
)

// Stop freezes the member (SIGSTOP): it holds its connections but
// answers nothing, neither its clients nor its peers, as a hung or
// partitioned member does. Cont lets it go on.
func (m *Member) Stop() error { return m.signal(syscall.SIGSTOP) }

// Cont resumes a member frozen by Stop.
func (m *Member) Cont() error { return m.signal(syscall.SIGCONT) }

func (m *Member) signal(sig os.Signal) error {
	if m.cmd == nil || m.cmd.Process == nil {
		return errors.New("etcd " + m.Name + " is not running")
	}
	return m.cmd.Process.Signal(sig)
}
