package supervise

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// child is a /bin/sh script run by Run in the background. The script
// first writes its PID (its process group's) to a file: if the test
// ends before Run returns, the group is killed by it.
type child struct {
	t      *testing.T
	dir    string // the script's, where its $1 is
	log    string
	done   chan Result
	events []Event // Notify's, read once done
	ended  bool
}

// start runs script under Run with o (its Log, if nil, a new file; its
// Notify, if nil, recording into c.events). $1 in the script is a path
// under the test's directory it may wait for (see create).
func start(t *testing.T, script string, o Options) *child {
	t.Helper()
	dir := t.TempDir()
	c := &child{t: t, dir: dir, done: make(chan Result, 1)}
	if o.Log == nil {
		f, err := os.OpenFile(filepath.Join(dir, "run.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		o.Log = f
	}
	c.log = o.Log.Name()
	if o.Notify == nil {
		o.Notify = func(e Event) { c.events = append(c.events, e) }
	}
	pidFile := filepath.Join(dir, "pid")
	args := []string{"/bin/sh", "-c", `echo $$ >"$0"; ` + script, pidFile, filepath.Join(dir, "go")}
	go func() { c.done <- Run(args, o) }()
	t.Cleanup(func() {
		if c.ended {
			return
		}
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
				syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its command was killed")
		}
	})
	return c
}

// result waits (5 s at most) for Run's result.
func (c *child) result() Result {
	c.t.Helper()
	select {
	case r := <-c.done:
		c.ended = true
		return r
	case <-time.After(5 * time.Second):
		c.t.Fatal("the command did not end in 5s")
	}
	return Result{}
}

// waitLog waits (5 s at most) for the log to hold text.
func (c *child) waitLog(text string) {
	c.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(c.log); strings.Contains(string(b), text) {
			return
		}
	}
	c.t.Fatalf("the log has no %q after 5s", text)
}

// create makes the script's $1, which it may be waiting for.
func (c *child) create() {
	c.t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, "go"), nil, 0o600); err != nil {
		c.t.Fatal(err)
	}
}

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		script string
		want   Result
	}{
		{"echo done", Result{ExitCode: 0, Output: "done\n"}},
		{"echo out; echo err >&2; exit 7", Result{ExitCode: 7, Output: "out\nerr\n"}},
		{"exit 255", Result{ExitCode: 255}},
	} {
		if got := start(t, tc.script, Options{}).result(); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.script, got, tc.want)
		}
	}
}

// A command killed by a signal has exit code -1 and the signal's name.
func TestKilledBySignal(t *testing.T) {
	for sig, want := range map[string]string{"KILL": "killed", "TERM": "terminated"} {
		got := start(t, "echo bye; kill -"+sig+" $$", Options{}).result()
		if got != (Result{ExitCode: -1, Signal: want, Output: "bye\n"}) {
			t.Errorf("kill -%s: %+v", sig, got)
		}
	}
}

// A command that cannot be started is exit code -1, with why as its
// output.
func TestCommandNotFound(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "run.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for args, want := range map[string]string{
		"drainctl-no-such-command": "executable file not found in $PATH",
		"/nonexistent/command":     "no such file or directory",
	} {
		got := Run([]string{args, "arg"}, Options{Log: f})
		if got.ExitCode != -1 || got.Signal != "" || !strings.Contains(got.Output, want) {
			t.Errorf("%s: %+v, want exit -1 and %q", args, got, want)
		}
	}
	if got := Run(nil, Options{Log: f}); got.ExitCode != -1 {
		t.Errorf("no command: %+v", got)
	}
}

// The first signal relayed reaches the command, which decides how to
// stop: here, with a message and exit status 3.
func TestRelayedSignalReachesTheCommand(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		name := sig.String()
		sigs := make(chan os.Signal, 1)
		trap := map[syscall.Signal]string{syscall.SIGINT: "INT", syscall.SIGTERM: "TERM"}[sig]
		c := start(t, "trap 'echo got "+trap+"; exit 3' "+trap+"; echo ready; while :; do sleep 0.05; done", Options{Signals: sigs})
		c.waitLog("ready")
		sigs <- sig
		// The shell may say a child (its sleep) was Terminated too.
		got := c.result()
		if got.ExitCode != 3 || got.Signal != "" || !strings.HasPrefix(got.Output, "ready\n") || !strings.HasSuffix(got.Output, "got "+trap+"\n") {
			t.Errorf("%s: %+v", name, got)
		}
		if want := []Event{{Kind: Relayed, Signal: sig}}; !slices.Equal(c.events, want) {
			t.Errorf("%s: events %+v, want %+v", name, c.events, want)
		}
	}
}

