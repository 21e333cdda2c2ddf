package lab

// The load balancers' view under a spoofed-SYN flood: anyone on the
// path can send SYNs to the forward port "from" any address, and the
// capture sees them before any firewall. The flood comes from the load
// balancer's namespace (raw socket, the lab's own veth link, no route
// out), bounded in sources, rate and time.

import (
	"context"
	byteorder "encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/lbview"
)

// Spoofed sources: answered ones in 198.18.201.0/24 (web1 routes its
// answers to them back to the load balancer's namespace, which drops
// them), never-answered ones in 198.18.202.0/24 (web1 has no route to
// them: no SYN-ACK, no RST leaves).
const (
	answeredNet   = "198.18.201.0/24"
	unansweredNet = "198.18.202.0/24"
	// floodEvery is each source's SYN interval; every source keeps one
	// source port, so that web1 keeps one half-open connection per
	// answered source (its retransmitted SYNs are answered again).
	floodEvery = 500 * time.Millisecond
	floodMax   = 90 * time.Second // the flood stops by then whatever happens
)

// synFlood sends SYNs to dst:81 from answered sources of answeredNet and
// unanswered ones of unansweredNet, each every floodEvery, from the load
// balancer's namespace, until stop or floodMax.
func synFlood(t *testing.T, l *Lab, dst netip.Addr, answered, unanswered int) (stop func()) {
	t.Helper()
	var fd int
	if err := l.lb.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW) // IP_HDRINCL
		return err
	}); err != nil {
		t.Fatalf("raw socket in %s: %v", l.lb.Name, err)
	}
	var srcs []netip.Addr
	for net, n := range map[string]int{answeredNet: answered, unansweredNet: unanswered} {
		a := netip.MustParsePrefix(net).Addr()
		for range n {
			a = a.Next()
			srcs = append(srcs, a)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), floodMax)
	var wg sync.WaitGroup
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	wg.Go(func() {
		defer unix.Close(fd)
		tick := time.NewTicker(floodEvery)
		defer tick.Stop()
		to := &unix.SockaddrInet4{Addr: dst.As4()}
		for {
			for i, s := range srcs {
				if err := unix.Sendto(fd, synPacket(s, dst, uint16(20000+i), 81), 0, to); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					sent.Add(1)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			t.Logf("flood: %d SYNs sent, %d failed (%v)", sent.Load(), failed.Load(), firstErr.Load())
		})
	}
	t.Cleanup(stop)
	return stop
}

