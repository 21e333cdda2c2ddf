package forward_test

import (
	"context"
	"fmt"
	"os/exec"
	"testing"

	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// BenchmarkForward measures withdraw and restore latency per backend, in a
// fresh namespace with the forward applied. For iptables the loop runs on
// one thread inside the namespace (ns.Do) so the commands start there;
// nftables needs no such thread (its socket was opened in the namespace),
// and running it on a locked thread would add scheduler hand-offs that the
// agent does not pay. Each
// iteration is a real kernel change (withdraw and restore alternate, and
// only the named operation is timed). Figures: docs/benchmarks.md.
//
//	go test -run '^$' -bench BenchmarkForward -benchtime 200x ./pkg/forward
func BenchmarkForward(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			nstest.RequireCmd(b, be.cmds...)
			ns := nstest.New(b, "bench")
			f, err := be.open(ns)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			ctx := context.Background()
			fw := forward.Forward{From: 81, To: 80}
			if err := ns.Do(func() error { return f.Apply(ctx, fw) }); err != nil {
				b.Fatal(err)
			}
			ops := []string{"withdraw", "restore", "status"}
			if be.execs {
				// What one iptables command costs on this machine, for
				// comparison: deleting one rule of another chain.
				ops = append(ops, "one-command-delete")
			}
			for _, op := range ops {
				b.Run(op, func(b *testing.B) {
					run := func(f func() error) error { return f() }
					if be.execs {
						run = ns.Do
					}
					err := run(func() error {
						b.ResetTimer()
						for i := 0; i < b.N; i++ {
							// Put the forward in the state the timed op changes.
							b.StopTimer()
							prep := f.Restore
							if op == "restore" {
								prep = f.Withdraw
							}
							if err := prep(ctx, fw); err != nil {
								return err
							}
							rule := []string{"-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "ACCEPT"}
							if op == "one-command-delete" {
								if out, err := exec.Command(be.cmds[0], rule...).CombinedOutput(); err != nil {
									return fmt.Errorf("%w: %s", err, out)
								}
							}
							b.StartTimer()
							switch op {
							case "one-command-delete":
								rule[0] = "-D"
								if out, err := exec.Command(be.cmds[0], rule...).CombinedOutput(); err != nil {
									return fmt.Errorf("%w: %s", err, out)
								}
							case "withdraw":
								err = f.Withdraw(ctx, fw)
							case "restore":
								err = f.Restore(ctx, fw)
							case "status":
								_, err = f.Status(ctx)
							}
							if err != nil {
								return err
							}
						}
						b.StopTimer()
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				})
			}
		})
	}
}
