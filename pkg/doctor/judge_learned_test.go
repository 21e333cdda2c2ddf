package doctor

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/lbview"
)

// doctor shows the sources the view learned, steady or new, and flags a
// flood of new ones (SYNs from spoofed addresses) once, without a
// finding per spoofed source; a source outside health_checks.
// load_balancers is said too.
func TestLearnedSourcesAndFlood(t *testing.T) {
	f := healthy()
	real := lbview.LB{Addr: lb1, Port: 81, Checks: 60, Accepted: 60, Interval: 500 * time.Millisecond, First: now.Add(-30 * time.Second), Last: now, Active: true}
	f.Checks.Agent, f.Checks.Seen = []lbview.LB{real}, []lbview.LB{real}
	fs := Judge(f)
	if l := find(fs, "checks.learned"); l == nil || !strings.Contains(l.Found, "steady load balancers 10.0.0.2 (port 81)") {
		t.Fatalf("checks.learned: %+v", l)
	}
	if find(fs, "checks.flood") != nil {
		t.Fatalf("one steady load balancer called a flood")
	}
	for i := range 20 {
		spoofed := lbview.LB{Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}), Port: 81, Checks: 3, Refused: 3, First: now.Add(-time.Second), Last: now}
		f.Checks.Agent = append(f.Checks.Agent, spoofed)
		f.Checks.Seen = append(f.Checks.Seen, spoofed)
	}
	fs = Judge(f)
	fl := find(fs, "checks.flood")
	if fl == nil || fl.Severity != Warning || !strings.Contains(fl.Found, "20 sources check port 81") || !strings.Contains(fl.Fix, "health_checks.load_balancers") {
		t.Fatalf("checks.flood: %+v", fl)
	}
	if l := find(fs, "checks.learned"); l == nil || !strings.Contains(l.Found, "20 new") || !strings.Contains(l.Found, "and 15 more") {
		t.Errorf("checks.learned: %+v", l)
	}
	n := 0
	for _, x := range fs {
		if x.ID == "checks.forward-port" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d checks.forward-port findings in a flood, want the steady load balancer's alone", n)
	}
	// A flood bigger than the views: its sources evict each other before
	// they are listed; doctor's capture counted them.
	f = healthy()
	f.Checks.Agent, f.Checks.Seen, f.Checks.Newcomers = []lbview.LB{real}, []lbview.LB{real}, 500
	if fl := find(Judge(f), "checks.flood"); fl == nil || !strings.Contains(fl.Found, "499 sources check port 81") {
		t.Errorf("a flood the views could not keep: checks.flood %+v", fl)
	}
	f = healthy()
	f.Settings.LoadBalancers = []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}
	if o := find(Judge(f), "checks.outside"); o == nil || !strings.Contains(o.Found, "10.0.0.2 (port 81) check port 81 but are outside health_checks.load_balancers") {
		t.Errorf("checks.outside: %+v", o)
	}
}
