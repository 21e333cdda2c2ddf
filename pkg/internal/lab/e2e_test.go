package lab

// End to end: real HAProxy and real Apache in namespaces, users under
// load, drainctl restarting and holding app servers. These are the
// project's proof: no failed request, no sticky user moved.

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/internal/debs"
	"github.com/drainctl/drainctl/pkg/internal/loadgen"
	"github.com/drainctl/drainctl/pkg/internal/nspawn"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

var binary string

func TestMain(m *testing.M) {
	nstest.ExitIfShort("pkg/internal/lab")
	bin, cleanup, err := nstest.BuildBinary("../../../cmd/drainctl", "drainctl")
	if err != nil {
		panic(err)
	}
	binary = bin
	code := nspawn.Main(m) // removes the container root it built, if any
	debs.Remove()
	cleanup()
	os.Exit(code)
}

func startLab(t testing.TB, backend string, p Pattern) *Lab {
	t.Helper()
	return startLabN(t, backend, p, 2)
}

// startLabN is startLab with n app servers.
func startLabN(t testing.TB, backend string, p Pattern, n int) *Lab {
	t.Helper()
	return startLabWith(t, Options{Backend: backend, Pattern: p, Servers: n})
}

// startLabWith starts a lab with o, its binary, names, directory and
// drain deadline (3 s) filled in.
func startLabWith(t testing.TB, o Options) *Lab {
	t.Helper()
	nstest.RequireRoot(t)
	web := "apache2"
	if o.WebServer == Nginx {
		web = "nginx"
	}
	nstest.RequireCmd(t, "haproxy", web, "nft", "iptables")
	id := fmt.Sprintf("%d%s", os.Getpid()%100000, strings.TrimPrefix(strings.TrimPrefix(strings.ReplaceAll(t.Name(), "/", ""), "TestE2E"), "Benchmark"))
	id = strings.ToLower(id)
	if len(id) > 10 {
		id = id[:10] // namespace and interface names stay short
	}
	o.Binary, o.ID, o.Dir = cmp.Or(o.Binary, binary), id, filepath.Join(os.TempDir(), "drainctl-e2e-"+id)
	if o.Deadline == 0 {
		o.Deadline = 3 * time.Second
	}
	l, err := Start(context.Background(), o)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab cleanup: %v", err)
		}
	})
	return l
}

// users is the load of docs/design.md's measurements: 20 users who keep their
// cookie and send a request every 50 ms, and a stream of anonymous ones.
// The load stops when the test ends, before the lab is removed (a test
// that fails half-way must not leave it dialling into deleted namespaces).
func users(t testing.TB, l *Lab) *loadgen.Run {
	run := loadgen.Start(context.Background(), loadgen.Config{
		URL: Frontend, Users: 20, UserInterval: 50 * time.Millisecond,
		Anon: 4, AnonInterval: 20 * time.Millisecond,
		Duration: 10 * time.Minute, MaxRequests: 5_000_000, Dial: l.Dial,
	})
	t.Cleanup(func() { run.Stop() })
	return run
}

func report(t testing.TB, res loadgen.Result) {
	t.Helper()
	t.Logf("requests %d, failed %d, users moved %d, by server %v", res.Requests, res.Failed, res.Moved, res.ByServer)
	for _, f := range res.Failures {
		t.Logf("  failed: %s user %d %s %s", f.Time.Format("15:04:05.000"), f.User, f.Kind, f.Err)
	}
	for _, m := range res.Moves {
		t.Logf("  moved: %s user %d %s -> %s", m.Time.Format("15:04:05.000"), m.User, m.From, m.To)
	}
}

// noLoss stops the load a second after the last cycle, reports it, and
// fails the test unless no request failed and no user moved
// (DRAINCTL_E2E_KEEP=1 keeps a copy of the lab's files in /tmp/e2e-failed).
func noLoss(t testing.TB, l *Lab, run *loadgen.Run) loadgen.Result {
	t.Helper()
	time.Sleep(time.Second)
	res := run.Stop()
	report(t, res)
	if res.Failed != 0 || res.Moved != 0 {
		if os.Getenv("DRAINCTL_E2E_KEEP") != "" {
			exec.Command("cp", "-r", l.o.Dir, "/tmp/e2e-failed").Run()
		}
		t.Fatalf("%d failed requests, %d users moved; want 0 and 0", res.Failed, res.Moved)
	}
	return res
}

func restartCycle(t *testing.T, ctx context.Context, l *Lab, w *Web) {
	t.Helper()
	t.Logf("%s restart of %s", time.Now().Format("15:04:05.000"), w.Name)
	gen, err := w.Generation()
	if err != nil {
		t.Fatal(err)
	}
	out, code, err := w.Drainctl(ctx, "restart", "--reason", "e2e")
	if err != nil || code != 0 {
		t.Fatalf("drainctl restart of %s: exit %d %v\n%s", w.Name, code, err, out)
	}
	if g, err := w.GenerationAfter(gen); err != nil || g != gen+1 {
		t.Fatalf("%s: Apache generation %d -> %d (%v): not restarted", w.Name, gen, g, err)
	}
	backInService(t, ctx, l, w)
}

