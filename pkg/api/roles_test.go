package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/history"
	"github.com/drainctl/drainctl/pkg/maintenance"
)

// recEngine answers every route at once and records which were called.
type recEngine struct {
	mu     sync.Mutex
	called []string
}

func (e *recEngine) rec(route string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.called = append(e.called, route)
}

func (e *recEngine) take() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.called
	e.called = nil
	slices.Sort(c)
	return slices.Compact(c)
}

type opFunc = func(maintenance.Request, func(maintenance.Event)) (maintenance.Result, error)

func (e *recEngine) op(route string) opFunc {
	return func(maintenance.Request, func(maintenance.Event)) (maintenance.Result, error) {
		e.rec(route)
		return maintenance.Result{}, nil
	}
}

func (e *recEngine) Status(context.Context) (maintenance.Status, error) {
	e.rec("GET " + PathStatus)
	return maintenance.Status{}, nil
}
func (e *recEngine) Enter(r maintenance.Request, f func(maintenance.Event)) (maintenance.Result, error) {
	return e.op("POST "+PathEnter)(r, f)
}
func (e *recEngine) Exit(r maintenance.Request, f func(maintenance.Event)) (maintenance.Result, error) {
	return e.op("POST "+PathExit)(r, f)
}
func (e *recEngine) Restart(r maintenance.Request, f func(maintenance.Event)) (maintenance.Result, error) {
	return e.op("POST "+PathRestart)(r, f)
}
func (e *recEngine) Reboot(r maintenance.Request, f func(maintenance.Event)) (maintenance.Result, error) {
	return e.op("POST "+PathReboot)(r, f)
}
func (e *recEngine) WebStop(r maintenance.Request, f func(maintenance.Event)) (maintenance.Result, error) {
	return e.op("POST "+PathWebStop)(r, f)
}
func (e *recEngine) WebStart(r maintenance.Request, f func(maintenance.Event)) (maintenance.Result, error) {
	return e.op("POST "+PathWebStart)(r, f)
}
func (e *recEngine) WebPolicy(maintenance.Request) (maintenance.PolicyAnswer, error) {
	e.rec("POST " + PathWebPolicy)
	return maintenance.PolicyAnswer{}, nil
}
func (e *recEngine) Subscribe() (<-chan maintenance.Event, func()) {
	e.rec("GET " + PathEvents)
	return make(chan maintenance.Event), func() {}
}
func (e *recEngine) History(int) ([]history.Entry, error) {
	e.rec("GET " + PathHistory)
	return nil, nil
}
func (e *recEngine) PoolStatus(context.Context) (maintenance.PoolStatus, error) {
	e.rec("GET " + PathPool)
	return maintenance.PoolStatus{}, nil
}
func (e *recEngine) PoolRelease(context.Context, string, bool, string) (string, error) {
	e.rec("POST " + PathPoolRelease)
	return "", nil
}
func (e *recEngine) PoolForget(context.Context, string, string) (string, error) {
	e.rec("POST " + PathPoolForget)
	return "", nil
}
func (e *recEngine) PoolPause(context.Context, string, string) error {
	e.rec("POST " + PathPoolPause)
	return nil
}
func (e *recEngine) PoolResume(context.Context, string) error {
	e.rec("POST " + PathPoolResume)
	return nil
}
func (e *recEngine) PoolSet(context.Context, string, string) (string, error) {
	e.rec("POST " + PathPoolSet)
	return "", nil
}

// whoMayDoWhat is the table README's "Who may do what" renders: the
// role each route needs, stated here independently of Routes. r: every
// reader (the read group, or anyone with socket_read_all), o: the
// operators (the socket group), root.
var whoMayDoWhat = []struct {
	route string
	need  Role
}{
	{"GET " + PathStatus, RoleRead},
	{"GET " + PathHistory, RoleRead},
	{"GET " + PathEvents, RoleRead},
	{"GET " + PathMetrics, RoleRead},
	{"GET " + PathPool, RoleRead},
	{"POST " + PathEnter, RoleOperate},
	{"POST " + PathExit, RoleOperate},
	{"POST " + PathRestart, RoleOperate},
	{"POST " + PathReboot, RoleOperate},
	{"POST " + PathWebStop, RoleOperate},
	{"POST " + PathWebStart, RoleOperate},
	{"POST " + PathWebPolicy, RoleOperate},
	{"POST " + PathPoolRelease, RoleRoot},
	{"POST " + PathPoolForget, RoleRoot},
	{"POST " + PathPoolPause, RoleRoot},
	{"POST " + PathPoolResume, RoleRoot},
	{"POST " + PathPoolSet, RoleRoot},
}

