// Package runner runs the web server's config test and graceful restart:
// shell commands (Apache by default; nginx, a systemd unit, anything), each
// with a timeout, keeping their output for the operator.
package runner

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
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
	// Only the end is kept as it comes: a command that prints 100 MB
	// must not make the agent hold 100 MB (the same writer for both, so
	// exec calls it from one goroutine at a time).
	buf := &tailBuffer{max: keep}
	cmd.Stdout, cmd.Stderr = buf, buf
	start := time.Now()
	err := cmd.Run()
	out := Output{Command: c.Line, Output: buf.String(), ExitCode: cmd.ProcessState.ExitCode(), Duration: time.Since(start)}
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return out, fmt.Errorf("%q timed out after %v", c.Line, c.Timeout)
	case err != nil:
		return out, fmt.Errorf("%q failed (%w): %s", c.Line, err, lastLine(out.Output))
	}
	return out, nil
}

// tailBuffer keeps the last max bytes written to it, in at most twice
// that much memory, and says whether it dropped any.
type tailBuffer struct {
	max     int
	b       []byte
	dropped bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.dropped = t.dropped || len(t.b) > 0 || len(p) > t.max
		t.b = append(t.b[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if len(t.b)+len(p) > 2*t.max {
		// Slide the end down once the buffer is full: every byte is
		// copied at most once more, whatever the output's length.
		keep := t.max - len(p)
		copy(t.b, t.b[len(t.b)-keep:])
		t.b, t.dropped = t.b[:keep], true
	}
	t.b = append(t.b, p...)
	return n, nil
}

// String is the end kept, "…" first when the output was longer, cut at
// a character's start. Control characters are left as the command wrote
// them: the commands are the operator's, and whoever shows the output
// escapes them (the CLI's safeText).
func (t *tailBuffer) String() string {
	s := string(t.b)
	if len(s) > t.max {
		s, t.dropped = s[len(s)-t.max:], true
	}
	if !t.dropped {
		return s
	}
	for i := 0; i < utf8.UTFMax-1 && s != "" && !utf8.RuneStart(s[0]); i++ {
		s = s[1:] // the rest of a character cut in two
	}
	return "…" + s
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
