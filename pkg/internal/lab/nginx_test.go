package lab

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/drain"
)

// TestE2ENginx: the recommended pattern on nftables with nginx app
// servers (agent: `nginx -t`, `nginx -s reload`), checked at inter
// 200ms: 12 restarts, then a restart of a server its sticky users keep
// busy, ended by the load balancer's confirmation rather than the drain
// deadline, then 4 held maintenances — TestE2ERecommended's 16 cycles
// and more — under the same load. 0 failed requests, 0 users moved, and
// each restart really reloaded nginx.
func TestE2ENginx(t *testing.T) {
	l := startLabWith(t, Options{Backend: "nftables", WebServer: Nginx, Servers: 2,
		Inter: 200 * time.Millisecond, Deadline: 6 * time.Second})
	ctx := context.Background()
	w := l.Webs[0]
	waitCheckers(t, ctx, w, 1)
	run := users(t, l)
	time.Sleep(time.Second)
	cycles(t, ctx, l, 12, 0)

	// Sticky users keep web1 busy through its backup entry: the drain
	// would last the 6 s deadline without the confirmation.
	gen, err := w.Generation()
	if err != nil {
		t.Fatal(err)
	}
	res, evs := op(t, ctx, w, "restart", "--reason", "e2e busy nginx restart")
	confirmedBy(t, "restart out", res.Out, ActiveLB4(1))
	confirmedBy(t, "restart back", res.Back, ActiveLB4(1))
	if res.Drain == nil || res.Drain.Outcome == string(drain.DeadlineProceed) {
		t.Errorf("restart drain: %+v, want it ended by the confirmation, not the deadline", res.Drain)
	}
	if g, err := w.GenerationAfter(gen); err != nil || g != gen+1 {
		t.Fatalf("nginx reloads %d -> %d (%v): not reloaded", gen, g, err)
	}
	t.Logf("busy restart: %s; drain %s with %d active after %v; %v in all: %s", res.Note, res.Drain.Outcome,
		res.Drain.Remaining, res.Drain.Elapsed, res.Elapsed, timeline(evs))
	backInService(t, ctx, l, w)

	cycles(t, ctx, l, 0, 4)
	res2 := noLoss(t, l, run)
	if res2.Requests < 5000 || res2.ByServer["web1"] == 0 || res2.ByServer["web2"] == 0 {
		t.Fatalf("too little load to prove anything: %+v", res2)
	}
	if log := w.ErrorLog(); !strings.Contains(log, nginxReloadLogged) || !strings.Contains(log, "gracefully shutting down") {
		t.Fatalf("web1's error log shows no graceful reload:\n%s", log)
	}
}
