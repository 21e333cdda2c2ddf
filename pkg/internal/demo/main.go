// Command drainctl-lab runs the demo: real HAProxy and two real Apache
// (or, with -web nginx, nginx) servers in network namespaces, users under load, and one app server
// restarted twice over — by drainctl, and the naive way of the original
// blog post (docs/design.md describes it) — with a report side by side. `make demo` runs it.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/internal/lab"
	"github.com/drainctl/drainctl/pkg/internal/loadgen"
)

type outcome struct {
	res                  loadgen.Result
	down, drain, restart time.Duration
	up, total            time.Duration
	downOK, upOK         bool
	drainOutcome         string // drainctl's: drained, deadline-proceed
	leftover             error  // what Close could not remove
}

func main() {
	binary := flag.String("drainctl", "bin/drainctl", "the drainctl binary")
	backend := flag.String("backend", "nftables", "nftables or iptables")
	web := flag.String("web", "apache", "the app servers' web server: apache or nginx")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "drainctl-lab: run as root (it makes network namespaces): sudo make demo")
		os.Exit(2)
	}
	bin, err := filepath.Abs(*binary)
	if err != nil {
		fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	title(fmt.Sprintf("drainctl: restart web1 (%s) under load, with the recommended HAProxy pattern", *web))
	good, err := run(ctx, bin, *backend, lab.WebServer(*web), lab.Recommended)
	if err != nil {
		fail(err)
	}
	// The naive way is the procedure drainctl started from, as a blog post
	// described it (docs/design.md): HAProxy sends traffic to port 81 and
	// checks it plainly; the operator deletes the REDIRECT, reloads the
	// web server and adds the REDIRECT back.
	title("the naive way (a common recipe): traffic through 81, plain checks, delete the REDIRECT, restart, add it back")
	naive, err := run(ctx, bin, *backend, lab.WebServer(*web), lab.Naive)
	if err != nil {
		fail(err)
	}
	title("report")
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(w, "\tdrainctl\tnaive")
	row := func(name string, f func(outcome) string) { fmt.Fprintf(w, "%s\t%s\t%s\n", name, f(good), f(naive)) }
	row("requests served", func(o outcome) string { return fmt.Sprint(o.res.Requests - o.res.Failed) })
	row("failed requests", func(o outcome) string { return fmt.Sprint(o.res.Failed) })
	row("sticky users moved (of 20)", func(o outcome) string { return fmt.Sprint(o.res.Moved) })
	row("time to HAProxy DOWN", func(o outcome) string { return dur(o.down, o.downOK) })
	row("drain time", func(o outcome) string { return dur(o.drain, true) })
	row("restart time", func(o outcome) string { return dur(o.restart, true) })
	row("time back UP", func(o outcome) string { return dur(o.up, o.upOK) })
	row("whole cycle", func(o outcome) string { return dur(o.total, true) })
	w.Flush()
	fmt.Println()
	fmt.Print(conclusion(good, naive))
}