// The test's groups: numbers no system has, no /etc/group entry needed.
var (
	opGroup = Group{Name: "drainctl-t-op", GID: 4242001}
	roGroup = Group{Name: "drainctl-t-ro", GID: 4242002}
)

// childEnv makes the test binary a client (TestMain), "MODE:SOCKET":
// routes tries every route of whoMayDoWhat on the socket and prints one
// JSON line per route; conns:N holds N connections and prints what
// one more is answered.
const childEnv = "DRAINCTL_API_TEST_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		mode, sock, _ := strings.Cut(v, ":")
		if n, ok := strings.CutPrefix(mode, "conns="); ok {
			os.Exit(oneTooMany(sock, n))
		}
		os.Exit(tryEveryRoute(sock))
	}
	os.Exit(m.Run())
}

// tried is what one route answered a child.
type tried struct {
	Route  string `json:"route"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Msg    string `json:"message"`
}

// tryEveryRoute is the child: each route once, its answer's status and,
// for an error, its code and message.
func tryEveryRoute(sock string) int {
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	enc := json.NewEncoder(os.Stdout)
	for _, r := range whoMayDoWhat {
		method, path, _ := strings.Cut(r.route, " ")
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(`{}`)
		}
		req, _ := http.NewRequest(method, "http://drainctl"+path, body)
		resp, err := hc.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, r.route, err)
			return 1
		}
		t := tried{Route: r.route, Status: resp.StatusCode}
		if resp.StatusCode != http.StatusOK {
			var b struct {
				Error struct{ Code, Message string }
			}
			json.NewDecoder(resp.Body).Decode(&b)
			t.Code, t.Msg = b.Error.Code, b.Error.Message
		}
		resp.Body.Close() // events streams: its answer's status is enough
		enc.Encode(t)
	}
	return 0
}

// runnableCopy copies the test binary where any user may run it (go
// test's own directory is its builder's only).
func runnableCopy(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "roles.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// openDir is a temporary directory every user may enter: the socket's,
// and the child's binary. Removed at the end.
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "drainctl-roles-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// serveRoles serves a recEngine with access a on a socket of Listen's,
// as the agent does: its group the operators'.
func serveRoles(t *testing.T, dir string, a Access) (string, *recEngine) {
	t.Helper()
	e := &recEngine{}
	s := NewServer(e, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.HandleMetrics(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { e.rec("GET " + PathMetrics) }))
	s.SetAccess(a)
	sock := filepath.Join(dir, fmt.Sprintf("agent-%d.sock", time.Now().UnixNano()))
	ln, err := Listen(sock, opGroup.GID)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return sock, e
}

// runChild runs the child as cred (nil: as root) in mode on sock, and
// returns its output.
func runChild(t *testing.T, bin, mode, sock string, cred *syscall.Credential) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^$")
	cmd.Env = []string{childEnv + "=" + mode + ":" + sock}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child as %+v: %v\n%s", cred, err, stderr.String())
	}
	return string(out)
}

// asCaller runs the routes child as cred (nil: as root) and returns its
// lines.
func asCaller(t *testing.T, bin, sock string, cred *syscall.Credential) []tried {
	t.Helper()
	out := runChild(t, bin, "routes", sock, cred)
	var got []tried
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l tried
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("child's line %q: %v", sc.Text(), err)
		}
		got = append(got, l)
	}
	return got
}

// Real callers of each role, by uid and groups (numeric, no passwd
// entries), try every route against a real server on a socket made by
// Listen: each route is allowed or refused (403 forbidden, the message
// naming the group to join, and the engine not called) exactly as
// whoMayDoWhat says.
func TestWhoMayDoWhat(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: it runs its clients as other users")
	}
	dir := openDir(t)
	bin := runnableCopy(t, dir)
	both := Access{Operators: &opGroup, Readers: &roGroup}
	const other = 4242100 // a group of no role
	cases := []struct {
		name   string
		access Access
		cred   *syscall.Credential
		role   Role
	}{
		{"root", both, nil, RoleRoot},
		{"operator by a supplementary group", both, &syscall.Credential{Uid: 4242101, Gid: other, Groups: []uint32{7, 4242001}}, RoleOperate},
		{"operator by its primary group", both, &syscall.Credential{Uid: 4242102, Gid: 4242001, Groups: []uint32{}}, RoleOperate},
		{"reader by a supplementary group", both, &syscall.Credential{Uid: 4242103, Gid: other, Groups: []uint32{4242002}}, RoleRead},
		{"in no group of the socket", both, &syscall.Credential{Uid: 4242104, Gid: other, Groups: []uint32{4242999}}, RoleNone},
		{"anyone, with socket_read_all", Access{Operators: &opGroup, ReadAll: true}, &syscall.Credential{Uid: 4242105, Gid: other, Groups: []uint32{}}, RoleRead},
		{"no operator group: only root operates", Access{Readers: &roGroup}, &syscall.Credential{Uid: 4242106, Gid: 4242001, Groups: []uint32{4242002}}, RoleRead},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sock, e := serveRoles(t, dir, tc.access)
			got := asCaller(t, bin, sock, tc.cred)
			if len(got) != len(whoMayDoWhat) {
				t.Fatalf("%d answers for %d routes: %+v", len(got), len(whoMayDoWhat), got)
			}
			var allowed []string
			for i, r := range whoMayDoWhat {
				g := got[i]
				if tc.role >= r.need {
					allowed = append(allowed, r.route)
					if g.Status != http.StatusOK {
						t.Errorf("%s: %d %s %q; want allowed", r.route, g.Status, g.Code, g.Msg)
					}
					continue
				}
				if g.Status != http.StatusForbidden || g.Code != "forbidden" || !strings.Contains(g.Msg, wantHint(tc.access, r.need)) {
					t.Errorf("%s: %d %s %q; want 403 forbidden naming %q", r.route, g.Status, g.Code, g.Msg, wantHint(tc.access, r.need))
				}
			}
			slices.Sort(allowed)
			if called := e.take(); !slices.Equal(called, allowed) {
				t.Errorf("the engine was called for\n%v\nwant only the allowed\n%v", called, allowed)
			}
		})
	}
}

// wantHint is what a refusal must name: the group that gives the role,
// or sudo.
func wantHint(a Access, need Role) string {
	switch {
	case need == RoleRoot:
		return "root's only"
	case need == RoleRead && a.Readers != nil:
		return "usermod -aG " + a.Readers.Name + " USER"
	case a.Operators != nil:
		return "usermod -aG " + a.Operators.Name + " USER"
	}
	return "sudo"
}

// The server enforces the test's table: Routes says the same, and
// every route the server has is in it (a route added without a role
// would be root's only, which the table must say).
func TestRoutesAreTheTable(t *testing.T) {
	want := map[string]Role{}
	for _, r := range whoMayDoWhat {
		want[r.route] = r.need
	}
	if fmt.Sprint(want) != fmt.Sprint(Routes) {
		t.Fatalf("Routes\n%v\nthe table\n%v", Routes, want)
	}
}

// README's "Who may do what" is the table: each route's row marks the
// roles that may use it.
func TestREADMEWhoMayDoWhat(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "### Who may do what")
	if !ok {
		t.Fatal("README has no Who may do what")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	for _, r := range whoMayDoWhat {
		mark := func(role Role) string {
			if role >= r.need {
				return "yes"
			}
			return "no"
		}
		row := fmt.Sprintf("| `%s` | %s | %s | %s |", r.route, mark(RoleRead), mark(RoleOperate), mark(RoleRoot))
		if !strings.Contains(section, row+" ") && !strings.Contains(section, row+"\n") {
			t.Errorf("README's Who may do what has no row starting %s", row)
		}
	}
}
