package nspawn

// Running commands in a container, waiting for its boots, and stopping it.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// env is the environment of the commands run in a container: the host's
// (the test's PATH, GOFLAGS, ...) has no business there.
var env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "HOME=/root"}

// Exec runs a command in the container's namespaces (all of them: mount,
// PID, network, cgroup...) through its current init, and returns its
// standard output. An error names the command, its exit status (an
// *exec.ExitError for errors.As) and its standard error. ctx bounds it:
// the whole process group is killed when ctx ends.
func (c *Container) Exec(ctx context.Context, args ...string) (string, error) {
	pid := c.InitPID()
	if pid == 0 {
		return "", fmt.Errorf("%s: %s: the container is not running", c.Name, strings.Join(args, " "))
	}
	line := append([]string{"nsenter", "-t", fmt.Sprint(pid), "-a", "env", "-i"}, env...)
	cmd := exec.CommandContext(ctx, line[0], append(line[1:], args...)...)
	// nsenter forks the command into the PID namespace: a timeout must
	// kill both.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return stdout.String(), fmt.Errorf("%s: %s: %w\n%s%s", c.Name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// Sh runs a shell script in the container (sh -c), as Exec.
func (c *Container) Sh(ctx context.Context, script string) (string, error) {
	return c.Exec(ctx, "sh", "-c", script)
}

// Unit runs a command as a transient service of the container's systemd
// (systemd-run --wait --pipe): in a cgroup of its own, under systemd's
// environment and sandboxing rather than nsenter's, and its output piped
// back.
func (c *Container) Unit(ctx context.Context, args ...string) (string, error) {
	return c.Exec(ctx, append([]string{"systemd-run", "--wait", "--pipe", "--quiet", "--collect"}, args...)...)
}

// Must is Exec bounded by timeout (a minute when 0) that fails the test
// on error.
func (c *Container) Must(t testing.TB, timeout time.Duration, args ...string) string {
	t.Helper()
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := c.Exec(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// InitPID is the host's PID of the container's init in its current
// boot; 0 while it is not running (between boots, after the end).
func (c *Container) InitPID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.boots) == 0 {
		return 0
	}
	return c.boots[len(c.boots)-1].init
}

// Boots is how many times the container was started: 1 after Boot, one
// more for every reboot.
func (c *Container) Boots() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.boots)
}

// BootID is the kernel's boot ID as the container sees it
// (/proc/sys/kernel/random/boot_id; nspawn gives each boot a new one).
func (c *Container) BootID(ctx context.Context) (string, error) {
	out, err := c.Exec(ctx, "cat", "/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(out), err
}

// Done is closed once the container is down for good: powered off,
// failed or killed. Err then says why (nil: powered off).
func (c *Container) Done() <-chan struct{} { return c.done }

// Err is why the container ended, once Done is closed: nil after a
// poweroff.
func (c *Container) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// WaitRunning waits until the current boot's systemd is running: every
// start-up job done, no unit failed (else the error lists the failed
// ones).
func (c *Container) WaitRunning(ctx context.Context) error {
	return c.WaitBoot(ctx, c.Boots())
}

// WaitBoot waits until the container's n-th boot (1 is Boot's) is
// running, as WaitRunning. It fails at once if the container is already
// past it (a boot more than the test expected) or ends.
func (c *Container) WaitBoot(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		boots, changed := len(c.boots), c.changed
		var b *boot
		if boots > 0 {
			b = c.boots[boots-1]
		}
		c.mu.Unlock()
		switch {
		case boots > n:
			return fmt.Errorf("%s: waiting for boot %d, but it is in boot %d", c.Name, n, boots)
		case boots == n && b.init != 0:
			err := c.waitSystemd(ctx, b)
			if err == nil || c.InitPID() == b.init {
				return err
			}
			continue // that boot ended meanwhile: see why
		}
		select {
		case <-changed:
		case <-c.done:
			if err := c.Err(); err != nil {
				return fmt.Errorf("%s: ended before boot %d ran: %w", c.Name, n, err)
			}
			return fmt.Errorf("%s: powered off before boot %d ran", c.Name, n)
		case <-ctx.Done():
			return fmt.Errorf("%s: boot %d not running: %w", c.Name, n, ctx.Err())
		}
	}
}

// waitSystemd runs systemctl is-system-running --wait in boot b, again
// while its systemd does not answer yet (its bus is not up).
func (c *Container) waitSystemd(ctx context.Context, b *boot) error {
	for {
		out, err := c.Exec(ctx, "systemctl", "is-system-running", "--wait")
		state := strings.TrimSpace(out)
		switch {
		case state == "running":
			id, err := c.BootID(ctx)
			if err != nil {
				return err
			}
			c.mu.Lock()
			b.id = id
			c.mu.Unlock()
			return nil
		case state == "degraded":
			failed, _ := c.Exec(ctx, "systemctl", "--failed", "--no-legend", "--plain")
			return fmt.Errorf("%s: systemd is degraded; failed units:\n%s", c.Name, failed)
		case ctx.Err() != nil:
			return fmt.Errorf("%s: systemd not running (%q): %w", c.Name, state, ctx.Err())
		case c.InitPID() != b.init:
			return fmt.Errorf("%s: the boot ended before it ran: %w", c.Name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Reboot reboots the container (systemctl reboot) and waits until its
// next boot is running.
func (c *Container) Reboot(ctx context.Context) error {
	n := c.Boots()
	if _, err := c.Exec(ctx, "systemctl", "reboot"); err != nil && c.InitPID() != 0 {
		return err
	}
	return c.WaitBoot(ctx, n+1)
}

// Stop powers the container off (systemctl poweroff) and waits until
// nspawn exits; when ctx ends first it kills the container by PID.
// The test's cleanup removes the rest.
func (c *Container) Stop(ctx context.Context) error {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	if c.InitPID() != 0 {
		// The connection may drop as systemd goes down: judge by the exit.
		_, _ = c.Exec(ctx, "systemctl", "poweroff")
	}
	select {
	case <-c.done:
		return c.Err()
	case <-ctx.Done():
		if pid := c.InitPID(); pid != 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		<-c.done
		return fmt.Errorf("%s: not powered off (killed): %w", c.Name, ctx.Err())
	}
}

// Main runs a test binary's tests and removes the root's cache if the
// binary made one: os.Exit(nspawn.Main(m)) in TestMain.
func Main(m *testing.M) int {
	code := m.Run()
	RemoveCache()
	return code
}

// CopyIn copies a host file into the container's root at path (a path
// inside the container), with mode. It writes to the root on the host:
// not under the container's tmpfs mounts (/tmp, /run), which hide it.
func (c *Container) CopyIn(src, path string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("copy into %s: %w", c.Name, err)
	}
	if err := os.WriteFile(c.Dir+path, b, mode); err != nil {
		return fmt.Errorf("copy into %s: %w", c.Name, err)
	}
	return nil
}
