package ready

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	c := Check{URL: srv.URL, Status: 200, Timeout: 5 * time.Second, Interval: 10 * time.Millisecond}
	if err := c.Wait(context.Background()); err != nil || n.Load() != 3 {
		t.Fatalf("%v after %d attempts", err, n.Load())
	}
	c.Status = 204
	c.Timeout = 200 * time.Millisecond
	if err := c.Wait(context.Background()); err == nil || !strings.Contains(err.Error(), "status 200, want 204") {
		t.Fatalf("wrong status: %v", err)
	}
	c = Check{URL: "http://127.0.0.1:1/", Status: 200, Timeout: 200 * time.Millisecond}
	if err := c.Wait(context.Background()); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("refused: %v", err)
	}
}
