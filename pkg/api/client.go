package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"

	"github.com/drainctl/drainctl/pkg/maintenance"
)

// ErrUnreachable: no agent answers on the socket.
var ErrUnreachable = errors.New("the drainctl agent is not running")

// ErrPermission: the socket refused this user.
var ErrPermission = errors.New("permission denied on the drainctl socket")

// Client talks to the agent. The zero value dials DefaultSocket.
type Client struct {
	// Socket is the agent's socket path; empty means DefaultSocket.
	Socket string
}

func (c *Client) socket() string {
	if c.Socket != "" {
		return c.Socket
	}
	return DefaultSocket
}

func (c *Client) http() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", c.socket())
			switch {
			case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
				return nil, fmt.Errorf("%w %s: run with sudo, or join the socket's group", ErrPermission, c.socket())
			case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED):
				return nil, fmt.Errorf("%w (nothing answers on %s): start it with `systemctl start drainctl`, or `drainctl agent`, or point --socket / DRAINCTL_SOCKET at it", ErrUnreachable, c.socket())
			}
			return conn, err
		},
	}}
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
func (c *Client) Status(ctx context.Context) (maintenance.Status, error) {
	var st maintenance.Status
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://drainctl"+PathStatus, nil)
	resp, err := c.http().Do(req)
	if err != nil {
		return st, unwrapDial(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, decodeError(resp)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

func decodeError(resp *http.Response) error {
	var b ErrorBody
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil || b.Error == nil {
		return fmt.Errorf("agent answered %s", resp.Status)
	}
	return b.Error
}

// Enter, Exit and Restart run an operation, calling progress with each
// event, and return its result; a failed operation returns a
// *maintenance.Error with its code.
func (c *Client) Enter(ctx context.Context, req maintenance.Request, progress func(maintenance.Event)) (maintenance.Result, error) {
	return c.op(ctx, PathEnter, req, progress)
}

func (c *Client) Exit(ctx context.Context, req maintenance.Request, progress func(maintenance.Event)) (maintenance.Result, error) {
	return c.op(ctx, PathExit, req, progress)
}

func (c *Client) Restart(ctx context.Context, req maintenance.Request, progress func(maintenance.Event)) (maintenance.Result, error) {
	return c.op(ctx, PathRestart, req, progress)
}

func (c *Client) op(ctx context.Context, path string, r maintenance.Request, progress func(maintenance.Event)) (maintenance.Result, error) {
	body, _ := json.Marshal(r)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://drainctl"+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http().Do(req)
	if err != nil {
		return maintenance.Result{}, unwrapDial(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return maintenance.Result{}, decodeError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return maintenance.Result{}, fmt.Errorf("bad line from the agent: %w", err)
		}
		switch {
		case l.Event != nil && progress != nil:
			progress(*l.Event)
		case l.Result != nil:
			if l.Error != nil {
				return *l.Result, l.Error
			}
			return *l.Result, nil
		}
	}
	if err := sc.Err(); err != nil {
		return maintenance.Result{}, fmt.Errorf("connection to the agent lost: %w (the operation goes on in the agent; see drainctl status)", err)
	}
	return maintenance.Result{}, errors.New("the agent ended the answer without a result (see drainctl status)")
}

// Events streams every engine event to fn until ctx ends.
func (c *Client) Events(ctx context.Context, fn func(maintenance.Event)) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://drainctl"+PathEvents, nil)
	resp, err := c.http().Do(req)
	if err != nil {
		return unwrapDial(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var l Line
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Event != nil {
			fn(*l.Event)
		}
	}
	return ctx.Err()
}
