package agentcheck

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Each connection gets the line of the moment, then EOF, as HAProxy's
// agent-check reads it.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var out atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var mu sync.Mutex
	var told []string
	go func() {
		done <- Serve(ctx, ln, func() string {
			if out.Load() {
				return Drain
			}
			return Ready
		}, func(peer net.Addr, line string) {
			mu.Lock()
			defer mu.Unlock()
			told = append(told, peer.(*net.TCPAddr).IP.String()+" "+line)
		}, slog.New(slog.DiscardHandler))
	}()
	ask := func() string {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := ask(); got != "ready up\n" {
		t.Fatalf("in service: %q", got)
	}
	out.Store(true)
	if got := ask(); got != "drain\n" {
		t.Fatalf("out: %q", got)
	}
	// Told once the client closed (as HAProxy does, having read).
	heard := func() string { mu.Lock(); defer mu.Unlock(); return strings.Join(told, "") }
	for deadline := time.Now().Add(5 * time.Second); heard() != "127.0.0.1 ready up\n127.0.0.1 drain\n" && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := heard(); got != "127.0.0.1 ready up\n127.0.0.1 drain\n" {
		t.Errorf("told %q, want each answer with its peer", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return when its context ended")
	}
}

// Only a client that behaves like HAProxy's agent check is told of: one
// that sends nothing or its agent-send line, reads, and closes. An HTTP
// client, a client that keeps the connection open, or one that sends
// more than an agent-send line is answered all the same, but not counted.
func TestOnlyAgentChecksAreTold(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var told atomic.Int32
	go Serve(ctx, ln, func() string { return Ready }, func(net.Addr, string) { told.Add(1) }, slog.New(slog.DiscardHandler))
	client := func(send string, linger time.Duration) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if send != "" {
			c.Write([]byte(send))
		}
		if b, err := io.ReadAll(c); err != nil || string(b) != Ready {
			t.Fatalf("answer %q %v", b, err)
		}
		time.Sleep(linger)
	}
	// Each is given 1.5 s: Serve waits a second for a client to close.
	for _, c := range []struct {
		name, send string
		linger     time.Duration
		counted    bool
	}{
		{"an agent check", "", 0, true},
		{"an agent check with agent-send", "hello haproxy\n", 0, true},
		{"an HTTP client", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, false},
		{"a client that stays", "", 1500 * time.Millisecond, false},
		{"a flood of bytes", strings.Repeat("x", MaxSend+1), 0, false},
	} {
		before := told.Load()
		client(c.send, c.linger)
		time.Sleep(1500 * time.Millisecond)
		if got := told.Load() - before; got != map[bool]int32{true: 1, false: 0}[c.counted] {
			t.Errorf("%s: told %d times, want counted %v", c.name, got, c.counted)
		}
	}
}

// Whatever a client sends, LikeAgentCheck never reads more than
// MaxSend+1 bytes, and says yes only to nothing or one printable line.
func FuzzLikeAgentCheck(f *testing.F) {
	for _, s := range []string{"", "\n", "agent\r\n", "GET / HTTP/1.1\r\n\r\n", "\x00", strings.Repeat("a", MaxSend)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &countingReader{r: bytes.NewReader(b)}
		ok := LikeAgentCheck(r)
		if r.n > MaxSend+1 {
			t.Fatalf("read %d bytes, want at most %d", r.n, MaxSend+1)
		}
		oneLine := len(b) <= MaxSend && !bytes.ContainsFunc(b[:max(len(b)-2, 0)], func(c rune) bool { return c == '\n' || c == '\r' })
		for _, c := range b {
			if (c < 0x20 && c != '\n' && c != '\r' && c != '\t') || c > 0x7e {
				oneLine = false
			}
		}
		if ok && !oneLine {
			t.Fatalf("%q counted as an agent check", b)
		}
	})
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
