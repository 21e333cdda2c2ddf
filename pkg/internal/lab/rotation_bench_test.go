package lab

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// BenchmarkRotation: how long operations take with the load balancers'
// view and without it (--watch-checks=false, the fixed --min-wait of 2 s),
// HAProxy checking at haproxy-config's inter 500ms fall 2 rise 2, on both
// backends. On an idle server: maintenance enter (the target: ≤ 1.2 s with
// the confirmation) and exit, as the CLI returns. Under the e2e load: a
// restart of a server its sticky users keep busy (the target: ≤ 3 s, 0
// failed, 0 moved). docs/benchmarks.md has the figures. Root:
//
//	sudo go test -run '^$' -bench Rotation -benchtime 5x ./pkg/internal/lab
func BenchmarkRotation(b *testing.B) {
	for _, backend := range []string{"nftables", "iptables"} {
		for _, watch := range []bool{true, false} {
			name := backend + "/watch"
			if !watch {
				name = backend + "/min-wait"
			}
			b.Run(name, func(b *testing.B) {
				flags := []string{"--watch-checks=false"}
				if watch {
					flags = nil
				}
				// Deadline 20 s: without the confirmation a busy restart
				// waits for it.
				l := startLabWith(b, Options{Backend: backend, Servers: 2, AgentFlags: flags, Deadline: 20 * time.Second})
				ctx := context.Background()
				w := l.Webs[0]
				time.Sleep(2 * time.Second) // the checks seen
				// Each operation starts at a random point of the checks'
				// cycle, as in life: one started a fixed time after the
				// last would always meet the checks at the same phase.
				timed := func(args ...string) time.Duration {
					time.Sleep(time.Duration(rand.Int64N(int64(500 * time.Millisecond))))
					start := time.Now()
					op(b, ctx, w, args...)
					return time.Since(start)
				}
				var enter, exit, restart []time.Duration
				for range b.N {
					enter = append(enter, timed("maintenance", "enter"))
					exit = append(exit, timed("maintenance", "exit"))
					time.Sleep(time.Second)
				}
				run := users(b, l)
				time.Sleep(time.Second)
				for range b.N {
					restart = append(restart, timed("restart"))
					time.Sleep(time.Second)
				}
				res := noLoss(b, l, run)
				for _, m := range []struct {
					name string
					ds   []time.Duration
				}{{"enter", enter}, {"exit", exit}, {"busy-restart", restart}} {
					var sum time.Duration
					for _, d := range m.ds {
						sum += d
					}
					b.ReportMetric(sum.Seconds()/float64(len(m.ds)), m.name+"-s")
					b.ReportMetric(slices.Max(m.ds).Seconds(), m.name+"-max-s")
				}
				b.ReportMetric(float64(res.Failed), "failed")
				b.ReportMetric(float64(res.Moved), "moved")
			})
		}
	}
}
