package integration

// Tests of the real agent binary in network namespaces.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
	"github.com/drainctl/drainctl/pkg/state"
)

// host is an app server namespace with an HTTP server on :80 and a
// directory for the agent's socket, state and marker files.
type host struct {
	ns, cli *nstest.NS
	dir     string
	sock    string
}

func newHost(t testing.TB) *host {
	t.Helper()
	h := newBareHost(t)
	h.ns.ServeHTTP(t, ":80")
	return h
}

// newBareHost is a host whose web server is not running.
func newBareHost(t testing.TB) *host {
	t.Helper()
	h := &host{}
	h.ns, h.cli = nstest.Pair(t, "ag")
	// Straight under /tmp, mode 0755: the permission test reaches the
	// socket as nobody, and t.TempDir's parent is 0700.
	dir, err := os.MkdirTemp("", "drainctl-agent-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	h.dir = dir
	h.sock = filepath.Join(h.dir, "agent.sock")
	return h
}

// balancer plays a load balancer's TCP health check from the client
// namespace: a connection to the forward port every interval, until the
// test ends. It returns the client's address.
func (h *host) balancer(t testing.TB, interval time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			dctx, dcancel := context.WithTimeout(ctx, interval)
			if c, err := h.cli.DialContext(dctx, "tcp", net.JoinHostPort(nstest.Srv4, "81")); err == nil {
				c.Close()
			}
			dcancel()
			select {
			case <-ctx.Done():
			case <-time.After(interval):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return nstest.Cli4
}

// settings are the agent's flags on this host: fast test settings, then
// extra (a later flag wins). doctor takes the same.
func (h *host) settings(extra ...string) []string {
	return append([]string{"--socket", h.sock,
		"--state-dir", filepath.Join(h.dir, "state"), "--reconcile-interval", "200ms",
		"--min-wait", "300ms", "--quiet", "300ms", "--poll", "100ms", "--idle-after", "1s", "--deadline", "10s",
		"--configtest-cmd", "true", "--restart-cmd", "touch " + h.marker("restarted"),
		"--ready-timeout", "5s"}, extra...)
}

// agent starts `drainctl agent` in the namespace with fast test settings
// (plus extra flags) and waits until its socket answers.
func (h *host) agent(t testing.TB, extra ...string) *exec.Cmd {
	t.Helper()
	args := append([]string{"netns", "exec", h.ns.Name, binary, "agent"}, h.settings(extra...)...)
	cmd := exec.Command("ip", args...)
	cmd.Env = testEnv
	log, _ := os.Create(filepath.Join(h.dir, "agent.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("unix", h.sock); err == nil {
			c.Close()
			return cmd
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(h.dir, "agent.log"))
	t.Fatalf("agent did not start:\n%s", b)
	return nil
}

func (h *host) marker(name string) string { return filepath.Join(h.dir, name) }

func (h *host) exists(name string) bool {
	_, err := os.Stat(h.marker(name))
	return err == nil
}

// ctl runs a CLI command against this host's agent.
func (h *host) ctl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return drainctl(t, nil, append([]string{"--socket", h.sock}, args...)...)
}

func (h *host) status(t *testing.T) apitype.Status {
	t.Helper()
	out, stderr, code := h.ctl(t, "status", "--json")
	var st apitype.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 {
		t.Fatalf("status: exit %d %v\n%s%s", code, err, out, stderr)
	}
	return st
}

// phaseOnDisk reads the state file directly (what a killed agent left).
func (h *host) phaseOnDisk() (state.Op, state.Phase) {
	b, err := os.ReadFile(filepath.Join(h.dir, "state", "state.json"))
	if err != nil {
		return "", ""
	}
	var st state.State
	json.Unmarshal(b, &st)
	return st.Op, st.Phase
}

func (h *host) waitPhase(t *testing.T, op state.Op, phase state.Phase) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if o, p := h.phaseOnDisk(); o == op && p == phase {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	o, p := h.phaseOnDisk()
	t.Fatalf("state never reached %s/%s (last %s/%s)", op, phase, o, p)
}

func withdrawn(st apitype.Status) bool {
	return len(st.Forwards) == 1 && st.Forwards[0].Applied && st.Forwards[0].Withdrawn
}

func inService(st apitype.Status) bool {
	return st.State.Phase == apitype.PhaseInService && len(st.Forwards) == 1 && api.ForwardState(st.Forwards[0]) == "in-service"
}

// TestAgentKilledAtEachStepConverges kills the agent with SIGKILL while an
// operation is at a given step, starts it again, and checks where the
// server ends up (the table in pkg/maintenance's doc).
func TestAgentKilledAtEachStepConverges(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cmd       []string
		extra     []string
		op        state.Op
		at        state.Phase
		wantPhase state.Phase
		restarted bool // the restart command ran
	}{
		{"restart/draining", []string{"restart"}, []string{"--min-wait", "30s", "--deadline", "60s"}, state.OpRestart, state.Draining, state.InService, false},
		{"restart/configtest", []string{"restart"}, []string{"--configtest-cmd", "sleep 30"}, state.OpRestart, state.ConfigTest, state.InService, false},
		{"restart/restarting", []string{"restart"}, []string{"--restart-cmd", "sleep 30"}, state.OpRestart, state.Restarting, state.InService, false},
		{"restart/ready-check", []string{"restart"}, []string{"--ready-url", "http://127.0.0.1:8080/"}, state.OpRestart, state.ReadyCheck, state.InService, true},
		{"enter/draining", []string{"maintenance", "enter"}, []string{"--min-wait", "30s", "--deadline", "60s"}, state.OpEnter, state.Draining, state.Held, false},
		{"held", []string{"maintenance", "enter"}, nil, state.OpNone, state.Held, state.Held, false},
		{"exit/ready-check", []string{"maintenance", "exit"}, []string{"--ready-url", "http://127.0.0.1:8080/"}, state.OpExit, state.ReadyCheck, state.InService, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHost(t)
			slow := 0
			if strings.Contains(strings.Join(tc.extra, " "), ":8080") {
				// A readiness endpoint that answers 200 after 1.5 s at first
				// (the window to kill the agent in), then at once.
				var mu sync.Mutex
				var ln net.Listener
				h.ns.Do(func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:8080"); return err })
				srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					slow++
					n := slow
					mu.Unlock()
					if n == 1 {
						time.Sleep(1500 * time.Millisecond)
					}
				})}
				go srv.Serve(ln)
				t.Cleanup(func() { srv.Close() })
			}
			if tc.op == state.OpExit {
				a := h.agent(t)
				if _, stderr, code := h.ctl(t, "maintenance", "enter"); code != 0 {
					t.Fatal(stderr)
				}
				a.Process.Kill()
				a.Wait()
			}
			a := h.agent(t, tc.extra...)
			go h.ctl(t, tc.cmd...) // fails when the agent dies: expected
			h.waitPhase(t, tc.op, tc.at)
			if err := a.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			a.Wait()
			// Start again with plain settings: converging must not depend
			// on what the slow commands were.
			h.agent(t)
			deadline := time.Now().Add(10 * time.Second)
			var st apitype.Status
			for time.Now().Before(deadline) {
				st = h.status(t)
				if !st.Running && st.State.Phase == apitype.Phase(tc.wantPhase) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if st.State.Phase != apitype.Phase(tc.wantPhase) || st.State.Op != apitype.OpNone {
				t.Fatalf("after kill -9 at %s: %s/%s, want %s", tc.at, st.State.Op, st.State.Phase, tc.wantPhase)
			}
			switch tc.wantPhase {
			case state.InService:
				if !inService(st) {
					t.Fatalf("in service but the forward is %+v", st.Forwards)
				}
			case state.Held:
				if !withdrawn(st) || st.State.Holder == nil {
					t.Fatalf("held but forward %+v, holder %+v", st.Forwards, st.State.Holder)
				}
			}
			if h.exists("restarted") != tc.restarted {
				t.Fatalf("restart command ran: %v, want %v (resume must never restart the web server)", h.exists("restarted"), tc.restarted)
			}
		})
	}
}

