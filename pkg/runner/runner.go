// Package runner runs the web server's config test and graceful restart:
// shell commands (Apache by default; nginx, a systemd unit, anything), each
// with a timeout, keeping their output for the operator.
package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Defaults for Apache on Debian. The restart command is chosen when the
// agent starts (DetectRestart) unless configured.
const (
	DefaultConfigTest = "apache2ctl -t"
	// AutoRestart asks DetectRestart to choose.
	AutoRestart = "auto"
	// SystemdRestart reloads Apache through systemd: the new children are
	// in apache2.service's cgroup, whatever runs the command.
	SystemdRestart = "systemctl reload apache2.service"
	// ApachectlRestart is Apache's own graceful restart, for hosts where
	// systemd does not run Apache.
	ApachectlRestart = "apache2ctl -k graceful"
)

// DetectRestart chooses Apache's graceful restart command, and says why
// (WebServer.Reload).
func DetectRestart(ctx context.Context) (cmd, reason string) {
	return Presets[Apache].Reload(ctx)
}

// detectRestart is DetectRestart with systemd's run directory (present
// when systemd is PID 1) and the systemctl command as parameters.
func detectRestart(ctx context.Context, runDir, systemctl string) (cmd, reason string) {
	return Presets[Apache].reload(ctx, runDir, systemctl)
}

// Command is one shell command with a time limit.
type Command struct {
	Line string `json:"command"`
	// Timeout bounds the command: it is killed then.
	Timeout time.Duration `json:"timeout_ms"`
}

// Output is what a command printed and how it ended.
type Output struct {
	Command  string        `json:"command"`
	Output   string        `json:"output"` // stdout and stderr, the last 16 KiB
	ExitCode int           `json:"exit_code"`
	Duration time.Duration `json:"duration_ms"` // how long it ran
}

const keep = 16 << 10

// Run runs c with sh -c, in this process's environment. A non-zero
// exit, a failure to start, or the timeout is an error; the output is
// returned in every case.
func (c Command) Run(ctx context.Context) (Output, error) { return c.RunWith(ctx, nil) }

// RunWith is Run in the environment env, as exec.Cmd.Env takes it (nil:
// this process's; of two entries for one variable, the last counts). The
// environment is the caller's choice for one run, not part of the
// command: a caller that must see programs as another process would
// (doctor, the agent's PATH) says so here instead of changing its own
// environment for every goroutine.
func (c Command) RunWith(ctx context.Context, env []string) (Output, error) {
	if strings.TrimSpace(c.Line) == "" {
		return Output{}, errors.New("no command configured")
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", c.Line)
	cmd.Env = env
	// Its own process group, so a timeout kills what the shell started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err := cmd.Run()
	out := Output{Command: c.Line, Output: tail(buf.String()), ExitCode: cmd.ProcessState.ExitCode(), Duration: time.Since(start)}
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return out, fmt.Errorf("%q timed out after %v", c.Line, c.Timeout)
	case err != nil:
		return out, fmt.Errorf("%q failed (%w): %s", c.Line, err, lastLine(out.Output))
	}
	return out, nil
}

func tail(s string) string {
	if len(s) > keep {
		return "…" + s[len(s)-keep:]
	}
	return s
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
