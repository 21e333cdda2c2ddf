package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// BenchmarkFleetRoll: one roll of a three-host pool under the e2e load (20
// sticky users, a request every 50 ms each, plus anonymous streams), with
// each tool: the SSH script and the Ansible playbook (drainctl restart on
// each host), and Ansible's community.general.haproxy module draining each
// host's entries on the load balancer's admin socket, a graceful restart,
// enabling them again (testdata/fleet/haproxy-module-roll.yml). It reports
// the roll's time, failed requests and users moved; README's "Fleets"
// section has the figures. Root, Debian's ansible package for the module:
//
//	sudo go test -run '^$' -bench FleetRoll -benchtime 1x ./pkg/internal/lab
func BenchmarkFleetRoll(b *testing.B) {
	module, _ := filepath.Abs("../../../testdata/fleet/haproxy-module-roll.yml")
	for _, tool := range []struct {
		name string
		roll func(testing.TB, *fleet) error
	}{
		{"ssh-script", func(t testing.TB, f *fleet) error {
			cmd, out := sshRoll.roll(t, f, "")
			err := cmd.Wait()
			t.Logf("%s", out)
			return err
		}},
		{"ansible-drainctl", func(t testing.TB, f *fleet) error {
			cmd, out := ansibleRoll.roll(t, f, "")
			err := cmd.Wait()
			t.Logf("%s", out)
			return err
		}},
		{"ansible-haproxy-module", func(t testing.TB, f *fleet) error {
			cmd, out := f.ansible(t, module, "haproxy_socket="+f.l.stats+"\n")
			err := cmd.Wait()
			t.Logf("%s", out)
			return err
		}},
	} {
		b.Run(tool.name, func(b *testing.B) {
			nstest.RequireCmd(b, "ansible-playbook")
			for i := 0; i < b.N; i++ {
				f := startFleet(b)
				run := users(b, f.l)
				time.Sleep(2 * time.Second)
				start := time.Now()
				if err := tool.roll(b, f); err != nil {
					b.Fatalf("%s: %v", tool.name, err)
				}
				took := time.Since(start)
				time.Sleep(time.Second)
				res := run.Stop()
				report(b, res)
				b.ReportMetric(took.Seconds(), "roll-s")
				b.ReportMetric(float64(res.Failed), "failed")
				b.ReportMetric(float64(res.Moved), "moved")
				b.ReportMetric(float64(res.Requests), "requests")
			}
		})
	}
}

// BenchmarkFleetRollPool: drainctl-roll over four hosts in a pool, N at a
// time with max_unavailable N, under the e2e load. It reports the roll's
// time and its ratio to ceil(M/N) times one host's restart cycle, timed
// alone first on the same lab (the target: at most 1.3). Figures in
// docs/benchmarks.md.
//
//	sudo go test -run '^$' -bench FleetRollPool -benchtime 1x ./pkg/internal/lab
func BenchmarkFleetRollPool(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("parallel=%d", n), func(b *testing.B) {
			for b.Loop() {
				f := startFleetWith(b, Options{Backend: "nftables", Pattern: Recommended, Servers: 4,
					Pool: &PoolOptions{MaxUnavailable: strconv.Itoa(n)}})
				run := users(b, f.l)
				time.Sleep(2 * time.Second)
				start := time.Now()
				if out, code, err := f.l.Webs[0].Drainctl(context.Background(), "restart", "--reason", "one cycle"); err != nil || code != 0 {
					b.Fatalf("restart: exit %d %v\n%s", code, err, out)
				}
				cycle := time.Since(start)
				env := []string{"DRAINCTL_ROLL_SSH=" + f.ssh.Command(), "DRAINCTL_ROLL_DRAINCTL=" + f.ssh.Drainctl, "DRAINCTL_ROLL_LOCK=" + f.lock}
				start = time.Now()
				cmd, out := f.start(b, env, append([]string{rollScript, "--parallel", strconv.Itoa(n)}, f.hosts...)...)
				if err := cmd.Wait(); err != nil {
					b.Fatalf("roll: %v\n%s", err, out)
				}
				took := time.Since(start)
				res := run.Stop()
				report(b, res)
				rounds := (len(f.hosts) + n - 1) / n
				b.ReportMetric(took.Seconds(), "roll-s")
				b.ReportMetric(cycle.Seconds(), "cycle-s")
				b.ReportMetric(took.Seconds()/(float64(rounds)*cycle.Seconds()), "x-rounds-of-cycles")
				b.ReportMetric(float64(res.Failed), "failed")
				b.ReportMetric(float64(res.Moved), "moved")
			}
		})
	}
}
