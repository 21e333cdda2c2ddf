package drain_test

// Drain detection against real connections: an HTTP server on :80 behind
// the forward in one namespace, clients in another.

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/conntable"
	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/internal/forwardtest"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

const srv4, srv6 = nstest.Srv4, nstest.Srv6

var fwd = forward.Forward{From: 81, To: 80}

type lab struct {
	srv, cli *nstest.NS
	table    *conntable.Table
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{}
	l.srv, l.cli = nstest.Pair(t, "dr")
	l.srv.ServeHTTP(t, ":80")
	forwardtest.Apply(t, l.srv, fwd)
	var err error
	if l.table, err = conntable.Open(conntable.Options{Forwards: []forward.Forward{fwd}, NetNS: l.srv.FD()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.table.Close() })
	return l
}

// fast is a policy scaled down for tests: the same rules, shorter times.
func fast() drain.Policy {
	return drain.Policy{
		Poll: 50 * time.Millisecond, MinWait: 300 * time.Millisecond, Quiet: 500 * time.Millisecond,
		IdleAfter: time.Second, Deadline: 15 * time.Second, OnDeadline: drain.Proceed,
	}
}

// busy sends a request every 50 ms on c until stop is closed, or for at
// most 20 s, then closes the connection.
func busy(t *testing.T, c *nstest.Client, stop <-chan struct{}, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer c.Conn.Close()
		for i := 0; i < 400; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if err := c.Get(); err != nil {
				t.Errorf("busy client: %v", err)
				return
			}
		}
	}()
}

func (l *lab) wait(t *testing.T, p drain.Policy) (drain.Result, []drain.Event, error) {
	t.Helper()
	var evs []drain.Event
	res, err := drain.Wait(context.Background(), l.table, p, nil, func(e drain.Event) { evs = append(evs, e) })
	return res, evs, err
}

func TestKernelDrainEndsWhenTheLastActiveClientCloses(t *testing.T) {
	l := newLab(t)
	var wg sync.WaitGroup
	stop1, stop2 := make(chan struct{}), make(chan struct{})
	busy(t, l.cli.Dial(t, srv4+":81"), stop1, &wg)
	busy(t, l.cli.Dial(t, srv4+":80"), stop2, &wg)
	start := time.Now()
	var lastClose time.Time
	go func() {
		time.Sleep(time.Second)
		close(stop1)
		time.Sleep(time.Second)
		lastClose = time.Now()
		close(stop2)
	}()
	res, evs, err := l.wait(t, fast())
	wg.Wait()
	if err != nil || res.Outcome != drain.Drained {
		t.Fatalf("got %+v, %v; want drained", res, err)
	}
	if end := start.Add(res.Elapsed); end.Before(lastClose) {
		t.Fatalf("drained at %v, before the last active client closed", res.Elapsed)
	}
	// While both were busy, the drain saw them by path.
	saw := false
	for _, e := range evs {
		if e.Active == 2 && e.ByPath[conntable.PathForward] == 1 && e.ByPath[conntable.PathDirect] == 1 {
			saw = true
		}
	}
	if !saw {
		t.Fatal("no event showed the two busy clients, one forwarded and one direct")
	}
}

func TestKernelIdleKeepAliveDoesNotHoldTheDrain(t *testing.T) {
	l := newLab(t)
	idle := l.cli.Dial(t, srv4+":81")
	idle.MustGet(t) // then silent, connection kept open
	res, evs, err := l.wait(t, fast())
	if err != nil || res.Outcome != drain.Drained {
		t.Fatalf("got %+v, %v; the idle keep-alive held the drain", res, err)
	}
	if last := evs[len(evs)-1]; last.Idle != 1 {
		t.Fatalf("last event %+v: want the keep-alive listed as idle", last)
	}
	if err := idle.Get(); err != nil {
		t.Fatalf("the idle connection itself was harmed: %v", err)
	}
}

func TestKernelDeadlineOutcome(t *testing.T) {
	for _, on := range []drain.OnDeadline{drain.Proceed, drain.Abort} {
		t.Run(string(on), func(t *testing.T) {
			l := newLab(t)
			var wg sync.WaitGroup
			stop := make(chan struct{})
			busy(t, l.cli.Dial(t, srv4+":80"), stop, &wg)
			defer func() { close(stop); wg.Wait() }()
			p := fast()
			p.Deadline, p.OnDeadline = 1500*time.Millisecond, on
			res, _, err := l.wait(t, p)
			switch on {
			case drain.Proceed:
				if err != nil || res.Outcome != drain.DeadlineProceed || res.Remaining != 1 {
					t.Fatalf("got %+v, %v; want deadline-proceed with 1 left", res, err)
				}
			case drain.Abort:
				if !errors.Is(err, drain.ErrDeadline) || res.Outcome != drain.DeadlineAbort || res.Remaining != 1 {
					t.Fatalf("got %+v, %v; want ErrDeadline with 1 left", res, err)
				}
			}
		})
	}
}

func TestKernelIPv6(t *testing.T) {
	l := newLab(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	c := l.cli.Dial(t, "["+srv6+"]:81")
	busy(t, c, stop, &wg)
	go func() { time.Sleep(time.Second); close(stop) }()
	res, evs, err := l.wait(t, fast())
	wg.Wait()
	if err != nil || res.Outcome != drain.Drained {
		t.Fatalf("got %+v, %v", res, err)
	}
	for _, e := range evs {
		if e.Oldest != nil && e.Oldest.Peer == c.Peer() && e.Oldest.Path == conntable.PathForward && e.Oldest.Peer.Addr().Is6() {
			return
		}
	}
	t.Fatalf("no event listed the IPv6 client %s as the oldest forwarded connection", c.Peer())
}

func TestKernelHealthChecksDoNotHoldTheDrain(t *testing.T) {
	l := newLab(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	checks := 0
	wg.Add(1)
	// Checks of the backup entry, harsher than HAProxy's: a new connection
	// every 30 ms that sends a GET and stays open 20 ms, so almost every
	// poll (every 50 ms) sees one, but never the same one twice.
	go func() {
		defer wg.Done()
		for i := 0; i < 500; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			var nc net.Conn
			if err := l.cli.Do(func() (err error) { nc, err = net.DialTimeout("tcp", srv4+":80", time.Second); return err }); err != nil {
				t.Errorf("check: %v", err)
				return
			}
			c := l.cli.WrapClient(nc)
			if err := c.Get(); err != nil {
				t.Errorf("check: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
			nc.Close()
			checks++
		}
	}()
	p := fast()
	p.Deadline = 5 * time.Second
	res, evs, err := l.wait(t, p)
	close(stop)
	wg.Wait()
	if err != nil || res.Outcome != drain.Drained {
		t.Fatalf("got %+v, %v; health checks held the drain open", res, err)
	}
	seen := 0
	for _, e := range evs {
		seen += e.New
	}
	if seen < len(evs)/2 {
		t.Fatalf("polls saw a check in %d of %d polls (%d checks): too few for the test to prove anything", seen, len(evs), checks)
	}
}