func TestAgentRepairsAFlushedRuleset(t *testing.T) {
	h := newHost(t)
	h.agent(t)
	for _, held := range []bool{false, true} {
		if held {
			h.ctl(t, "maintenance", "enter")
		}
		h.ns.MustExec(t, "nft", "flush", "ruleset")
		ok := false
		for i := 0; i < 50 && !ok; i++ { // up to 5 s; the interval is 200 ms
			time.Sleep(100 * time.Millisecond)
			st := h.status(t)
			ok = (held && withdrawn(st)) || (!held && inService(st))
		}
		if !ok {
			t.Fatalf("held=%v: the forward did not come back after nft flush ruleset: %+v", held, h.status(t).Forwards)
		}
	}
}

func TestAgentTwoConcurrentEntersOneWins(t *testing.T) {
	h := newHost(t)
	h.agent(t, "--min-wait", "1500ms")
	codes := make(chan int, 2)
	for i := 0; i < 2; i++ {
		go func() {
			_, _, code := h.ctl(t, "maintenance", "enter", "--reason", fmt.Sprint("job ", i))
			codes <- code
		}()
	}
	a, b := <-codes, <-codes
	if oneBusy := a == 0 && b == exitBusy || a == exitBusy && b == 0; !oneBusy {
		t.Fatalf("exit codes %d and %d, want one 0 and one %d (busy)", a, b, exitBusy)
	}
	// Entering again once held is not busy: it changes nothing.
	if out, _, code := h.ctl(t, "maintenance", "enter"); code != 0 || !strings.Contains(out, "already in maintenance") {
		t.Fatalf("third enter: exit %d: %s", code, out)
	}
}

