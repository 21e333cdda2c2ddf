package metrics

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/drainctl/drainctl/pkg/maintenance"
	"github.com/drainctl/drainctl/pkg/pool"
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

// What uses the budget is every member out, not only the slots held: a
// holder, a member out of service and a gone one make 3 unavailable for
// 1 slot held, and the gone one is a gone member.
func TestPoolUnavailableMetrics(t *testing.T) {
	st := maintenance.PoolStatus{State: pool.State{
		Members: []pool.Member{{ID: "web1", Live: true}, {ID: "web2", Live: true}, {ID: "web3", Live: true, Health: &pool.Health{Why: "web server not answering"}}, {ID: "web4"}},
		Holders: []pool.Claim{{ID: "web1", Op: "enter"}},
	}, MaxUnavailable: "1", ConfiguredMaxUnavailable: "1", Allowed: 1}
	st.Unavailable = st.State.Unavailable()
	// Two scrapes: the forward's counters are asked twice.
	m := New(&fakeSource{refused: []uint64{0, 0}, redirected: []uint64{0, 0}}, Build{})
	m.WatchPool(fakePool{st}, "web")
	g := gauges(t, m)
	if g["drainctl_pool_unavailable"] != 3 || g["drainctl_pool_slots_held"] != 1 || g["drainctl_pool_slots_allowed"] != 1 {
		t.Errorf("unavailable %v, held %v, allowed %v; want 3, 1, 1", g["drainctl_pool_unavailable"], g["drainctl_pool_slots_held"], g["drainctl_pool_slots_allowed"])
	}
	gone := scrapeLabeled(t, m, "drainctl_pool_members", "state", "gone")
	if gone != 1 {
		t.Errorf("drainctl_pool_members{state=gone} %v, want 1", gone)
	}
}

// scrapeLabeled is the value of family name's series whose label is
// value (-1: none).
func scrapeLabeled(t *testing.T, m *Metrics, name, label, value string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range mfs[name].GetMetric() {
		for _, l := range x.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return x.GetGauge().GetValue()
			}
		}
	}
	return -1
}