// conclusion says what this run showed, from its own figures: the claims
// are made only when the numbers carry them.
func conclusion(good, naive outcome) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	if good.res.Failed == 0 && good.res.Moved == 0 {
		p("drainctl: web1 was restarted with %d requests served, none failed, and no sticky user moved.", good.res.Requests)
	} else {
		p("drainctl: %d of %d requests failed and %d sticky users moved: NOT what drainctl promises; the lines above show where.",
			good.res.Failed, good.res.Requests, good.res.Moved)
	}
	if naive.res.Failed > 0 || naive.res.Moved > 0 {
		p("The naive way, under the same load: %d failed requests, %d sticky users moved.", naive.res.Failed, naive.res.Moved)
		for _, f := range naive.res.Failures {
			if f.User >= 0 {
				p("  its first failed user: user %d got %s %s", f.User, f.Kind, f.Err)
				break
			}
		}
	} else {
		p("The naive way lost nothing this time either (%d requests): its losses depend on timing; run the demo again.", naive.res.Requests)
	}
	switch good.drainOutcome {
	case "deadline-proceed":
		p("drainctl's drain ran to its deadline (%.1fs): web1's sticky users keep using it through the backup", good.drain.Seconds())
		p("entry, which is what keeps their sessions, so it is never quiet; the graceful restart then")
		p("finishes their requests in flight.")
	case "drained":
		p("drainctl's drain ended when web1 was quiet, after %.1fs.", good.drain.Seconds())
	}
	if good.downOK {
		p("HAProxy marked web1 DOWN %.2fs after the withdraw: drainctl refused only new connections to :81,", good.down.Seconds())
		p("live ones kept their NAT mapping, and web1's users reached it through its backup entry on :80.")
	}
	for _, r := range []struct {
		name string
		o    outcome
	}{{"drainctl", good}, {"naive", naive}} {
		if r.o.leftover != nil {
			p("Not everything the %s run made could be removed: %v", r.name, r.o.leftover)
		}
	}
	if good.leftover == nil && naive.leftover == nil {
		p("Every namespace, process and file this demo made is removed.")
	}
	return b.String()
}

func title(s string) { fmt.Printf("\n\033[1m== %s\033[0m\n", s) }

func dur(d time.Duration, ok bool) string {
	if !ok {
		return "—"
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "drainctl-lab:", err)
	os.Exit(1)
}

func run(ctx context.Context, bin, backend string, web lab.WebServer, p lab.Pattern) (o outcome, err error) {
	id := fmt.Sprintf("demo%d", os.Getpid()%100000)
	if p == lab.Naive {
		id = fmt.Sprintf("naive%d", os.Getpid()%100000)
	}
	l, err := lab.Start(ctx, lab.Options{Binary: bin, Backend: backend, Pattern: p, WebServer: web, ID: id,
		Dir: filepath.Join(os.TempDir(), "drainctl-"+id), Deadline: 5 * time.Second})
	if err != nil {
		return o, err
	}
	defer func() { o.leftover = l.Close() }()
	for _, line := range strings.Split(l.HAProxyConfig(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "server ") {
			fmt.Println("  haproxy:", strings.TrimSpace(line))
		}
	}
	load := loadgen.Start(ctx, loadgen.Config{URL: lab.Frontend, Users: 20, UserInterval: 50 * time.Millisecond,
		Anon: 4, AnonInterval: 20 * time.Millisecond, Duration: 2 * time.Minute, Dial: l.Dial})
	fmt.Println("  load: 20 users with a cookie, a request every 50 ms each; 4 anonymous streams")
	time.Sleep(2 * time.Second)
	web1 := l.Webs[0]
	start := time.Now()
	at := func() string { return fmt.Sprintf("+%5.2fs", time.Since(start).Seconds()) }

	mctx, mstop := context.WithCancel(ctx)
	defer mstop()
	w := watchStatus(mctx, l, web1.Name, start, at)

	var restoredAt time.Duration
	if p == lab.Naive {
		if o.drain, o.restart, restoredAt, err = naiveRestart(web1, start, at); err != nil {
			return o, err
		}
	} else {
		if o.drain, o.restart, restoredAt, o.drainOutcome, err = drainctlRestart(ctx, bin, web1.Socket, start, at); err != nil {
			return o, err
		}
	}
	if _, err := l.WaitStatus(ctx, web1.Name, "UP", 20*time.Second); err != nil {
		return o, err
	}
	time.Sleep(time.Second)
	mstop()
	o.res = load.Stop()
	o.total = time.Since(start)
	w.mu.Lock()
	o.down, o.downOK = w.downAt, w.downAt != 0
	if w.upAt != 0 {
		o.up, o.upOK = w.upAt-restoredAt, true
	}
	w.mu.Unlock()
	fmt.Printf("  result: %d requests, %d failed, %d users moved\n", o.res.Requests, o.res.Failed, o.res.Moved)
	return o, nil
}

// watch is HAProxy's view of one server, as watchStatus sees it: when it
// first went DOWN and when it was UP again after that.
type watch struct {
	mu           sync.Mutex
	downAt, upAt time.Duration
}

