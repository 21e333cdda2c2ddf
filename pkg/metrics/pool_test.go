package metrics

import (
	"context"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/drainctl/drainctl/pkg/maintenance"
)

type fakePool struct{ st maintenance.PoolStatus }

func (f fakePool) PoolStatus(context.Context) (maintenance.PoolStatus, error) { return f.st, nil }
func (f fakePool) Errors() map[string]uint64                                  { return map[string]uint64{} }

// gauges scrapes /metrics and returns each gauge family's value (one
// series each here).
func gauges(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	return scrape(t, m, func(x *dto.Metric) (float64, bool) { return x.GetGauge().GetValue(), x.GetGauge() != nil })
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
