package integration

// Benchmarks of the agent binary in a namespace: how fast it repairs a
// flushed ruleset, and what it costs when idle. Figures:
// docs/benchmarks.md.
//
//	go test -run '^$' -bench BenchmarkAgent -benchtime 20x ./cmd/drainctl

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
)

var agentBackends = []struct{ name, flush string }{
	{"nftables", "nft flush ruleset"},
	{"iptables-nft", "nft flush ruleset"},
	{"iptables-legacy", "iptables-legacy -t nat -F"},
}

// BenchmarkAgentRepair: another process flushes the ruleset; the time is
// from the flush's commit to the agent's repair, both as the kernel's
// nftables monitor reports them (for iptables-legacy, which reports
// nothing, from the flush command's end until iptables-legacy-save shows
// the rules again).
func BenchmarkAgentRepair(b *testing.B) {
	for _, be := range agentBackends {
		b.Run(be.name, func(b *testing.B) {
			h := newHost(b)
			h.agent(b, "--backend", be.name, "--reconcile-interval", "2s")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type gen struct {
				at   time.Time
				pid  uint32
				comm string
			}
			gens := make(chan gen, 64)
			err := h.ns.Do(func() error {
				conn, err := nftables.New()
				if err != nil {
					return err
				}
				mon := nftables.NewMonitor(nftables.WithMonitorEventBuffer(64))
				ch, err := conn.AddGenerationalMonitor(mon)
				if err != nil {
					return err
				}
				go func() {
					<-ctx.Done()
					mon.Close()
				}()
				go func() {
					for ev := range ch {
						if g, ok := ev.GeneratedBy.Data.(*nftables.GenMsg); ok {
							gens <- gen{time.Now(), g.ProcPID, g.ProcComm}
						}
					}
				}()
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			var total time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				time.Sleep(300 * time.Millisecond) // let the previous repair settle
				for len(gens) > 0 {
					<-gens
				}
				cmd := h.ns.Command(strings.Fields(be.flush)...)
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%s: %v: %s", be.flush, err, out)
				}
				flushed := time.Now()
				if be.name == "iptables-legacy" {
					for !strings.Contains(h.ns.MustExec(b, "iptables-legacy-save", "-t", "nat"), "drainctl:81:80:redirect-in") {
						if time.Since(flushed) > 10*time.Second {
							log, _ := os.ReadFile(h.marker("agent.log"))
							b.Fatalf("not repaired in 10 s:\n%s\n%s", log, h.ns.MustExec(b, "iptables-legacy-save", "-t", "nat"))
						}
					}
					total += time.Since(flushed)
					continue
				}
				var start time.Time
			wait:
				for {
					select {
					case g := <-gens:
						if g.pid == uint32(cmd.Process.Pid) {
							start = g.at // the flush's commit
							continue
						}
						if start.IsZero() {
							continue
						}
						total += g.at.Sub(start) // the repair's commit
						break wait
					case <-time.After(10 * time.Second):
						b.Fatal("not repaired in 10 s")
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/repair")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkAgentIdleCPU: the agent's CPU time (its own and its commands')
// over 60 s of an idle server, in % of one core. Run with -benchtime 1x.
func BenchmarkAgentIdleCPU(b *testing.B) {
	for _, be := range agentBackends {
		b.Run(be.name, func(b *testing.B) {
			h := newHost(b)
			a := h.agent(b, "--backend", be.name, "--reconcile-interval", "2s")
			time.Sleep(3 * time.Second)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				before, start := cpuTicks(b, a.Process.Pid), time.Now()
				time.Sleep(60 * time.Second)
				used := cpuTicks(b, a.Process.Pid) - before
				pct := float64(used) / 100 / time.Since(start).Seconds() * 100 // USER_HZ is 100
				b.ReportMetric(pct, "%cpu")
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// cpuTicks is utime+stime+cutime+cstime of pid (children's once reaped).
func cpuTicks(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	var sum int64
	for _, i := range []int{11, 12, 13, 14} { // fields 14-17, after pid and comm
		n, _ := strconv.ParseInt(f[i], 10, 64)
		sum += n
	}
	return sum
}
