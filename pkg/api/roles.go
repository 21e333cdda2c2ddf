package api

// Roles on the socket: who may do what is decided here, in the agent,
// from the credentials the kernel gives for the connection (SO_PEERCRED:
// the caller cannot choose them), not by the socket file's mode, which
// has one group and so cannot tell a reader from an operator.

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/drainctl/drainctl/pkg/api/apitype"
)

// Role is what a caller may do; each role may do what the ones before it
// may.
type Role int

// The roles.
const (
	// RoleNone may do nothing but connect.
	RoleNone Role = iota
	// RoleRead reads: status, history, events, metrics, the pool's status.
	RoleRead
	// RoleOperate runs this host's operations: maintenance enter, exit,
	// reboot (and run's calls), restart, the web unit's hooks and policy.
	RoleOperate
	// RoleRoot administers the pool through the agent (with the host's
	// own etcd credentials): release, forget, pause, resume, set.
	RoleRoot
)

func (r Role) String() string {
	switch r {
	case RoleRead:
		return "read"
	case RoleOperate:
		return "operate"
	case RoleRoot:
		return "root"
	}
	return "none"
}

// Routes is the role each route needs: the one table the server enforces
// and README's "Who may do what" states. A route not in it is root's.
var Routes = map[string]Role{
	"GET " + PathStatus:       RoleRead,
	"GET " + PathHistory:      RoleRead,
	"GET " + PathEvents:       RoleRead,
	"GET " + PathMetrics:      RoleRead,
	"GET " + PathPool:         RoleRead,
	"POST " + PathEnter:       RoleOperate,
	"POST " + PathExit:        RoleOperate,
	"POST " + PathRestart:     RoleOperate,
	"POST " + PathReboot:      RoleOperate,
	"POST " + PathWebStop:     RoleOperate,
	"POST " + PathWebStart:    RoleOperate,
	"POST " + PathWebPolicy:   RoleOperate,
	"POST " + PathPoolRelease: RoleRoot,
	"POST " + PathPoolForget:  RoleRoot,
	"POST " + PathPoolPause:   RoleRoot,
	"POST " + PathPoolResume:  RoleRoot,
	"POST " + PathPoolSet:     RoleRoot,
}

// Group is a group of the socket's roles, resolved once at start.
type Group struct {
	Name string
	GID  int
}

// Access says who has which role. Root (uid 0) has every role.
type Access struct {
	// Operators operate (and read): the socket group, drainctl.
	Operators *Group
	// Readers read: drainctl-ro. Nil: no read-only group.
	Readers *Group
	// ReadAll lets every local user read.
	ReadAll bool
}

// Peer is who is on the other end of a connection, from the kernel.
type Peer struct {
	Cred *syscall.Ucred
	// Groups are the peer's primary gid and its supplementary groups
	// (/proc/PID/status), read when the connection was accepted.
	Groups []int
}

// RoleOf is the role of peer p under a; an unknown peer has none.
func (a Access) RoleOf(p *Peer) Role {
	switch {
	case p == nil || p.Cred == nil:
		return RoleNone
	case p.Cred.Uid == 0:
		return RoleRoot
	case a.Operators != nil && slices.Contains(p.Groups, a.Operators.GID):
		return RoleOperate
	case a.ReadAll || (a.Readers != nil && slices.Contains(p.Groups, a.Readers.GID)):
		return RoleRead
	}
	return RoleNone
}

// peerOf reads the peer's groups for cred. Its supplementary groups come
// from /proc/PID/status, not from the group database: what the process
// has now (a user added to a group counts from their next login, as for
// the file system), and no NSS lookup (LDAP away) on each connection.
// If the pid's status cannot be read, or now names another user (the
// pid was reused), only the primary gid counts.
func peerOf(cred *syscall.Ucred) *Peer {
	p := &Peer{Cred: cred, Groups: []int{int(cred.Gid)}}
	if cred.Pid <= 0 {
		return p
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(cred.Pid)) + "/status")
	if err != nil {
		return p
	}
	var groups []int
	uidOK := false
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		switch k {
		case "Uid":
			uidOK = len(f) > 1 && f[1] == strconv.Itoa(int(cred.Uid)) // effective
		case "Groups":
			for _, g := range f {
				if n, err := strconv.Atoi(g); err == nil {
					groups = append(groups, n)
				}
			}
		}
	}
	if uidOK {
		p.Groups = append(p.Groups, groups...)
	}
	return p
}

// allowed checks the caller's role for the route of r, and answers 403
// naming what to join when it falls short. Routes the mux does not know
// pass, for the mux to answer 404 or 405.
func (s *Server) allowed(w http.ResponseWriter, r *http.Request) bool {
	_, pattern := s.mux.Handler(r)
	if pattern == "" {
		return true
	}
	need, ok := Routes[pattern]
	if !ok {
		need = RoleRoot
	}
	p := peerInfo(r)
	if s.access.RoleOf(p) >= need {
		return true
	}
	msg := s.access.refusal(pattern, need)
	s.log.Info("refused", "who", caller(r, ""), "route", pattern, "needs", need.String())
	writeJSON(w, http.StatusForbidden, apitype.ErrorBody{Error: &apitype.Error{Code: apitype.CodeForbidden, Msg: msg}})
	return false
}

// refusal says why a route was refused, and what gives its role.
func (a Access) refusal(pattern string, need Role) string {
	join := func(g *Group) string {
		return fmt.Sprintf("join the %s group (sudo usermod -aG %s USER, then log in again)", g.Name, g.Name)
	}
	switch {
	case need == RoleRoot:
		return pattern + " is root's only: run it with sudo, or as the pool's admin with your own etcd credentials (--admin-config, or --pool-etcd and --pool-username)"
	case need == RoleOperate && a.Operators != nil:
		return pattern + " needs the operate role: " + join(a.Operators) + ", or run it with sudo"
	case need == RoleRead && a.Readers != nil:
		return pattern + " needs the read role: " + join(a.Readers) + " to read, or the " + a.operatorName() + " group to operate, or run it with sudo"
	case need == RoleRead && a.Operators != nil:
		return pattern + " needs the read role: " + join(a.Operators) + ", or run it with sudo"
	}
	return pattern + " is root's only here (the agent found no drainctl group when it started): run it with sudo"
}

func (a Access) operatorName() string {
	if a.Operators == nil {
		return "drainctl"
	}
	return a.Operators.Name
}

// IsForbidden says whether err is the agent's refusal of a route to the
// caller's role (403 forbidden).
func IsForbidden(err error) bool {
	var e *apitype.Error
	return errors.As(err, &e) && e.Code == apitype.CodeForbidden
}