func TestAgentSocketRefusesUsersOutsideTheGroup(t *testing.T) {
	nstest.RequireCmd(t, "setpriv")
	h := newHost(t)
	h.agent(t, "--socket-group", "nogroup")
	fi, err := os.Stat(h.sock)
	// 0666: anyone connects, the agent judges each caller's role.
	if err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("socket mode %v, %v; want 0666", fi.Mode(), err)
	}
	as := func(gid string) (string, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "setpriv", "--reuid=65534", "--regid="+gid, "--clear-groups", binary, "--socket", h.sock, "status")
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	if out, code := as("65534"); code != 0 {
		t.Fatalf("member of the socket's group refused: exit %d: %s", code, out)
	}
	out, code := as("12345")
	if code != exitForbidden || !strings.Contains(out, "join the nogroup group (sudo usermod -aG nogroup USER") {
		t.Fatalf("outsider: exit %d: %s", code, out)
	}
}

func TestAgentBadConfigChangesNothing(t *testing.T) {
	h := newHost(t)
	cfg := filepath.Join(h.dir, "drainctl.yaml")
	os.WriteFile(cfg, []byte("forwards:\n  - 81:80\ndrain:\n  deadline: soon\n"), 0o644)
	before := h.ns.MustExec(t, "nft", "list", "ruleset")
	_, stderr, code := drainctl(t, h.ns, "agent", "--config", cfg, "--socket", h.sock, "--state-dir", filepath.Join(h.dir, "state"))
	if code != exitUsage || !strings.Contains(stderr, `line 4: "soon" is not a duration`) {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(h.sock); err == nil {
		t.Fatal("the socket was created")
	}
	if after := h.ns.MustExec(t, "nft", "list", "ruleset"); after != before {
		t.Fatalf("the ruleset changed:\n%s", after)
	}
	if _, stderr, code := drainctl(t, nil, "config", "check", "--config", cfg); code != exitUsage || !strings.Contains(stderr, "line 4") {
		t.Fatalf("config check: exit %d: %s", code, stderr)
	}
}

func TestAgentFailedConfigTestRestartsNothing(t *testing.T) {
	h := newHost(t)
	h.agent(t, "--configtest-cmd", "echo 'AH00526: Syntax error on line 7' >&2; exit 1")
	out, stderr, code := h.ctl(t, "restart")
	if code != exitConfigTest || !strings.Contains(out+stderr, "AH00526: Syntax error on line 7") || !strings.Contains(stderr, "nothing was restarted") {
		t.Fatalf("exit %d:\n%s%s", code, out, stderr)
	}
	if h.exists("restarted") {
		t.Fatal("the restart command ran after a failed config test")
	}
	if st := h.status(t); !inService(st) {
		t.Fatalf("after a failed config test the server should be back: %+v", st)
	}
}

func TestAgentFailedReadinessStaysOut(t *testing.T) {
	h := newHost(t)
	h.agent(t, "--ready-url", "http://127.0.0.1:8099/", "--ready-timeout", "1s")
	_, stderr, code := h.ctl(t, "restart")
	if code != exitNotReady || !strings.Contains(stderr, "stays out of rotation") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	st := h.status(t)
	if st.State.Phase != apitype.PhaseHeld || !withdrawn(st) || !strings.Contains(st.State.LastError, "connection refused") {
		t.Fatalf("after failed readiness: %+v", st)
	}
	if _, _, code := h.ctl(t, "maintenance", "exit"); code != exitNotReady {
		t.Fatalf("exit while still not ready: exit %d, want %d", code, exitNotReady)
	}
}

func TestAgentEventStream(t *testing.T) {
	h := newHost(t)
	h.agent(t)
	cmd := exec.Command(binary, "--socket", h.sock, "events", "--json")
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	time.Sleep(200 * time.Millisecond) // subscribed before the operation starts
	if _, stderr, code := h.ctl(t, "maintenance", "enter", "--reason", "watch me"); code != 0 {
		t.Fatal(stderr)
	}
	time.Sleep(200 * time.Millisecond)
	stopWithin(t, cmd, 5*time.Second)
	var phases []string
	drains, warned := 0, false
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var l apitype.Line
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.Event == nil {
			t.Fatalf("bad event line %q: %v", line, err)
		}
		ev := l.Event
		switch {
		case ev.Drain != nil:
			drains++
		case ev.Phase == apitype.PhaseDraining && strings.HasPrefix(ev.Message, "no load balancer health-checks port 81"):
			warned = true // no load balancer in this test
		default:
			phases = append(phases, string(ev.Phase))
		}
	}
	if strings.Join(phases, ",") != "withdrawing,draining,held" || drains == 0 || !warned {
		t.Fatalf("events: phases %v, %d drain events\n%s", phases, drains, out.String())
	}
}

