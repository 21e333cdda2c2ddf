package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/drainctl/drainctl/pkg/api/apitype"
)

// ErrUnreachable is in the chain of the error when no agent answers on
// the socket (it is not running, or --socket points elsewhere): the CLI
// tells it from a failed operation with errors.Is and exits with a code
// of its own.
var ErrUnreachable = errors.New("the drainctl agent is not running")

// ErrPermission is in the chain of the error when the socket refused
// this user (neither root nor in the socket's group); the error itself
// says how to get access, and the CLI exits with a code of its own.
var ErrPermission = errors.New("permission denied on the drainctl socket")

// Client talks to the agent. The zero value dials DefaultSocket. A Client
// is safe for concurrent use and must not be copied after its first call:
// it keeps one HTTP client, and so one pool of connections, for its life
// (maintenance run's enter and exit share a connection).
type Client struct {
	// Socket is the agent's socket path; empty means DefaultSocket.
	Socket string
	// Dial, if set, connects to the agent instead of a net.Dialer; its
	// address is Socket (or DefaultSocket). Tests use it; the hints for a
	// refused or absent socket apply to what it returns as well.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	once sync.Once
	hc   *http.Client
}

func (c *Client) socket() string {
	if c.Socket != "" {
		return c.Socket
	}
	return DefaultSocket
}

// Client time limits. Answers that stream (operations, events) have no
// overall limit: an operation lasts as long as its drain and commands.
const (
	dialTimeout = 5 * time.Second
	// headerTimeout bounds the wait for the agent's first answer: it
	// answers at once, then streams.
	headerTimeout = 15 * time.Second
	// statusTimeout bounds a whole status request.
	statusTimeout = 30 * time.Second
)

// http is the one HTTP client of c, made at its first call.
func (c *Client) http() *http.Client {
	c.once.Do(func() {
		c.hc = &http.Client{Transport: &http.Transport{
			ResponseHeaderTimeout: headerTimeout,
			DialContext:           c.dial,
		}}
	})
	return c.hc
}

// dial connects to the socket, whatever address net/http asks for (it
// asks for "drainctl:80"), and turns the two failures people meet into
// what to do about them.
func (c *Client) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	dial := c.Dial
	if dial == nil {
		d := net.Dialer{Timeout: dialTimeout}
		dial = d.DialContext
	}
	conn, err := dial(ctx, "unix", c.socket())
	switch {
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return nil, permissionError(c.socket())
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
		return nil, fmt.Errorf("%w (nothing answers on %s): start it with `systemctl start drainctl`, or `drainctl agent`, or point --socket / DRAINCTL_SOCKET at it", ErrUnreachable, c.socket())
	}
	return conn, err
}

// fallbackGroup is the group the package creates for the socket, named
// when the socket's own cannot be read.
const fallbackGroup = "drainctl"

// permissionError says how to get in: sudo, or the socket's group. The
// group is read from the socket itself (the agent's --socket-group may
// not be drainctl), and the hint says that a new login is needed: a
// shell started before usermod does not have the group, which is the
// usual reason a user who "joined" is still refused.
func permissionError(socket string) error { return permissionHint(socket, socketGroup(socket)) }

// permissionHint is permissionError for a socket owned by group.
func permissionHint(socket, group string) error {
	if group == "root" {
		return fmt.Errorf("%w %s: run with sudo (the socket is root's only: the agent found no %s group when it started; "+
			"create it, restart the agent, then sudo usermod -aG %s USER and log in again)", ErrPermission, socket, fallbackGroup, fallbackGroup)
	}
	return fmt.Errorf("%w %s: run with sudo, or join the socket's group, %s: sudo usermod -aG %s USER, "+
		"then log in again (the group counts from the user's next login)", ErrPermission, socket, group, group)
}

// socketGroup names the group owning the socket, else fallbackGroup.
func socketGroup(socket string) string {
	fi, err := os.Stat(socket)
	if err != nil {
		return fallbackGroup
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fallbackGroup
	}
	g, err := user.LookupGroupId(strconv.FormatUint(uint64(st.Gid), 10))
	if err != nil {
		return fallbackGroup
	}
	return g.Name
}

// unwrapDial drops net/http's "Get URL:" wrapping from a dial failure, so
// the CLI prints the hint; errors.Is(err, ErrUnreachable) works either way.
func unwrapDial(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && (errors.Is(err, ErrUnreachable) || errors.Is(err, ErrPermission)) {
		return ue.Err
	}
	return err
}

// Status asks the agent for its status.
func (c *Client) Status(ctx context.Context) (apitype.Status, error) {
	var st apitype.Status
	return st, c.get(ctx, PathStatus, &st)
}

// History asks the agent for its last n operations (all with n <= 0).
func (c *Client) History(ctx context.Context, n int) ([]apitype.HistoryEntry, error) {
	var out []apitype.HistoryEntry
	return out, c.get(ctx, fmt.Sprintf("%s?n=%d", PathHistory, max(n, 0)), &out)
}

// get asks for path and decodes the JSON answer into v, within
// statusTimeout.
func (c *Client) get(ctx context.Context, path string, v any) error {
	return c.call(ctx, http.MethodGet, path, nil, v)
}

