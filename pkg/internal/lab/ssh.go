package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// SSH is how the fleet tools reach the lab's app servers: a real sshd in
// each app server's namespace, on port 22 of its address, taking root with
// a key pair the lab made. Sessions get DRAINCTL_SOCKET set to that
// server's agent, so `drainctl` over SSH talks to the right agent although
// the namespaces share one filesystem.
type SSH struct {
	Key        string // the client's private key
	KnownHosts string // the servers' host keys, as ssh wants them
	Drainctl   string // the drainctl binary on the "remote" hosts
}

// Command is the ssh command line (without the host) the fleet tools use.
func (s SSH) Command() string {
	return fmt.Sprintf("ssh -i %s -o BatchMode=yes -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o LogLevel=ERROR -l root",
		s.Key, s.KnownHosts)
}

// StartSSH starts sshd on every app server and waits until each answers.
func (l *Lab) StartSSH(ctx context.Context) (SSH, error) {
	dir := filepath.Join(l.o.Dir, "ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return SSH{}, err
	}
	s := SSH{Key: filepath.Join(dir, "id_ed25519"), KnownHosts: filepath.Join(dir, "known_hosts"), Drainctl: l.o.Binary}
	if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "drainctl-lab", "-f", s.Key).CombinedOutput(); err != nil {
		return s, fmt.Errorf("ssh-keygen: %w: %s", err, out)
	}
	pub, err := os.ReadFile(s.Key + ".pub")
	if err != nil {
		return s, err
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, pub, 0o600); err != nil {
		return s, err
	}
	// sshd's privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return s, err
	}
	var known strings.Builder
	for _, w := range l.Webs {
		hostKey := filepath.Join(w.dir, "ssh_host_ed25519_key")
		if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
			return s, fmt.Errorf("ssh-keygen: %w: %s", err, out)
		}
		hpub, err := os.ReadFile(hostKey + ".pub")
		if err != nil {
			return s, err
		}
		fmt.Fprintf(&known, "%s %s", w.Addr, hpub)
		conf := filepath.Join(w.dir, "sshd_config")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(`Port 22
ListenAddress %s
HostKey %s
PidFile %s
AuthorizedKeysFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
SetEnv DRAINCTL_SOCKET=%s
`, w.Addr, hostKey, filepath.Join(w.dir, "sshd.pid"), authorized, w.Socket)), 0o600); err != nil {
			return s, err
		}
		cmd := w.ns.Command("/usr/sbin/sshd", "-D", "-e", "-f", conf)
		logf, err := os.Create(filepath.Join(w.dir, "sshd.log"))
		if err != nil {
			return s, err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return s, fmt.Errorf("sshd in %s: %w", w.Name, err)
		}
		l.pids = append(l.pids, cmd.Process.Pid)
		go cmd.Wait()
		addr := w.Addr + ":22"
		if !waitFor(func() bool {
			c, err := l.lb.DialContext(ctx, "tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		}) {
			b, _ := os.ReadFile(logf.Name())
			return s, fmt.Errorf("sshd of %s does not answer: %s", w.Name, b)
		}
	}
	return s, os.WriteFile(s.KnownHosts, []byte(known.String()), 0o600)
}

// Command is a command that runs in the load balancer's namespace, where
// the app servers' addresses are reachable: the fleet tools' controller.
func (l *Lab) Command(ctx context.Context, args ...string) *exec.Cmd {
	c := l.lb.Command(args...)
	return exec.CommandContext(ctx, c.Path, c.Args[1:]...)
}

// BreakConfig makes w's Apache configuration fail its config test (an
// unknown directive), or mends it.
func (w *Web) BreakConfig(broken bool) error {
	b, err := os.ReadFile(w.conf)
	if err != nil {
		return err
	}
	const bad = "\nNoSuchDirective on\n"
	text := strings.TrimSuffix(string(b), bad)
	if broken {
		text += bad
	}
	return os.WriteFile(w.conf, []byte(text), 0o644)
}