func TestAgentTTLEndsTheMaintenance(t *testing.T) {
	h := newHost(t)
	h.agent(t)
	if _, stderr, code := h.ctl(t, "maintenance", "enter", "--ttl", "1s", "--reason", "short"); code != 0 {
		t.Fatal(stderr)
	}
	if st := h.status(t); st.State.Phase != apitype.PhaseHeld || st.State.Holder == nil || st.State.Holder.Until.IsZero() {
		t.Fatalf("after enter: %+v", st.State)
	}
	for i := 0; i < 50; i++ { // up to 5 s: TTL 1 s, reconcile every 200 ms
		if st := h.status(t); inService(st) {
			if n := len(st.State.History); n == 0 || !strings.Contains(st.State.History[n-3].Note, "TTL expired") {
				t.Fatalf("back in service, but the history does not say why: %+v", st.State.History)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("TTL passed, server still %+v", h.status(t).State)
}

// connects reports whether a new connection from the client host to
// port reaches the web server.
func (h *host) connects(t *testing.T, port int) bool {
	t.Helper()
	var c net.Conn
	err := h.cli.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", fmt.Sprintf("%s:%d", nstest.Srv4, port), 2*time.Second)
		return err
	})
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
	buf := make([]byte, 12)
	n, _ := c.Read(buf)
	return strings.HasPrefix(string(buf[:n]), "HTTP/1.")
}

// stop sends SIGTERM (systemctl stop) and waits for the agent to exit.
func stop(t *testing.T, a *exec.Cmd) {
	t.Helper()
	a.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- a.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("agent still running 15 s after SIGTERM")
	}
}

// The bug report's case 1, through the agent: held with nftables (auto on
// a clean host), then an upgrade restarts the agent after iptables-legacy
// rules appeared. The agent keeps the backend its state records, so the
// server stays held, and comes back for real on exit.
func TestAgentKeepsItsBackendWhenTheHostChanges(t *testing.T) {
	nstest.RequireCmd(t, "iptables-legacy")
	h := newHost(t)
	a := h.agent(t)
	if _, stderr, code := h.ctl(t, "maintenance", "enter", "--reason", "kernel"); code != 0 {
		t.Fatal(stderr)
	}
	stop(t, a)
	for i := 0; i < 5; i++ {
		h.ns.MustExec(t, "iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", fmt.Sprint(2000+i), "-j", "ACCEPT")
	}
	h.agent(t)
	st := h.status(t)
	if st.Backend != "nftables" || st.State.Backend != "nftables" || st.State.Phase != apitype.PhaseHeld || !withdrawn(st) {
		t.Fatalf("after the restart: backend %s (state %s), %s, forwards %+v; want nftables, held, withdrawn", st.Backend, st.State.Backend, st.State.Phase, st.Forwards)
	}
	if h.connects(t, 81) {
		t.Fatal("held, but a new connection to :81 was served")
	}
	if _, stderr, code := h.ctl(t, "maintenance", "exit"); code != 0 {
		t.Fatal(stderr)
	}
	if !h.connects(t, 81) || !inService(h.status(t)) {
		t.Fatalf("after exit: connects=%v status=%+v", h.connects(t, 81), h.status(t))
	}
}

