package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runLogged turns supervise's result and events into the exit's
// CommandDone and the operator's messages, and shows the output on
// stdout, or on stderr when quiet (--json: stdout is for JSON).
func TestRunLoggedMessagesAndQuiet(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		dir := t.TempDir()
		log, err := os.OpenFile(filepath.Join(dir, "run.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { log.Close() })
		stdout, stderr := captureStd(t, dir)
		var said []string
		say := func(format string, a ...any) { said = append(said, fmt.Sprintf(format, a...)) }
		// Ctrl-C once the script has set its trap. It ends on it, or
		// on the --ttl's SIGTERM if that failed, well within the test's
		// time.
		sigs := make(chan os.Signal, 1)
		go func() {
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if b, _ := os.ReadFile(log.Name()); strings.Contains(string(b), "start") {
					break
				}
			}
			sigs <- syscall.SIGINT
		}()
		script := "trap 'echo got INT; exit 4' INT; echo start; while :; do sleep 0.05; done"
		done := runLogged([]string{"/bin/sh", "-c", script}, log, 3*time.Second, sigs, quiet, say)
		os.Stdout, os.Stderr = stdout.orig, stderr.orig
		if done.Command != "/bin/sh -c '"+strings.ReplaceAll(script, "'", `'\''`)+"'" || done.ExitCode != 4 || done.Signal != "" || !strings.HasSuffix(done.Output, "got INT\n") {
			t.Errorf("quiet %v: %+v", quiet, done)
		}
		want := "drainctl: interrupt: passed on to " + done.Command + "; waiting for it to end (again to kill it)"
		if len(said) != 1 || said[0] != want {
			t.Errorf("quiet %v: said %q, want %q", quiet, said, want)
		}
		shown, other := stdout.read(t), stderr.read(t)
		if quiet {
			shown, other = other, shown
		}
		if !strings.HasPrefix(shown, "start\n") || other != "" {
			t.Errorf("quiet %v: shown %q, on the other stream %q", quiet, shown, other)
		}
	}
}

// std is a file standing in for os.Stdout or os.Stderr.
type std struct {
	f, orig *os.File
}

// captureStd points os.Stdout and os.Stderr at files in dir (restored
// at the test's end).
func captureStd(t *testing.T, dir string) (stdout, stderr *std) {
	t.Helper()
	stdout, stderr = &std{orig: os.Stdout}, &std{orig: os.Stderr}
	for _, s := range []*std{stdout, stderr} {
		f, err := os.CreateTemp(dir, "std-*")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		s.f = f
	}
	t.Cleanup(func() { os.Stdout, os.Stderr = stdout.orig, stderr.orig })
	os.Stdout, os.Stderr = stdout.f, stderr.f
	return stdout, stderr
}

func (s *std) read(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(s.f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
