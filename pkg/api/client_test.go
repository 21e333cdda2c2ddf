package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/drainctl/drainctl/pkg/maintenance"
)

// serveStatus answers GET /v1/status on a unix socket of its own and
// returns the socket's path.
func serveStatus(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(maintenance.Status{})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// A Client's calls share one HTTP client: the second status request goes
// over the connection the first one opened (one dial), where a client
// made per call dialed every time.
func TestClientDialsOnce(t *testing.T) {
	sock := serveStatus(t)
	var dials atomic.Int32
	c := &Client{Socket: sock, Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	for i := 0; i < 3; i++ {
		if _, err := c.Status(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d dials for 3 requests, want 1", n)
	}
}

// The zero value works: it dials Socket with a net.Dialer of its own.
func TestClientZeroValue(t *testing.T) {
	var c Client
	c.Socket = serveStatus(t)
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Socket = filepath.Join(t.TempDir(), "none.sock")
	if _, err := (&Client{Socket: c.Socket}).Status(context.Background()); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("no socket: %v, want ErrUnreachable", err)
	}
}

// A refused user is told the socket's group by name and that the group
// counts from the next login; with no socket to read, the package's
// group, drainctl, is named.
func TestPermissionErrorNamesTheGroup(t *testing.T) {
	refuse := func(context.Context, string, string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)}
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	if err := os.WriteFile(sock, nil, 0o660); err != nil {
		t.Fatal(err)
	}
	// A group other than root's, when this test may give the file one
	// (as root): the hint must be the join-the-group one.
	gid := os.Getgid()
	if os.Geteuid() == 0 {
		if g, err := user.LookupGroup("nogroup"); err == nil {
			gid, _ = strconv.Atoi(g.Gid)
			if err := os.Chown(sock, 0, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := fallbackGroup
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		want = g.Name
	}
	_, err := (&Client{Socket: sock, Dial: refuse}).Status(context.Background())
	if !errors.Is(err, ErrPermission) {
		t.Fatalf("err %v, want ErrPermission", err)
	}
	if want != "root" {
		for _, s := range []string{"run with sudo, or join the socket's group, " + want, "usermod -aG " + want + " USER", "log in again"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%q lacks %q", err, s)
			}
		}
	}

	_, err = (&Client{Socket: filepath.Join(t.TempDir(), "gone.sock"), Dial: refuse}).Status(context.Background())
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), fmt.Sprintf("usermod -aG %s USER", fallbackGroup)) ||
		!strings.Contains(err.Error(), "log in again") {
		t.Fatalf("unreadable socket: %v, want the %s group named", err, fallbackGroup)
	}
}

// A root-only socket (no drainctl group when the agent started) sends the
// user to sudo: joining root's group is not the fix.
func TestPermissionHintRootOnlySocket(t *testing.T) {
	err := permissionHint("/run/drainctl/drainctl.sock", "root")
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "root's only") || strings.Contains(err.Error(), "join the socket's group") {
		t.Fatalf("%v", err)
	}
	err = permissionHint("/run/drainctl/drainctl.sock", "web")
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "join the socket's group, web: sudo usermod -aG web USER, then log in again") {
		t.Fatalf("%v", err)
	}
}