// SIGTERM during an operation leaves the state file as a kill -9 would:
// the phase written before the signal, no hold recorded that nobody asked
// for; the next start finishes or rolls back.
func TestAgentSIGTERMDuringAnOperation(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cmd       []string
		extra     []string
		op        state.Op
		at        state.Phase
		wantPhase state.Phase
	}{
		{"restart/ready-check", []string{"restart"}, []string{"--ready-url", "http://127.0.0.1:8099/", "--ready-timeout", "60s"}, state.OpRestart, state.ReadyCheck, state.InService},
		{"restart/draining", []string{"restart"}, []string{"--min-wait", "30s", "--deadline", "60s"}, state.OpRestart, state.Draining, state.InService},
		{"enter/draining", []string{"maintenance", "enter"}, []string{"--min-wait", "30s", "--deadline", "60s"}, state.OpEnter, state.Draining, state.Held},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHost(t)
			a := h.agent(t, tc.extra...)
			go h.ctl(t, tc.cmd...)
			h.waitPhase(t, tc.op, tc.at)
			time.Sleep(200 * time.Millisecond) // inside the step
			stop(t, a)
			b, _ := os.ReadFile(filepath.Join(h.dir, "state", "state.json"))
			var st state.State
			json.Unmarshal(b, &st)
			if st.Op != tc.op || st.Phase != tc.at || st.LastError != "" {
				t.Fatalf("after SIGTERM the state file says %s/%s, error %q; want %s/%s as before the signal, no error", st.Op, st.Phase, st.LastError, tc.op, tc.at)
			}
			h.agent(t)
			var now apitype.Status
			for i := 0; i < 100; i++ {
				if now = h.status(t); !now.Running && now.State.Phase == apitype.Phase(tc.wantPhase) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if now.State.Phase != apitype.Phase(tc.wantPhase) || now.State.LastError != "" {
				t.Fatalf("after the next start: %s, error %q; want %s", now.State.Phase, now.State.LastError, tc.wantPhase)
			}
		})
	}
}

// A forward removed from (or changed in) the config is removed when the
// agent starts: the old REDIRECT would keep answering the checks.
func TestAgentRemovesForwardsNoLongerConfigured(t *testing.T) {
	h := newHost(t)
	a := h.agent(t, "--forward", "81:80")
	if !h.connects(t, 81) {
		t.Fatal("81→80 does not forward")
	}
	stop(t, a)
	h.agent(t, "--forward", "82:80")
	if !h.connects(t, 82) {
		t.Fatal("82→80 does not forward")
	}
	if h.connects(t, 81) {
		t.Fatal("81→80, no longer configured, still forwards")
	}
	if st := h.status(t); len(st.Forwards) != 1 || st.Forwards[0].Forward.From != 82 {
		t.Fatalf("forwards %+v, want 82→80 only", st.Forwards)
	}
}

