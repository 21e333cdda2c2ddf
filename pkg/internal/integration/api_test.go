package integration

// The control socket under bad input, against the real agent.

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
)

// A client that sends its request slowly, or never finishes it, is cut
// off: it cannot hold a connection of the agent for ever.
func TestAgentCutsOffSlowClients(t *testing.T) {
	h := newHost(t)
	h.agent(t)
	for _, tc := range []struct{ name, send string }{
		{"headers never finished", "POST /v1/maintenance/enter HTTP/1.1\r\nHost: drainctl\r\n"},
		{"body never finished", "POST /v1/maintenance/enter HTTP/1.1\r\nHost: drainctl\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"reason\":"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("unix", h.sock)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tc.send)
			start := time.Now()
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			b, err := io.ReadAll(c) // until the agent closes the connection
			if err != nil {
				t.Fatalf("the agent kept the connection open %v: %v", time.Since(start).Round(time.Second), err)
			}
			if strings.Contains(string(b), "200 OK") {
				t.Fatalf("an unfinished request started an operation:\n%s", b)
			}
			t.Logf("cut off after %v: %q", time.Since(start).Round(100*time.Millisecond), firstLine(string(b)))
		})
	}
	if st := h.status(t); st.State.Phase != "in-service" || st.Running {
		t.Fatalf("after the slow clients: %+v", st.State)
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// An event longer than 64 KiB (a command's output, escaped in JSON) does
// not end `drainctl events` silently: the stream goes on.
func TestAgentEventsLongLines(t *testing.T) {
	h := newHost(t)
	// 16 KiB of control bytes: JSON writes each as \u0001, six bytes.
	h.agent(t, "--restart-cmd", `head -c 20000 /dev/zero | tr '\0' '\001'`)
	cmd := exec.Command(binary, "--socket", h.sock, "events", "--json")
	var out, stderr strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	time.Sleep(200 * time.Millisecond)
	if _, stderr, code := h.ctl(t, "restart"); code != 0 {
		t.Fatal(stderr)
	}
	time.Sleep(300 * time.Millisecond)
	stopWithin(t, cmd, 5*time.Second)
	r := bufio.NewReader(strings.NewReader(out.String()))
	var phases []string
	longest := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		longest = max(longest, len(line))
		var l apitype.Line
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.Event == nil {
			t.Fatalf("bad event line (%d bytes): %v", len(line), err)
		}
		if ev := l.Event; ev.Drain == nil && ev.Output == nil {
			phases = append(phases, string(ev.Phase))
		}
	}
	if longest <= 64<<10 {
		t.Fatalf("the longest event line was %d bytes: the test did not make one over 64 KiB (phases %v, stderr %q)", longest, phases, stderr.String())
	}
	if got := strings.Join(phases, ","); !strings.HasSuffix(got, "restarting,ready-check,restoring,in-service") {
		t.Fatalf("events after a %d-byte line: %s (stderr %q)", longest, got, stderr.String())
	}
}

// A reason with control characters (that would clear the screen or fake
// a line of status) is refused at the boundary, by the CLI and by the
// agent itself to a client that skips the CLI, and nothing is held; the
// refusal names the character without printing it.
func TestAgentStatusEscapesControlCharacters(t *testing.T) {
	h := newHost(t)
	h.agent(t)
	evil := "\x1b[2J\x1b[Hkernel\nstate:    in-service\r"
	_, stderr, code := h.ctl(t, "maintenance", "enter", "--reason", evil)
	if code != exitUsage || strings.ContainsAny(stderr, "\x1b\r") || !strings.Contains(stderr, "U+001B") {
		t.Fatalf("the CLI took the reason (exit %d): %q", code, stderr)
	}
	_, err := (&api.Client{Socket: h.sock}).Enter(t.Context(), apitype.Request{Who: "x", Reason: evil}, nil)
	var ae *apitype.Error
	if !errors.As(err, &ae) || ae.Code != apitype.CodeBadRequest || !strings.Contains(ae.Msg, "U+001B") {
		t.Fatalf("the agent took the reason: %v", err)
	}
	if st := h.status(t); !inService(st) {
		t.Fatalf("after refused requests the server is out: %+v", st)
	}
}
