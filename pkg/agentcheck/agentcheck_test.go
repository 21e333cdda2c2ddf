package agentcheck

import (
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
	mu.Lock()
	if got := strings.Join(told, ""); got != "127.0.0.1 ready up\n127.0.0.1 drain\n" {
		t.Errorf("told %q, want each answer with its peer", got)
	}
	mu.Unlock()
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
