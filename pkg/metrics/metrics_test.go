package metrics

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/drainctl/drainctl/pkg/conntable"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/maintenance"
)

// fakeSource answers each scrape with the next of its forwards' counters.
type fakeSource struct{ refused, redirected []uint64 }

func (f *fakeSource) Snapshot() maintenance.Status {
	st := forward.Status{Forward: forward.Forward{From: 81, To: 80}, Refused: f.refused[0], Redirected: f.redirected[0]}
	f.refused, f.redirected = f.refused[1:], f.redirected[1:]
	return maintenance.Status{Forwards: []forward.Status{st}, Backend: "nftables"}
}

func (f *fakeSource) Connections(context.Context, func(*conntable.Conn)) error { return nil }

// counters scrapes /metrics as Prometheus does and returns each counter
// family's value (one series each here).
func counters(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	return scrape(t, m, func(x *dto.Metric) (float64, bool) { return x.GetCounter().GetValue(), x.GetCounter() != nil })
}

// scrape scrapes /metrics as Prometheus does and returns, for each family
// of one series, the value pick finds in it (if it is of pick's type).
func scrape(t *testing.T, m *Metrics, pick func(*dto.Metric) (float64, bool)) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for name, mf := range mfs {
		if ms := mf.GetMetric(); len(ms) == 1 {
			if v, ok := pick(ms[0]); ok {
				got[name] = v
			}
		}
	}
	return got
}

// The kernel's counters start again at 0 when their rules are recreated
// (each restore deletes the withdraw rules): the exported counters go on
// from where they were instead of going down.
func TestForwardCountersNeverGoDown(t *testing.T) {
	src := &fakeSource{
		refused:    []uint64{5, 9, 0, 3, 3, 1},
		redirected: []uint64{100, 120, 120, 130, 2, 4},
	}
	m := New(src, Build{})
	wantRefused := []float64{5, 9, 9, 12, 12, 13}
	wantRedirected := []float64{100, 120, 120, 130, 132, 134}
	const refused, redirected = "drainctl_forward_refused_packets_total", "drainctl_forward_redirected_packets_total"
	for i := range wantRefused {
		got := counters(t, m)
		if got[refused] != wantRefused[i] || got[redirected] != wantRedirected[i] {
			t.Errorf("scrape %d: refused %v, redirected %v; want %v and %v", i, got[refused], got[redirected], wantRefused[i], wantRedirected[i])
		}
	}
}