// The agent keeps every operation in its state directory: drainctl
// history shows who, why and how it ended, and it survives an agent
// restart.
func TestAgentHistory(t *testing.T) {
	h := newHost(t)
	a := h.agent(t)
	if _, stderr, code := h.ctl(t, "restart", "--reason", "config change"); code != 0 {
		t.Fatal(stderr)
	}
	// A reason that would drive a terminal is refused, and not recorded.
	if _, stderr, code := h.ctl(t, "maintenance", "enter", "--reason", "kernel\x1b[2J"); code != exitUsage || !strings.Contains(stderr, "U+001B") {
		t.Fatalf("a reason with an escape: exit %d, want %d: %s", code, exitUsage, stderr)
	}
	if _, stderr, code := h.ctl(t, "maintenance", "enter", "--reason", "kernel"); code != 0 {
		t.Fatal(stderr)
	}
	if _, _, code := h.ctl(t, "restart"); code != exitBusy {
		t.Fatalf("restart while held: exit %d", code)
	}
	stop(t, a)
	h.agent(t)
	if _, stderr, code := h.ctl(t, "maintenance", "exit"); code != 0 {
		t.Fatal(stderr)
	}
	out, stderr, code := h.ctl(t, "history", "--json")
	var entries []apitype.HistoryEntry
	if err := json.Unmarshal([]byte(out), &entries); err != nil || code != 0 {
		t.Fatalf("history --json: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Op+"/"+e.Outcome+"/"+e.Phase)
	}
	if strings.Join(got, " ") != "restart/ok/in-service enter/ok/held restart/busy/held exit/ok/in-service" {
		t.Fatalf("history: %v\n%s", got, out)
	}
	r := entries[0]
	if r.Reason != "config change" || r.ConfigTestExit == nil || *r.ConfigTestExit != 0 || r.RestartExit == nil || len(r.Phases) != 7 || r.DurationMS <= 0 {
		t.Fatalf("the restart's entry: %+v", r)
	}
	// No load balancer checks this host: both changes unconfirmed, and
	// the entry says so.
	if r.OutOfRotation != "0/0" || r.BackInRotation != "0/0" || len(r.Warnings) != 2 {
		t.Fatalf("the restart's entry: rotation %q/%q, warnings %q", r.OutOfRotation, r.BackInRotation, r.Warnings)
	}
	text, _, code := h.ctl(t, "history", "-n", "2")
	if code != 0 || strings.Count(text, "\n") != 3 || !strings.Contains(text, "exit") || strings.Contains(text, "\x1b") ||
		!strings.Contains(text, "LBS OUT/BACK") || !strings.Contains(text, " - 0/0 ") {
		t.Fatalf("history -n 2:\n%q", text)
	}
}

// The exit codes of the README's table that no other test reaches: no
// agent (4), a failed restart command (9), a drain deadline with
// --on-deadline abort (3), and where each leaves the server.
func TestAgentExitCodes(t *testing.T) {
	if _, stderr, code := drainctl(t, nil, "--socket", filepath.Join(t.TempDir(), "none.sock"), "status"); code != exitUnreachable {
		t.Fatalf("no agent: exit %d, want %d: %s", code, exitUnreachable, stderr)
	}

	h := newHost(t)
	h.agent(t, "--restart-cmd", "echo 'apache2: bad' >&2; exit 3")
	if _, stderr, code := h.ctl(t, "restart"); code != exitRestart || !strings.Contains(stderr, "apache2: bad") {
		t.Fatalf("failed restart command: exit %d, want %d: %s", code, exitRestart, stderr)
	}
	if st := h.status(t); st.State.Phase != apitype.PhaseHeld || !withdrawn(st) {
		t.Fatalf("after a failed restart command the server stays out: %+v", st)
	}

	h = newHost(t)
	h.agent(t)
	c := h.cli.Dial(t, "198.18.0.1:81")
	c.MustGet(t)
	stop := keepBusy(t, c)
	_, stderr, code := h.ctl(t, "maintenance", "enter", "--deadline", "1500ms", "--on-deadline", "abort")
	stop()
	if code != exitDeadline {
		t.Fatalf("busy server, --on-deadline abort: exit %d, want %d: %s", code, exitDeadline, stderr)
	}
	if st := h.status(t); !inService(st) || h.exists("restarted") {
		t.Fatalf("after an aborted drain the server is back and nothing restarted: %+v", st)
	}
}

// maintenance run: the command's outcome decides, whatever happens to the
// CLI: success puts the server back, failure holds it with the command's
// last line, others are busy meanwhile, Ctrl-C is passed on to the
// command and recorded, a lost terminal (SIGHUP) changes nothing.
func TestAgentMaintenanceRun(t *testing.T) {
	h := newHost(t)
	h.agent(t)
	log := filepath.Join(h.dir, "run.log")
	runGoodAndFailed(t, h, log)
	runInterrupted(t, h, log)
	runBoundedAndOrphaned(t, h, log)

	entries, _, _ := h.ctl(t, "history", "--json")
	var hist []apitype.HistoryEntry
	json.Unmarshal([]byte(entries), &hist)
	var exits []string
	for _, e := range hist {
		if e.Op == "exit" && e.CommandExit != nil {
			exits = append(exits, fmt.Sprint(*e.CommandExit))
		}
	}
	if strings.Join(exits, " ") != "0 100 1 130 0 -1" {
		t.Fatalf("the history's command exit statuses %v, want 0 100 1 130 0 -1 (the killed run recorded none):\n%s", exits, entries)
	}
}

// runGoodAndFailed: a command that succeeds brings the server back, with
// its output in the log; one that fails leaves it held with the reason,
// unless --on-failure exit.
func runGoodAndFailed(t *testing.T, h *host, log string) {
	t.Helper()
	out, stderr, code := h.ctl(t, "maintenance", "run", "--reason", "patch", "--log", log, "--", "sh", "-c", "echo step one; echo step two")
	if code != 0 || !strings.Contains(out, "step two") || !inService(h.status(t)) {
		t.Fatalf("a good command: exit %d\n%s%s", code, out, stderr)
	}
	if b, _ := os.ReadFile(log); string(b) != "step one\nstep two\n" {
		t.Fatalf("log: %q", b)
	}

	_, stderr, code = h.ctl(t, "maintenance", "run", "--log", log, "--", "sh", "-c", "echo 'E: dpkg was interrupted' >&2; exit 100")
	st := h.status(t)
	if code != exitCommand || st.State.Phase != apitype.PhaseHeld || !withdrawn(st) || !strings.Contains(st.State.Holder.Reason, "failed with exit status 100") ||
		!strings.Contains(st.State.LastError, "E: dpkg was interrupted") {
		t.Fatalf("a failed command: exit %d, %s; status %+v", code, stderr, st.State)
	}
	if _, _, code := h.ctl(t, "maintenance", "exit"); code != 0 {
		t.Fatal("an operator's exit after the failed run")
	}
	if _, _, code := h.ctl(t, "maintenance", "run", "--on-failure", "exit", "--log", log, "--", "false"); code != exitCommand || !inService(h.status(t)) {
		t.Fatalf("--on-failure exit: exit %d, status %+v", code, h.status(t).State)
	}
}

// startRun starts drainctl maintenance run of script in its own process
// group, as a terminal runs it, and waits (up to 5s) for it to say the
// command runs.
func startRun(t *testing.T, h *host, log, script string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, binary, "--socket", h.sock, "maintenance", "run", "--log", log, "--", "sh", "-c", script)
	cmd.Env = testEnv
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100 && !strings.Contains(out.String(), "running sh"); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	return cmd, &out
}

