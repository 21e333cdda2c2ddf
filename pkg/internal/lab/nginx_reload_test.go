package lab

// What nginx does on a reload (`nginx -s reload`), measured on the lab's
// nginx config: figures for docs/design.md ("nginx's reload, measured").

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/namespace"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// The slow request: bigSize bytes at slowRate bytes/s (limit_rate) take
// about 4 s, long enough to be in flight across a reload.
const (
	bigSize  = 400 * 1024
	slowRate = 100 * 1024
)

// reloadNginx is one nginx, the lab's config plus a throttled location,
// alone in a namespace of its own.
type reloadNginx struct {
	ns        *namespace.NS
	dir, conf string
	master    int
}

// startReloadNginx starts it; extra goes into the config's main context
// (worker_shutdown_timeout). keepalive_timeout is raised to 60 s so that
// an idle connection closed within it was closed by the reload.
func startReloadNginx(t *testing.T, name, extra string) *reloadNginx {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.RequireCmd(t, "nginx")
	id := fmt.Sprintf("%d%s", os.Getpid()%100000, name)
	ns, err := namespace.New("dl-" + id)
	if err != nil {
		t.Fatal(err)
	}
	n := &reloadNginx{ns: ns, dir: filepath.Join(os.TempDir(), "drainctl-ngxreload-"+id)}
	t.Cleanup(func() { n.close(t) })
	for _, d := range []string{"www", "tmp"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(n.dir, "www", "index.html"), []byte(name+"\n"), 0o644)
	os.WriteFile(filepath.Join(n.dir, "www", "big"), make([]byte, bigSize), 0o644)
	conf := nginxConfig(name, n.dir, "127.0.0.1")
	conf = strings.Replace(conf, "worker_processes 2;\n", "worker_processes 2;\n"+extra, 1)
	conf = strings.Replace(conf, "keepalive_timeout 5s;", "keepalive_timeout 60s;", 1)
	conf = strings.Replace(conf, "        index index.html;\n",
		fmt.Sprintf("        index index.html;\n        location = /big { limit_rate %d; }\n", slowRate), 1)
	n.conf = filepath.Join(n.dir, "nginx.conf")
	if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := ns.Exec("nginx", "-c", n.conf); err != nil {
		t.Fatalf("nginx: %v: %s", err, out)
	}
	if n.master, err = waitPidFile(filepath.Join(n.dir, "nginx.pid")); err != nil {
		t.Fatalf("nginx: %v", err)
	}
	if !waitFor(func() bool { return len(childrenOf(n.master)) == 2 }) {
		t.Fatalf("nginx: workers %v, want 2", childrenOf(n.master))
	}
	return n
}

// close kills the master (by its pid) and waits for its workers to go,
// then removes the namespace and the files.
func (n *reloadNginx) close(t *testing.T) {
	if n.master != 0 {
		workers := childrenOf(n.master)
		syscall.Kill(n.master, syscall.SIGTERM)
		for _, pid := range append(workers, n.master) {
			for i := 0; i < 50 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(100 * time.Millisecond)
			}
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if err := n.ns.Close(); err != nil {
		t.Error(err)
	}
	os.RemoveAll(n.dir)
}

// reload runs `nginx -s reload` and says when.
func (n *reloadNginx) reload(t *testing.T) time.Time {
	t.Helper()
	at := time.Now()
	if out, err := n.ns.Exec("nginx", "-c", n.conf, "-s", "reload"); err != nil {
		t.Fatalf("reload: %v: %s", err, out)
	}
	return at
}

// childrenOf lists the processes whose parent is pid (nginx's workers).
func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, not ')'.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, p)
		}
	}
	return kids
}

// watchExits polls every 10 ms, for 30 s at most, until every one of
// pids has exited; the function it returns waits for that and says when
// each did (zero: still running).
func watchExits(pids []int) func() map[int]time.Time {
	gone := map[int]time.Time{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end) && len(gone) < len(pids); time.Sleep(10 * time.Millisecond) {
			for _, p := range pids {
				if _, ok := gone[p]; !ok && syscall.Kill(p, 0) != nil {
					gone[p] = time.Now()
				}
			}
		}
	}()
	return func() map[int]time.Time { <-done; return gone }
}

// httpConn is one client connection to the nginx.
type httpConn struct {
	c net.Conn
	r *bufio.Reader
}

func (n *reloadNginx) dial(t *testing.T) *httpConn {
	t.Helper()
	c, err := n.ns.DialContext(context.Background(), "tcp", "127.0.0.1:80")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &httpConn{c: c, r: bufio.NewReader(c)}
}

// get sends GET path and reads the response's head.
func (h *httpConn) get(path string) (*http.Response, error) {
	h.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(h.c, "GET %s HTTP/1.1\r\nHost: lab\r\n\r\n", path); err != nil {
		return nil, err
	}
	return http.ReadResponse(h.r, nil)
}

// closedAt waits (30 s at most) for the server to close the connection
// and says when it did; zero if it did not.
func (h *httpConn) closedAt() time.Time {
	h.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := h.r.ReadByte(); errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		return time.Now()
	}
	return time.Time{}
}

