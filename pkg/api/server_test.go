package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serveWith serves a recEngine on a socket of Listen's in dir, with
// limits lim and access a; the server is stopped at the test's end.
func serveWith(t *testing.T, dir string, lim limits, a Access) string {
	t.Helper()
	s := NewServer(&recEngine{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.lim = lim
	s.SetAccess(a)
	sock := filepath.Join(dir, "agent.sock")
	ln, err := Listen(sock, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return sock
}

// Listen never removes what is not a socket: a file at the socket's
// path (a mistyped --socket) is refused and left as it was.
func TestListenLeavesAFileAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drainctl.sock")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(path, 0)
	if err == nil {
		ln.Close()
		t.Fatal("Listen took the path of a regular file")
	}
	if b, rerr := os.ReadFile(path); rerr != nil || string(b) != "precious" || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("err %v; the file now %q (%v)", err, b, rerr)
	}
	// A stale socket (nobody answers) is still replaced.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	ln, err = Listen(stale, 0)
	if err != nil {
		t.Fatalf("a stale socket: %v", err)
	}
	ln.Close()
}

// A socket swapped for a symlink between its bind and its chown (a
// race an attacker with the directory could run) is refused: the
// symlink's target keeps its owner and mode.
func TestListenDoesNotFollowASwappedSocket(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "shadow")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "drainctl.sock")
	afterBind = func(p string) {
		os.Remove(p)
		os.Symlink(target, p)
	}
	defer func() { afterBind = func(string) {} }()
	ln, err := Listen(path, 4242001)
	if err == nil {
		ln.Close()
		t.Fatal("Listen accepted a socket swapped for a symlink")
	}
	fi, serr := os.Stat(target)
	if serr != nil {
		t.Fatal(serr)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o600 || st.Gid != 0 {
		t.Fatalf("the symlink's target is now mode %04o, group %d (err %v)", fi.Mode().Perm(), st.Gid, err)
	}
}

// A socket directory that others may write (not sticky) is refused:
// they could swap the socket.
func TestListenRefusesAnOpenDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(filepath.Join(dir, "drainctl.sock"), 0)
	if err == nil {
		ln.Close()
		t.Fatal("Listen in a directory anyone may write")
	}
	if !strings.Contains(err.Error(), "writable by others") {
		t.Fatalf("err %v", err)
	}
	if err := os.Chmod(dir, 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	ln, err = Listen(filepath.Join(dir, "drainctl.sock"), 0)
	if err != nil {
		t.Fatalf("a sticky directory (/tmp's kind): %v", err)
	}
	ln.Close()
}

// The socket is the mode the roles need (everyone connects, the agent
// decides), owned by root and the group given.
func TestListenModeAndGroup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drainctl.sock")
	ln, err := Listen(path, 4242001)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != SocketMode || st.Uid != 0 || st.Gid != 4242001 {
		t.Fatalf("socket mode %04o uid %d gid %d", fi.Mode().Perm(), st.Uid, st.Gid)
	}
}

// slowPool answers pool set after the body's deadline has long passed,
// and says whether the request's context was still alive.
type slowPool struct{ fakePoolEngine }

func (slowPool) PoolSet(ctx context.Context, _, _ string) (string, error) {
	select {
	case <-ctx.Done():
		return "", fmt.Errorf("the request's context ended: %w", ctx.Err())
	case <-time.After(3 * bodyTimeout):
		return "alive", nil
	}
}

// A pool route's body must arrive within the body deadline: a stalled
// body is cut off with 400, as an operation's is, instead of holding the
// connection. The deadline ends with the body: a pool call that outlasts
// it keeps its request's context.
func TestPoolBodyDeadline(t *testing.T) {
	old := bodyTimeout
	bodyTimeout = 300 * time.Millisecond
	defer func() { bodyTimeout = old }()
	c := servePool(t, &slowPool{})
	note, err := c.PoolSet(context.Background(), "2")
	if err != nil || note != "alive" {
		t.Fatalf("pool set outlasting the body's deadline: %q %v", note, err)
	}
	conn, err := net.Dial("unix", c.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"max_unava", PathPoolSet)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a stalled body: %v %v", resp, err)
	}
}

// An idle keep-alive connection is closed after the idle timeout.
func TestIdleConnectionClosed(t *testing.T) {
	lim := defaultLimits
	lim.idle = 200 * time.Millisecond
	sock := serveWith(t, t.TempDir(), lim, Access{})
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", PathStatus)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("an idle connection after %v: %v; want closed by the agent", time.Since(start).Round(time.Millisecond), err)
	}
}

// Past the cap of event subscribers a new one is refused with 503
// overloaded; one leaving makes room.
func TestEventSubscribersCapped(t *testing.T) {
	lim := defaultLimits
	lim.subscribers = 2
	sock := serveWith(t, t.TempDir(), lim, Access{})
	subscribe := func() (*http.Response, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://drainctl"+PathEvents, nil)
		resp, err := (&http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, cancel
	}
	var cancels []context.CancelFunc
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	for i := range 2 {
		resp, cancel := subscribe()
		cancels = append(cancels, cancel)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("subscriber %d: %s", i+1, resp.Status)
		}
	}
	resp, cancel := subscribe()
	cancels = append(cancels, cancel)
	if resp.StatusCode == http.StatusOK {
		t.Fatal("a third subscriber: 200, want 503")
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), `"overloaded"`) || !strings.Contains(string(b), "too many event subscribers") {
		t.Fatalf("a third subscriber: %s %s", resp.Status, b)
	}
	cancels[0]()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, cancel := subscribe()
		cancels = append(cancels, cancel)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no room after one left: %s", resp.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// oneTooMany is the conns child: n connections held, then one more,
// whose answer's status line it prints.
func oneTooMany(sock, n string) int {
	count, _ := strconv.Atoi(n)
	for range count {
		c, err := net.Dial("unix", sock)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer c.Close()
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", PathStatus)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(c)
	os.Stdout.Write(b)
	return 0
}

// A user other than root holds at most connsPerUser connections: one
// more is answered 503 overloaded and closed. Root is never capped.
func TestConnectionsCapped(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: it runs its client as another user")
	}
	dir := openDir(t)
	bin := runnableCopy(t, dir)
	lim := defaultLimits
	lim.conns, lim.connsPerUser = 6, 3
	sock := serveWith(t, dir, lim, Access{ReadAll: true})
	out := runChild(t, bin, "conns=3", sock, &syscall.Credential{Uid: 4242110, Gid: 4242100, Groups: []uint32{}})
	if !strings.HasPrefix(out, "HTTP/1.1 503") || !strings.Contains(out, `"overloaded"`) {
		t.Fatalf("the 4th connection of one user: %q", out)
	}
	out = runChild(t, bin, "conns=8", sock, nil)
	if !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Fatalf("root's 9th connection: %q", out)
	}
}