// watchStatus polls HAProxy's status of server every 20 ms until ctx
// ends, printing each change.
func watchStatus(ctx context.Context, l *lab.Lab, server string, start time.Time, at func() string) *watch {
	w := &watch{}
	go func() {
		last := "UP"
		for ctx.Err() == nil {
			s, err := l.Status(server)
			if err == nil && s != last && (s == "UP" || s == "DOWN") {
				w.mu.Lock()
				if s == "DOWN" && w.downAt == 0 {
					w.downAt = time.Since(start)
				} else if s == "UP" && w.downAt != 0 && w.upAt == 0 {
					w.upAt = time.Since(start)
				}
				w.mu.Unlock()
				fmt.Printf("  %s HAProxy marks %s %s\n", at(), server, s)
				last = s
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return w
}

// naiveRestart is the blog post's procedure: delete the REDIRECT, wait
// 3 s, reload the web server gracefully, wait 3 s, add the REDIRECT back. It
// returns the drain time, the restart's time and when the forward was back.
func naiveRestart(web *lab.Web, start time.Time, at func() string) (drain, restart, restored time.Duration, err error) {
	fmt.Printf("  %s delete the REDIRECT (drainctl forward remove)\n", at())
	if err := web.Forward("remove"); err != nil {
		return 0, 0, 0, err
	}
	time.Sleep(3 * time.Second)
	drain = time.Since(start)
	fmt.Printf("  %s %s\n", at(), web.ReloadCommand())
	t0 := time.Now()
	if err := web.Graceful(); err != nil {
		return 0, 0, 0, err
	}
	restart = time.Since(t0)
	time.Sleep(3 * time.Second)
	fmt.Printf("  %s add the REDIRECT back\n", at())
	if err := web.Forward("apply"); err != nil {
		return 0, 0, 0, err
	}
	return drain, restart, time.Since(start), nil
}

// drainctlRestart runs `drainctl restart --json` against the agent and
// prints its progress; it returns the drain time, the restart command's
// time and when the forward was restored.
func drainctlRestart(ctx context.Context, bin, socket string, start time.Time, at func() string) (drain, restart, restored time.Duration, drainOutcome string, err error) {
	cmd := exec.CommandContext(ctx, bin, "--socket", socket, "restart", "--reason", "demo", "--json")
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, "", err
	}
	lastDrain := time.Duration(-time.Hour)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var l apitype.Line
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		switch e := l.Event; {
		case e == nil:
		case e.Drain != nil:
			if e.Drain.Elapsed-lastDrain >= time.Second || e.Drain.Outcome != "" {
				fmt.Printf("  %s draining: %d active connections (forward %d, direct %d), %d idle; deadline in %.1fs %s\n", at(),
					e.Drain.Active, e.Drain.ByPath["forward"], e.Drain.ByPath["direct"], e.Drain.Idle, e.Drain.DeadlineIn.Seconds(), e.Drain.Outcome)
				lastDrain = e.Drain.Elapsed
			}
			if e.Drain.Outcome != "" {
				drain, drainOutcome = e.Drain.Elapsed, string(e.Drain.Outcome)
			}
		case e.Output != nil:
			fmt.Printf("  %s %s: exit %d in %s\n", at(), e.Output.Command, e.Output.ExitCode, e.Output.Duration.Round(time.Millisecond))
			if e.Phase == "restarting" {
				restart = e.Output.Duration
			}
		default:
			fmt.Printf("  %s drainctl: %s %s\n", at(), e.Phase, e.Message)
			if e.Phase == "in-service" {
				restored = time.Since(start)
			}
		}
		if l.Error != nil {
			err = fmt.Errorf("drainctl restart: %s", l.Error.Msg)
		}
	}
	if werr := cmd.Wait(); werr != nil && err == nil {
		err = fmt.Errorf("drainctl restart: %w", werr)
	}
	return drain, restart, restored, drainOutcome, err
}