func backInService(t testing.TB, ctx context.Context, l *Lab, w *Web) {
	t.Helper()
	if _, err := l.WaitStatus(ctx, w.Name, "UP", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	out, _, _ := w.Drainctl(ctx, "status", "--json")
	var st apitype.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.State.Phase != "in-service" ||
		len(st.Forwards) != 1 || api.ForwardState(st.Forwards[0]) != "in-service" {
		t.Fatalf("%s status: %v %s", w.Name, err, out)
	}
}

func holdCycle(t *testing.T, ctx context.Context, l *Lab, w *Web) {
	t.Helper()
	t.Logf("%s maintenance of %s", time.Now().Format("15:04:05.000"), w.Name)
	if out, code, err := w.Drainctl(ctx, "maintenance", "enter", "--reason", "e2e hold"); err != nil || code != 0 {
		t.Fatalf("enter %s: exit %d %v\n%s", w.Name, code, err, out)
	}
	// Out for new users: the primary entry DOWN while the backup entry
	// serves the server's sticky users; with agent-check, the one entry
	// in DRAIN, which keeps them.
	out := "DOWN"
	if l.o.Pattern == AgentCheck {
		out = "DRAIN (agent)"
	}
	if _, err := l.WaitStatus(ctx, w.Name, out, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if s, _ := l.Status(w.Name + "-bak"); l.o.Pattern != AgentCheck && s != "UP" {
		t.Fatalf("%s-bak is %q while %s is held: its users have nowhere to go", w.Name, s, w.Name)
	}
	time.Sleep(3 * time.Second) // held: sticky users keep being served
	if out, code, err := w.Drainctl(ctx, "maintenance", "exit"); err != nil || code != 0 {
		t.Fatalf("exit %s: exit %d %v\n%s", w.Name, code, err, out)
	}
	backInService(t, ctx, l, w)
}

// cycles runs restarts, then held maintenances, alternating between the
// first two app servers.
func cycles(t *testing.T, ctx context.Context, l *Lab, restarts, holds int) {
	t.Helper()
	for i := range restarts {
		restartCycle(t, ctx, l, l.Webs[i%2])
	}
	for i := range holds {
		holdCycle(t, ctx, l, l.Webs[i%2])
	}
}

// TestE2ERecommended: the recommended HAProxy pattern, once per backend:
// 12 restarts and 4 held maintenances under load, so that a loss in one
// cycle out of five would show (0.8^16 < 3%). 0 failed requests, 0 users
// moved, and each restart really restarted Apache.
func TestE2ERecommended(t *testing.T) {
	for _, backend := range []string{"nftables", "iptables"} {
		t.Run(backend, func(t *testing.T) {
			l := startLab(t, backend, Recommended)
			ctx := context.Background()
			run := users(t, l)
			time.Sleep(time.Second)
			cycles(t, ctx, l, 12, 4)
			res := noLoss(t, l, run)
			if res.Requests < 5000 || res.ByServer["web1"] == 0 || res.ByServer["web2"] == 0 {
				t.Fatalf("too little load to prove anything: %+v", res)
			}
			if !strings.Contains(l.Webs[0].ErrorLog(), "SIGUSR1 received.  Doing graceful restart") {
				t.Fatal("web1's error log shows no graceful restart")
			}
		})
	}
}

// TestE2EAgentCheck: the agent-check pattern (haproxy-config --style
// agent-check): one entry per server, the agent answering "drain" while the
// server is out. 6 restarts and 2 held maintenances under load: 0 failed,
// 0 moved, HAProxy showing the held server "DRAIN (agent)".
func TestE2EAgentCheck(t *testing.T) {
	l := startLab(t, "nftables", AgentCheck)
	ctx := context.Background()
	run := users(t, l)
	time.Sleep(time.Second)
	cycles(t, ctx, l, 6, 2)
	// The agent-check queries are the load balancer's view here: its
	// "drain" answer took the server out, its "ready up" put it back.
	r, _ := op(t, ctx, l.Webs[0], "restart", "--reason", "agent-check view")
	confirmedBy(t, "restart out", r.Out, ActiveLB4(1))
	confirmedBy(t, "restart back", r.Back, ActiveLB4(1))
	if len(r.Warnings) > 0 {
		t.Errorf("warnings: %q", r.Warnings)
	}
	t.Logf("restart: %s (%v)", r.Note, r.Elapsed)
	res := noLoss(t, l, run)
	if res.ByServer["web1"] == 0 || res.ByServer["web2"] == 0 {
		t.Fatalf("too little load to prove anything: %+v", res)
	}
}

// TestE2EThroughForward: traffic through the forward port (the other
// pattern): drainctl still fails no request; users may move (reported).
func TestE2EThroughForward(t *testing.T) {
	l := startLab(t, "nftables", ThroughForward)
	ctx := context.Background()
	run := users(t, l)
	time.Sleep(time.Second)
	cycles(t, ctx, l, 6, 0)
	res := run.Stop()
	report(t, res)
	if res.Failed != 0 {
		t.Fatalf("%d failed requests; want 0", res.Failed)
	}
	t.Logf("through the forward port: %d of 20 users moved (the recommended pattern moves none)", res.Moved)
}

// TestE2ENaiveBaselineLoses is the control: the blog post's procedure
// (traffic through 81, plain checks, delete the REDIRECT, restart, add it
// back) under the same load loses requests or sessions. It shows that the
// harness sees losses, so the zeros above mean something.
func TestE2ENaiveBaselineLoses(t *testing.T) {
	l := startLab(t, "nftables", Naive)
	run := users(t, l)
	time.Sleep(time.Second)
	for i := 0; i < 2; i++ {
		if err := NaiveCycle(l.Webs[i%2]); err != nil {
			t.Fatal(err)
		}
		if _, err := l.WaitStatus(context.Background(), l.Webs[i%2].Name, "UP", 15*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	res := run.Stop()
	report(t, res)
	if res.Failed == 0 && res.Moved == 0 {
		t.Fatal("the naive procedure lost nothing: the harness cannot see losses, or the lab is wrong")
	}
}
