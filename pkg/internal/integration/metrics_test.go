package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/drainctl/drainctl/pkg/internal/metricstest"
)

// scrape reads /metrics through the control socket, or over TCP from
// inside the host's namespace when addr is set, and parses it with
// Prometheus' own text parser.
func (h *host) scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	dial, url := metricstest.Socket(h.sock), "http://drainctl/metrics"
	if addr != "" {
		dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var c net.Conn
			err := h.ns.Do(func() (err error) { c, err = net.DialTimeout("tcp", addr, 2*time.Second); return err })
			return c, err
		}
		url = "http://" + addr + "/metrics"
	}
	mfs, err := metricstest.Scrape(url, dial)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

var value = metricstest.Value

// The agent's metrics, scraped through the socket and the TCP listener
// and parsed with Prometheus' parser: the state, the forward, operations
// by outcome, the durations, connections by path, build info.
func TestAgentMetrics(t *testing.T) {
	h := newHost(t)
	addr := "127.0.0.1:9188"
	h.agent(t, "--metrics-listen", addr)
	m := h.scrape(t, "")
	if value(m, "drainctl_state", "state=in-service") != 1 || value(m, "drainctl_state", "state=held") != 0 {
		t.Fatalf("state: in-service %v, held %v", value(m, "drainctl_state", "state=in-service"), value(m, "drainctl_state", "state=held"))
	}
	if bi := m["drainctl_build_info"]; bi == nil || !strings.Contains(fmt.Sprint(bi.GetMetric()[0].GetLabel()), `value:"go1.`) {
		t.Fatalf("build info: %v", bi)
	}
	if value(m, "drainctl_forward_state", "forward=81:80", "state=in-service") != 1 {
		t.Fatalf("right after the start, the forward's state: %v", m["drainctl_forward_state"])
	}
	if value(m, "drainctl_operations_total", "op=restart", "outcome=ok") != 0 {
		t.Fatal("operations counted before any ran")
	}
	if _, stderr, code := h.ctl(t, "restart"); code != 0 {
		t.Fatal(stderr)
	}
	if _, stderr, code := h.ctl(t, "maintenance", "enter"); code != 0 {
		t.Fatal(stderr)
	}
	m = h.scrape(t, addr)
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"drainctl_state", []string{"state=held"}, 1},
		{"drainctl_state", []string{"state=in-service"}, 0},
		{"drainctl_operations_total", []string{"op=restart", "outcome=ok"}, 1},
		{"drainctl_operations_total", []string{"op=enter", "outcome=ok"}, 1},
		{"drainctl_operation_duration_seconds", []string{"op=restart"}, 1},
		{"drainctl_drain_duration_seconds", nil, 2},
		{"drainctl_forward_state", []string{"forward=81:80", "backend=nftables", "state=withdrawn"}, 1},
		{"drainctl_connections", []string{"path=forward"}, 0},
		{"drainctl_connections_scrape_error", nil, 0},
		{"drainctl_operation_running", nil, 0},
		{"drainctl_load_balancers_checking", nil, 0}, // none in this test
	}
	for _, c := range checks {
		if got := value(m, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, name := range []string{"drainctl_build_info", "drainctl_last_transition_timestamp_seconds", "drainctl_last_operation_end_timestamp_seconds", "drainctl_forward_refused_packets_total"} {
		if m[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	// The TCP listener serves the metrics only, not the control API.
	resp, err := (&http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var c net.Conn
		err := h.ns.Do(func() (err error) { c, err = net.Dial("tcp", addr); return err })
		return c, err
	}}}).Get("http://" + addr + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /v1/status on the metrics listener: %s, want 404", resp.Status)
	}
}