// slowGet starts GET /big on a connection of its own, waits for the
// response's head, and reads the body on: the function it returns waits
// for the body's end and says how many bytes came, when, and how it ended.
func (n *reloadNginx) slowGet(t *testing.T) (*httpConn, func() (int64, time.Time, error)) {
	t.Helper()
	h := n.dial(t)
	resp, err := h.get("/big")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /big: %v %v", resp, err)
	}
	var got int64
	var rerr error
	var at time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		got, rerr = io.Copy(io.Discard, resp.Body)
		at = time.Now()
	}()
	return h, func() (int64, time.Time, error) { <-done; return got, at, rerr }
}

// freshGets sends GET / on a new connection every 5 ms until stop is
// closed (400 at most) and returns how many were sent and how many failed.
func (n *reloadNginx) freshGets(t *testing.T, stop chan struct{}) func() (int, []error) {
	var sent int
	var fails []error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ; sent < 400; sent++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			c, err := n.ns.DialContext(context.Background(), "tcp", "127.0.0.1:80")
			if err == nil {
				h := &httpConn{c: c, r: bufio.NewReader(c)}
				var resp *http.Response
				if resp, err = h.get("/"); err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
				c.Close()
			}
			if err != nil {
				fails = append(fails, err)
			}
		}
	}()
	return func() (int, []error) { wg.Wait(); return sent, fails }
}

// TestNginxReloadBehaviour measures what `nginx -s reload` does to the
// connections it finds, on the lab's nginx config, and asserts what
// drainctl relies on: a request in flight completes across the reload
// and new connections are served throughout; an idle keep-alive
// connection is closed by the reload (not its 60 s timeout); with
// worker_shutdown_timeout 2s, a 4 s request is cut instead.
func TestNginxReloadBehaviour(t *testing.T) {
	t.Run("default", testNginxReloadDefault)
	t.Run("worker_shutdown_timeout", testNginxReloadShutdownTimeout)
}

func testNginxReloadDefault(t *testing.T) {
	n := startReloadNginx(t, "ngxrd", "")
	slow, body := n.slowGet(t)
	idle := n.dial(t)
	resp, err := idle.get("/")
	if err != nil || resp.StatusCode != 200 || resp.Close {
		t.Fatalf("GET / on the keep-alive connection: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	time.Sleep(500 * time.Millisecond) // the slow request under way, the other connection idle
	old := childrenOf(n.master)
	exits := watchExits(old)
	stop := make(chan struct{})
	fresh := n.freshGets(t, stop)
	time.Sleep(100 * time.Millisecond)
	at := n.reload(t)
	signalled := time.Since(at)
	idleClosed := idle.closedAt()
	got, end, rerr := body()
	slowClosed := slow.closedAt()
	close(stop)
	sent, fails := fresh()
	gone := exits()

	if idleClosed.IsZero() {
		t.Error("the idle keep-alive connection was not closed within 30 s of the reload")
	}
	if got != bigSize || rerr != nil || !end.After(at) {
		t.Errorf("the request in flight at the reload got %d of %d bytes (%v), ended %v after it; want all of it",
			got, bigSize, rerr, end.Sub(at))
	}
	if slowClosed.IsZero() {
		t.Error("the old worker kept the slow request's connection open after its response")
	}
	if len(fails) > 0 || sent == 0 {
		t.Errorf("new connections across the reload: %d of %d failed: %v", len(fails), sent, fails)
	}
	if len(gone) != len(old) {
		t.Errorf("old workers %v: only %v exited", old, gone)
	}
	if now := childrenOf(n.master); len(now) != 2 || !disjoint(now, old) {
		t.Errorf("workers after the reload %v (before %v), want 2 new ones", now, old)
	}
	t.Logf("nginx -s reload returned in %v; the idle keep-alive connection closed %v after the reload",
		signalled.Round(time.Millisecond), idleClosed.Sub(at).Round(time.Millisecond))
	t.Logf("the request in flight: %d bytes, complete %v after the reload; its connection closed %v after the response",
		got, end.Sub(at).Round(time.Millisecond), slowClosed.Sub(end).Round(time.Millisecond))
	for _, p := range old {
		t.Logf("old worker %d exited %v after the reload", p, gone[p].Sub(at).Round(time.Millisecond))
	}
	t.Logf("new connections across the reload: %d sent, %d failed", sent, len(fails))
}

func testNginxReloadShutdownTimeout(t *testing.T) {
	n := startReloadNginx(t, "ngxrt", "worker_shutdown_timeout 2s;\n")
	_, body := n.slowGet(t)
	time.Sleep(500 * time.Millisecond)
	old := childrenOf(n.master)
	exits := watchExits(old)
	at := n.reload(t)
	got, end, rerr := body()
	gone := exits()
	if got >= bigSize || rerr == nil {
		t.Fatalf("with worker_shutdown_timeout 2s, the 4 s request got %d of %d bytes (%v): not cut", got, bigSize, rerr)
	}
	if len(gone) != len(old) {
		t.Errorf("old workers %v: only %v exited", old, gone)
	}
	t.Logf("worker_shutdown_timeout 2s: the request in flight cut %v after the reload, %d of %d bytes (%v)",
		end.Sub(at).Round(time.Millisecond), got, bigSize, rerr)
	for _, p := range old {
		t.Logf("old worker %d exited %v after the reload", p, gone[p].Sub(at).Round(time.Millisecond))
	}
}

// disjoint says whether a and b have no element in common.
func disjoint(a, b []int) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return false
			}
		}
	}
	return true
}