// synPacket is an IPv4 TCP SYN from src:sport to dst:dport; the kernel
// fills in the IP checksum, length and id (IP_HDRINCL).
func synPacket(src, dst netip.Addr, sport, dport uint16) []byte {
	b := make([]byte, 40)
	b[0], b[8], b[9] = 0x45, 64, unix.IPPROTO_TCP
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	tcp := b[20:]
	byteorder.BigEndian.PutUint16(tcp[0:], sport)
	byteorder.BigEndian.PutUint16(tcp[2:], dport)
	byteorder.BigEndian.PutUint32(tcp[4:], uint32(sport)<<16|0x5eed)
	tcp[12], tcp[13] = 5<<4, 0x02
	byteorder.BigEndian.PutUint16(tcp[14:], 64240)
	// The checksum over the pseudo-header and the segment.
	sum := uint32(0)
	for _, w := range [][]byte{s[:], d[:], {0, unix.IPPROTO_TCP, 0, 20}, tcp} {
		for i := 0; i < len(w); i += 2 {
			sum += uint32(byteorder.BigEndian.Uint16(w[i:]))
		}
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	byteorder.BigEndian.PutUint16(tcp[16:], ^uint16(sum))
	return b
}

// agentLBs is what web's agent learned.
func agentLBs(t *testing.T, ctx context.Context, w *Web) []lbview.LB {
	t.Helper()
	out, code, err := w.Drainctl(ctx, "status", "--json")
	var st apitype.Status
	if err != nil || code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.HealthChecks == nil {
		t.Fatalf("status of %s: exit %d %v\n%s", w.Name, code, err, out)
	}
	var lbs []lbview.LB
	for _, l := range st.HealthChecks.LoadBalancers {
		lbs = append(lbs, lbview.LB(l))
	}
	return lbs
}

// floodConfirmedBy lists who confirmed c, and fails unless every one did.
func floodConfirmedBy(t *testing.T, what string, c *apitype.Confirmation) []string {
	t.Helper()
	if c == nil {
		t.Fatalf("%s: no confirmation in the result", what)
	}
	var out []string
	for _, l := range c.LoadBalancers {
		if !l.Confirmed {
			t.Errorf("%s: %s did not confirm (%d of %d answers, silent %v)", what, l.Addr, l.Answers, l.Need, l.Silent)
		}
		out = append(out, l.Addr.String())
	}
	return out
}

// restartUnderFlood restarts w while a flood runs: out and back must be
// confirmed by real alone, and the pool slot released within 15 s.
func restartUnderFlood(t *testing.T, ctx context.Context, w *Web, real string) {
	t.Helper()
	t.Logf("%s restart of %s under the flood", time.Now().Format("15:04:05.000"), w.Name)
	out, code, err := w.Drainctl(ctx, "restart", "--reason", "e2e flood", "--json")
	if err != nil || code != 0 {
		t.Fatalf("restart of %s: exit %d %v\n%s", w.Name, code, err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var last apitype.Line
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Result == nil {
		t.Fatalf("restart's result line: %v\n%s", err, out)
	}
	for what, c := range map[string]*apitype.Confirmation{"out of rotation": last.Result.Out, "back in rotation": last.Result.Back} {
		if got := floodConfirmedBy(t, what, c); fmt.Sprint(got) != fmt.Sprint([]string{real}) {
			t.Errorf("%s confirmed by %v, want %s alone (the flood's sources do not count)", what, got, real)
		}
	}
	// The slot is released once the back confirmation is in: no source of
	// the flood holds it.
	released := time.Now().Add(15 * time.Second)
	for ps := poolStatus(t, ctx, w); len(ps.Holders) != 0; ps = poolStatus(t, ctx, w) {
		if time.Now().After(released) {
			t.Fatalf("pool slot still held 15 s after the restart, during the flood: %+v", ps.Holders)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// floodInView counts the flood's sources in w's agent's view, and those
// of them that count (Active).
func floodInView(t *testing.T, ctx context.Context, w *Web) (inView, counted int) {
	t.Helper()
	for _, lb := range agentLBs(t, ctx, w) {
		if netip.MustParsePrefix(answeredNet).Contains(lb.Addr) || netip.MustParsePrefix(unansweredNet).Contains(lb.Addr) {
			inView++
			if lb.Active {
				counted++
			}
		}
	}
	return inView, counted
}

// TestE2ESpoofedSYNFlood: a pool of two servers behind real HAProxy,
// under the e2e load. Once web1's agent counts its HAProxy as steady:
//
//   - a flood of 50 spoofed sources the view can hold (40 never
//     answered) during a restart of web1: they are in the view, none
//     counts, the restart waits for the real HAProxy and only for it
//     (out and back confirmed by 198.18.1.1 alone), and the pool slot is
//     released at once after it (no unanswered source holds it);
//   - then a flood of 240 (120 answered, 120 never answered), more than
//     the view holds, during a second restart: the HAProxy stays in the
//     view (not evicted) and alone confirms, doctor flags the flood, the
//     slot is released;
//
// and no request fails, no user moves.
func TestE2ESpoofedSYNFlood(t *testing.T) {
	l := startLabWith(t, Options{Backend: "nftables", Pattern: Recommended, Servers: 2, Pool: &PoolOptions{MaxUnavailable: "1"}})
	ctx := context.Background()
	w := l.Webs[0]
	real := ActiveLB4(1)
	if _, err := w.ns.Exec("ip", "route", "add", answeredNet, "via", real); err != nil {
		t.Fatal(err)
	}
	run := users(t, l)
	// The real HAProxy becomes steady (lbview.SteadyAfter of checks).
	deadline := time.Now().Add(lbview.SteadyAfter + 30*time.Second)
	for steady := false; !steady; time.Sleep(time.Second) {
		for _, lb := range agentLBs(t, ctx, w) {
			steady = steady || (lb.Addr.String() == real && lb.Steady())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never steady in %s's view: %+v", real, w.Name, agentLBs(t, ctx, w))
		}
	}

	stop := synFlood(t, l, netip.MustParseAddr(w.Addr), 10, 40)
	time.Sleep(3 * time.Second) // every source has sent 3 SYNs and more
	inView, counted := floodInView(t, ctx, w)
	t.Logf("the flood of 50 in %s's view: %d sources, %d counted", w.Name, inView, counted)
	if inView != 50 || counted != 0 {
		t.Errorf("the flood of 50: %d of its sources in the view, %d counted; want all 50, none counted", inView, counted)
	}
	restartUnderFlood(t, ctx, w, real)
	stop()

	stop = synFlood(t, l, netip.MustParseAddr(w.Addr), 120, 120)
	time.Sleep(3 * time.Second)
	lbs := agentLBs(t, ctx, w)
	kept := false
	for _, lb := range lbs {
		kept = kept || (lb.Addr.String() == real && lb.Active)
	}
	t.Logf("%s's view during the flood of 240: %d sources, %s kept and counted: %v", w.Name, len(lbs), real, kept)
	if !kept || len(lbs) > 64 {
		t.Errorf("during the flood of 240 %s's view holds %d sources, %s kept and counted: %v", w.Name, len(lbs), real, kept)
	}
	r, code, err := w.Doctor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fl := r.Find("checks.flood"); len(fl) != 1 || !strings.Contains(fl[0].Found, "sources check port 81") {
		t.Errorf("doctor during the flood (exit %d): checks.flood %+v\n%s", code, fl, r)
	}
	restartUnderFlood(t, ctx, w, real)
	backInService(t, ctx, l, w)
	stop()
	noLoss(t, l, run)
}