// call sends one request and decodes the JSON answer into v, within
// statusTimeout: the requests that do not stream.
func (c *Client) call(ctx context.Context, method, path string, body, v any) error {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// send is every request's one path: it sends body (if not nil) as JSON
// and returns the answer when the agent accepted the request (200), for
// the caller to read and close; otherwise the agent's error (an
// *apitype.Error), or the dial's hint.
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://drainctl"+path, rd)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, unwrapDial(err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

func decodeError(resp *http.Response) error {
	var b apitype.ErrorBody
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil || b.Error == nil {
		return fmt.Errorf("agent answered %s", resp.Status)
	}
	return b.Error
}

// readLines hands each JSON line of a streamed answer to fn until fn
// says it has what it waited for (nil), or the answer ends (the
// decoder's error: io.EOF at a clean end). A JSON decoder, not a line
// scanner: a line of any length (a command's output) is read whole.
func readLines(r io.Reader, fn func(apitype.Line) (last bool)) error {
	dec := json.NewDecoder(bufio.NewReader(r))
	for {
		var l apitype.Line
		if err := dec.Decode(&l); err != nil {
			return err
		}
		if fn(l) {
			return nil
		}
	}
}

// Enter asks the agent to take the server out and hold it (maintenance
// enter). Like Exit and Restart it calls progress with each event the
// agent streams while the operation runs, and returns the result; a
// failed operation returns an *apitype.Error with its code. A
// connection lost midway does not stop the operation: it goes on in the
// agent (drainctl status shows where it is).
func (c *Client) Enter(ctx context.Context, req apitype.Request, progress func(apitype.Event)) (apitype.Result, error) {
	return c.op(ctx, PathEnter, req, progress)
}

// Exit asks the agent to check the web server and bring a held server
// back into rotation (maintenance exit); events and errors as Enter.
func (c *Client) Exit(ctx context.Context, req apitype.Request, progress func(apitype.Event)) (apitype.Result, error) {
	return c.op(ctx, PathExit, req, progress)
}

// Restart asks the agent for the whole cycle: withdraw, drain, config
// test, graceful restart, readiness check, restore; events and errors as
// Enter.
func (c *Client) Restart(ctx context.Context, req apitype.Request, progress func(apitype.Event)) (apitype.Result, error) {
	return c.op(ctx, PathRestart, req, progress)
}

// Reboot asks the agent to withdraw, drain and reboot the host; the next
// boot's agent puts the server back. The answer ends when the host goes
// down: the last line is then an agent-stopping error, or none at all
// (the connection cut); events and errors otherwise as Enter.
func (c *Client) Reboot(ctx context.Context, req apitype.Request, progress func(apitype.Event)) (apitype.Result, error) {
	return c.op(ctx, PathReboot, req, progress)
}

// WebPolicy asks the agent whether the package manager may do
// req.Job to req.Unit now (drainctl's policy-rc.d).
func (c *Client) WebPolicy(ctx context.Context, req apitype.Request) (apitype.PolicyAnswer, error) {
	var a apitype.PolicyAnswer
	return a, c.call(ctx, http.MethodPost, PathWebPolicy, req, &a)
}

// WebStop tells the agent that systemd is about to stop the web server's
// unit (req.Unit; req.Job says why): it returns once the server is out
// of rotation, or the agent's web wait gave up. The guard unit's hook.
func (c *Client) WebStop(ctx context.Context, req apitype.Request, progress func(apitype.Event)) (apitype.Result, error) {
	return c.op(ctx, PathWebStop, req, progress)
}

// WebStart tells the agent that systemd started the web server's unit:
// the server goes back if that unit's stop took it out.
func (c *Client) WebStart(ctx context.Context, req apitype.Request, progress func(apitype.Event)) (apitype.Result, error) {
	return c.op(ctx, PathWebStart, req, progress)
}

func (c *Client) op(ctx context.Context, path string, r apitype.Request, progress func(apitype.Event)) (apitype.Result, error) {
	resp, err := c.send(ctx, http.MethodPost, path, r)
	if err != nil {
		return apitype.Result{}, err
	}
	defer resp.Body.Close()
	var last *apitype.Line
	err = readLines(resp.Body, func(l apitype.Line) bool {
		switch {
		case l.Event != nil && progress != nil:
			progress(*l.Event)
		case l.Result != nil:
			last = &l
		}
		return last != nil
	})
	var se *json.SyntaxError
	switch {
	case last != nil && last.Error != nil:
		return *last.Result, last.Error
	case last != nil:
		return *last.Result, nil
	case errors.Is(err, io.EOF):
		return apitype.Result{}, errors.New("the agent ended the answer without a result (see drainctl status)")
	case errors.As(err, &se):
		return apitype.Result{}, fmt.Errorf("bad answer from the agent: %w", err)
	}
	return apitype.Result{}, fmt.Errorf("connection to the agent lost: %w (the operation goes on in the agent; see drainctl status)", err)
}

// Events streams every engine event to fn until ctx ends.
func (c *Client) Events(ctx context.Context, fn func(apitype.Event)) error {
	resp, err := c.send(ctx, http.MethodGet, PathEvents, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	err = readLines(resp.Body, func(l apitype.Line) bool {
		if l.Event != nil {
			fn(*l.Event)
		}
		return false
	})
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("the agent closed the event stream (it stopped or restarted)")
	}
	return fmt.Errorf("event stream from the agent: %w", err)
}
