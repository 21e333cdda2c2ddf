package metrics

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/drainctl/drainctl/pkg/maintenance"
)

type fakePool struct{ st maintenance.PoolStatus }

func (f fakePool) PoolStatus(context.Context) (maintenance.PoolStatus, error) { return f.st, nil }
func (f fakePool) Errors() map[string]uint64                                  { return map[string]uint64{} }

// gauges scrapes /metrics and returns each gauge family's value (one
// series each here).
func gauges(t *testing.T, m *Metrics) map[string]float64 {
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
		if ms := mf.GetMetric(); len(ms) == 1 && ms[0].GetGauge() != nil {
			got[name] = ms[0].GetGauge().GetValue()
		}
	}
	return got
}

// The slots allowed are the pool's limit's, not this host's file's, and
// a host whose file says otherwise shows it.
func TestPoolLimitMetrics(t *testing.T) {
	for _, c := range []struct {
		pools, configured string
		allowed           int
		mismatch          float64
	}{{"1", "3", 1, 1}, {"2", "2", 2, 0}, {"", "1", 0, 0}} {
		m := New(&fakeSource{refused: []uint64{0}, redirected: []uint64{0}}, Build{})
		m.WatchPool(fakePool{maintenance.PoolStatus{MaxUnavailable: c.pools, ConfiguredMaxUnavailable: c.configured, Allowed: c.allowed}}, "web")
		g := gauges(t, m)
		if g["drainctl_pool_slots_allowed"] != float64(c.allowed) || g["drainctl_pool_limit_mismatch"] != c.mismatch {
			t.Errorf("pool's %q, configured %q: allowed %v, mismatch %v; want %d, %v", c.pools, c.configured,
				g["drainctl_pool_slots_allowed"], g["drainctl_pool_limit_mismatch"], c.allowed, c.mismatch)
		}
	}
}