// A second signal kills the command, which ignored the first.
func TestSecondSignalKills(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	c := start(t, "trap 'echo got INT' INT; echo ready; while :; do sleep 0.05; done", Options{Signals: sigs})
	c.waitLog("ready")
	sigs <- syscall.SIGINT
	c.waitLog("got INT")
	sigs <- syscall.SIGINT
	got := c.result()
	if got.ExitCode != -1 || got.Signal != "killed" || got.Output != "ready\ngot INT\n" {
		t.Errorf("%+v", got)
	}
	want := []Event{{Kind: Relayed, Signal: syscall.SIGINT}, {Kind: Killing, Signal: syscall.SIGINT}}
	if !slices.Equal(c.events, want) {
		t.Errorf("events %+v, want %+v", c.events, want)
	}
}

// The TTL sends SIGTERM; a command that goes on gets SIGKILL after the
// grace, not before.
func TestTTLTermsThenKills(t *testing.T) {
	const ttl, grace = 200 * time.Millisecond, 600 * time.Millisecond
	t0 := time.Now()
	c := start(t, "trap 'echo got TERM' TERM; echo ready; while :; do sleep 0.05; done", Options{TTL: ttl, Grace: grace})
	got := c.result()
	took := time.Since(t0)
	if got.ExitCode != -1 || got.Signal != "killed" || !strings.HasPrefix(got.Output, "ready\n") || !strings.Contains(got.Output, "got TERM\n") {
		t.Errorf("%+v", got)
	}
	if took < ttl+grace {
		t.Errorf("killed after %v, before the TTL and the grace (%v)", took, ttl+grace)
	}
	if want := []Event{{Kind: TimedOut, Signal: syscall.SIGTERM}}; !slices.Equal(c.events, want) {
		t.Errorf("events %+v, want %+v", c.events, want)
	}
}

// A command that stops on the TTL's SIGTERM is not waited for the grace.
func TestTTLTermEnds(t *testing.T) {
	t0 := time.Now()
	got := start(t, "echo ready; sleep 5", Options{TTL: 100 * time.Millisecond}).result()
	if got.ExitCode != -1 || got.Signal != "terminated" || got.Output != "ready\n" {
		t.Errorf("%+v", got)
	}
	if took := time.Since(t0); took > 3*time.Second {
		t.Errorf("took %v", took)
	}
}

// lockedBuffer is a bytes.Buffer safe to read while Run writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The output is shown as it comes, while the command runs, and only
// this run's: what an appended log held before is not shown nor kept.
func TestOutputShownAsItComes(t *testing.T) {
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "run.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("an earlier run\n")
	show := &lockedBuffer{}
	c := start(t, `echo first; while [ ! -e "$1" ]; do sleep 0.05; done; echo second`, Options{Log: f, Show: show})
	for deadline := time.Now().Add(5 * time.Second); show.String() != "first\n"; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("shown while running: %q, want first", show.String())
		}
	}
	c.create()
	got := c.result()
	if got.Output != "first\nsecond\n" || show.String() != "first\nsecond\n" {
		t.Errorf("kept %q, shown %q", got.Output, show.String())
	}
}

// The output kept is its end, KeepOutput bytes, ending with what the
// command printed last; all of it is shown.
func TestTailIsTheEnd(t *testing.T) {
	var show bytes.Buffer
	got := start(t, `i=0; while [ $i -lt 3000 ]; do echo "line $i"; i=$((i+1)); done`, Options{Show: &show}).result()
	if got.ExitCode != 0 || len(got.Output) != KeepOutput || !strings.HasSuffix(got.Output, "\nline 2998\nline 2999\n") {
		t.Errorf("exit %d, kept %d bytes ending %q", got.ExitCode, len(got.Output), got.Output[max(0, len(got.Output)-30):])
	}
	if s := show.String(); !strings.HasPrefix(s, "line 0\nline 1\n") || !strings.HasSuffix(s, got.Output) {
		t.Errorf("shown %d bytes, starting %q", len(s), s[:min(len(s), 30)])
	}
}

// Quiet (no Show, as for --json when the caller shows nothing): the
// output is still in the log and kept.
func TestQuiet(t *testing.T) {
	c := start(t, "echo quietly", Options{})
	if got := c.result(); got.Output != "quietly\n" {
		t.Errorf("%+v", got)
	}
	if b, _ := os.ReadFile(c.log); string(b) != "quietly\n" {
		t.Errorf("log %q", b)
	}
}