// runInterrupted: Ctrl-C reaches the CLI's process group (the terminal's
// foreground); the command, in its own group, gets it from drainctl.
// While it runs others are busy. A SIGHUP to the CLI's group is ignored.
func runInterrupted(t *testing.T, h *host, log string) {
	t.Helper()
	cmd, out := startRun(t, h, log, `trap 'echo got INT; exit 130' INT; sleep 20 & wait`)
	for _, args := range [][]string{{"restart"}, {"maintenance", "exit"}, {"maintenance", "enter"}, {"maintenance", "run", "--log", log, "--", "true"}} {
		if _, stderr, code := h.ctl(t, args...); code != exitBusy || !strings.Contains(stderr, "maintenance run of") {
			t.Errorf("%v while the command runs: exit %d: %s", args, code, stderr)
		}
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitCommand || !strings.Contains(out.String(), "got INT") {
		t.Fatalf("Ctrl-C: %v\n%s", err, out)
	}
	if st := h.status(t); st.State.Phase != apitype.PhaseHeld || !strings.Contains(st.State.Holder.Reason, "exit status 130") {
		t.Fatalf("after Ctrl-C the server stays out with the outcome: %+v", st.State)
	}
	h.ctl(t, "maintenance", "exit")

	cmd, out = startRun(t, h, log, `sleep 1; echo finished`)
	syscall.Kill(-cmd.Process.Pid, syscall.SIGHUP)
	if err := cmd.Wait(); err != nil || !inService(h.status(t)) || !strings.Contains(out.String(), "finished") {
		t.Fatalf("SIGHUP (a lost SSH session): %v\n%s", err, out)
	}
}

// runBoundedAndOrphaned: --ttl bounds the command (SIGTERM at the limit,
// counted as failed); when drainctl is killed outright (SIGKILL) the hold
// stays the command's, status says its runner is gone, and --force ends
// it.
func runBoundedAndOrphaned(t *testing.T, h *host, log string) {
	t.Helper()
	_, stderr, code := h.ctl(t, "maintenance", "run", "--ttl", "1s", "--log", log, "--", "sleep", "30")
	if st := h.status(t); code != exitCommand || st.State.Phase != apitype.PhaseHeld || !strings.Contains(st.State.Holder.Reason, "was killed by terminated") {
		t.Fatalf("a command past its --ttl: exit %d, %s; state %+v", code, stderr, st.State)
	}
	h.ctl(t, "maintenance", "exit")

	cmd, _ := startRun(t, h, log, `sleep 2`)
	cmd.Process.Kill()
	cmd.Wait()
	st := h.status(t)
	if st.State.Phase != apitype.PhaseHeld || st.State.Holder == nil || st.State.Holder.Command != "sh -c 'sleep 2'" || !st.RunnerGone {
		t.Fatalf("after the run's drainctl was killed: %+v, runner gone %v", st.State, st.RunnerGone)
	}
	if out, _, _ := h.ctl(t, "status"); !strings.Contains(out, "which is GONE") {
		t.Fatalf("status does not say the runner is gone:\n%s", out)
	}
	if _, stderr, code := h.ctl(t, "maintenance", "exit", "--force"); code != 0 || !inService(h.status(t)) {
		t.Fatalf("exit --force: exit %d %s", code, stderr)
	}
}

// The cron patch script (scripts/contrib/cron/drainctl-patch) against the
// real agent, with apt-get and apache2ctl replaced by stand-ins that log
// their calls: nothing pending changes nothing; an Apache update runs
// under maintenance run with a graceful restart; an update of other
// packages restarts nothing; a failed upgrade keeps the server out (10).
// After the updates, and with nothing pending, it asks for
// `maintenance reboot --if-required` (a stand-in answers "no reboot
// required": no reboot here), with the window when one is set; not after
// a failed upgrade, nor with DRAINCTL_PATCH_REBOOT=no.
func TestCronPatchScript(t *testing.T) {
	h := newHost(t)
	h.agent(t)
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls")
	pending := filepath.Join(bin, "pending")
	for name, script := range map[string]string{
		"apt-get": `#!/bin/sh
echo "apt-get $*" >> ` + calls + `
case "$*" in
*" -s "*|"-s "*) cat ` + pending + ` 2>/dev/null ;;
*upgrade*) [ -e ` + bin + `/fail ] && { echo "E: Sub-process /usr/bin/dpkg returned an error code (1)" >&2; exit 100; } ;;
esac
exit 0
`,
		"apache2ctl": "#!/bin/sh\necho \"apache2ctl $*\" >> " + calls + "\n",
		// drainctl, but maintenance reboot is logged and has nothing to do.
		"drainctl": `#!/bin/sh
if [ "$1 $2" = "maintenance reboot" ]; then
	echo "drainctl $*" >> ` + calls + `
	echo "no reboot required"
	exit 0
fi
exec ` + binary + ` --socket ` + h.sock + ` "$@"
`,
	} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script, _ := filepath.Abs("../../../scripts/contrib/cron/drainctl-patch")
	patch := func(env ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, script)
		// No needrestart here: the package list decides.
		cmd.Env = append(append(append([]string{}, testEnv...), "PATH="+bin+":/usr/bin:/bin",
			"DRAINCTL="+filepath.Join(bin, "drainctl"), "HOME="+bin), env...)
		out, err := cmd.CombinedOutput()
		return string(out), exitCodeOf(t, err)
	}
	os.Remove(calls)
	const reboot = "drainctl maintenance reboot --reason security updates: reboot --if-required\n"
	if out, code := patch(); code != 0 || !strings.Contains(out, "nothing to upgrade") || !strings.Contains(out, "no reboot required") {
		t.Fatalf("nothing pending: exit %d\n%s", code, out)
	}
	if c, _ := os.ReadFile(calls); !strings.HasSuffix(string(c), reboot) {
		t.Fatalf("nothing pending: no reboot --if-required asked:\n%s", c)
	}
	if hist, _, _ := h.ctl(t, "history", "--json"); strings.TrimSpace(hist) != "[]" {
		t.Fatalf("nothing pending took the server out:\n%s", hist)
	}

	os.WriteFile(pending, []byte("Inst apache2 [2.4.62-1] (2.4.65-1 Debian-Security:12/stable-security [amd64])\nInst curl [7.88] (7.88.1-10+deb12u9)\n"), 0o644)
	os.Remove(calls)
	out, code := patch()
	c, _ := os.ReadFile(calls)
	if code != 0 || !strings.Contains(out, "graceful restart") || !strings.Contains(string(c), "apache2ctl -k graceful") || !inService(h.status(t)) ||
		!strings.HasSuffix(string(c), reboot) {
		t.Fatalf("an Apache update: exit %d\n%s\ncalls:\n%s", code, out, c)
	}

	os.WriteFile(pending, []byte("Inst curl [7.88] (7.88.1-10+deb12u9)\n"), 0o644)
	os.Remove(calls)
	out, code = patch("DRAINCTL_PATCH_WINDOW=Mon-Fri 02:00-05:00")
	c, _ = os.ReadFile(calls)
	if code != 0 || strings.Contains(string(c), "apache2ctl") || !strings.Contains(out, "no restart") ||
		!strings.HasSuffix(string(c), strings.TrimSuffix(reboot, "\n")+" --window Mon-Fri 02:00-05:00 --outside-window skip\n") {
		t.Fatalf("an update Apache does not use, a reboot window: exit %d\n%s\ncalls:\n%s", code, out, c)
	}
	os.Remove(calls)
	if out, code = patch("DRAINCTL_PATCH_REBOOT=no"); code != 0 {
		t.Fatalf("DRAINCTL_PATCH_REBOOT=no: exit %d\n%s", code, out)
	}
	if c, _ = os.ReadFile(calls); strings.Contains(string(c), "reboot") {
		t.Fatalf("DRAINCTL_PATCH_REBOOT=no asked for a reboot:\n%s", c)
	}

	os.WriteFile(filepath.Join(bin, "fail"), nil, 0o644)
	os.Remove(calls)
	out, code = patch()
	st := h.status(t)
	c, _ = os.ReadFile(calls)
	if code != exitCommand || st.State.Phase != apitype.PhaseHeld || !strings.Contains(st.State.LastError, "dpkg returned an error code") || strings.Contains(string(c), "reboot") {
		t.Fatalf("a failed upgrade: exit %d, state %+v\n%s\ncalls:\n%s", code, st.State, out, c)
	}
}
