package integration

// The agent on hosts as they really are: real firewalls (ufw itself) and
// real firewalls' rule sets (testdata/firewalls, captured from firewalld
// and Docker by scripts/testdata/capture-firewalls.sh) loaded the way
// those tools load them, on every backend. A server must never be
// silently out (in service, yet new connections fail) nor silently in
// (held, yet new connections are served), and status must say what the
// kernel does.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// firewall is one way other software rewrites the host's rules.
type firewall struct {
	name string
	cmds []string
	load func(t *testing.T, h *host)
}

func testdataFile(name string) string {
	return filepath.Join("..", "..", "..", "testdata", "firewalls", name)
}

var firewalls = []firewall{
	{"ufw-enable-and-reload", []string{"ufw"}, func(t *testing.T, h *host) {
		// ufw for real, its configuration a copy in a temporary
		// directory bind-mounted over /etc/ufw in this command's own
		// mount namespace (ip netns exec makes one): the host's ufw
		// stays as it was.
		etc := filepath.Join(h.dir, "ufw-etc")
		if _, err := os.Stat(etc); err != nil {
			os.MkdirAll(etc, 0o755)
			if out, err := exec.Command("cp", "-a", "/etc/ufw/.", etc+"/").CombinedOutput(); err != nil {
				t.Fatalf("copy /etc/ufw: %v: %s", err, out)
			}
		}
		h.ns.MustExec(t, "sh", "-c", "mount --bind "+etc+" /etc/ufw && ufw --force enable >/dev/null && ufw allow 80/tcp >/dev/null && ufw reload >/dev/null")
	}},
	{"firewalld-ruleset", []string{"nft"}, func(t *testing.T, h *host) {
		// firewalld replaces its table in one transaction, as here.
		rules, err := os.ReadFile(testdataFile("firewalld.nft"))
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(h.dir, "firewalld-load.nft")
		os.WriteFile(f, append([]byte("table inet firewalld\ndelete table inet firewalld\n"), rules...), 0o644)
		h.ns.MustExec(t, "nft", "-f", f)
	}},
	{"nftables.service-flush-ruleset", []string{"nft"}, func(t *testing.T, h *host) {
		h.ns.MustExec(t, "nft", "-f", testdataFile("nftables-webserver.conf"))
	}},
	{"netfilter-persistent-reload", []string{"iptables-restore", "ip6tables-restore"}, func(t *testing.T, h *host) {
		// What netfilter-persistent's plugins run on reload.
		h.ns.MustExec(t, "iptables-restore", testdataFile("rules.v4"))
		h.ns.MustExec(t, "ip6tables-restore", testdataFile("rules.v6"))
	}},
	{"docker-rules", []string{"iptables-restore"}, func(t *testing.T, h *host) {
		h.ns.MustExec(t, "iptables-restore", testdataFile("docker.iptables"))
	}},
}

// probe opens a new connection from the client host to :81 and says
// whether the web server answered ("served"), the kernel refused it with
// a reset ("refused"), or something else happened (a dropped SYN: the
// load balancer's check would time out).
func (h *host) probe(t *testing.T) string {
	t.Helper()
	var c net.Conn
	err := h.cli.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", nstest.Srv4+":81", time.Second)
		return err
	})
	if err != nil {
		if strings.Contains(err.Error(), "connection refused") {
			return "refused"
		}
		return "failed: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
	buf := make([]byte, 12)
	if n, _ := c.Read(buf); strings.HasPrefix(string(buf[:n]), "HTTP/1.") {
		return "served"
	}
	return "failed: no answer"
}

// forwardState is the state of the one forward as status reports it.
func (h *host) forwardState(t *testing.T) (phase, fstate string) {
	st := h.status(t)
	fstate = "absent"
	if len(st.Forwards) == 1 {
		fstate = api.ForwardState(st.Forwards[0])
	}
	return string(st.State.Phase), fstate
}

// settle probes until want holds, up to 5 s: "served", or "out" (not
// served; with refusedOnly, refused by a reset). At every probe that
// status did not change around, status must agree with the kernel:
// never withdrawn while a connection is served, never in-service while
// one is not. It returns what the last probe saw.
func (h *host) settle(t *testing.T, when, want string, refusedOnly bool) string {
	t.Helper()
	var got, fstate string
	for i := 0; i < 25; i++ {
		phase1, f1 := h.forwardState(t)
		got = h.probe(t)
		phase, f2 := h.forwardState(t)
		fstate = f2
		if phase1 == phase && f1 == f2 {
			if got == "served" && (fstate == "withdrawn" || phase != "in-service") {
				t.Fatalf("%s: a new connection was served while status says %s, forward %s", when, phase, fstate)
			}
			if got != "served" && fstate == "in-service" {
				t.Fatalf("%s: status says in-service, but a new connection was %s", when, got)
			}
		}
		switch {
		case want == "served" && got == "served" && fstate == "in-service":
			return got
		case want == "out" && got != "served" && fstate == "withdrawn" && (got == "refused" || !refusedOnly):
			return got
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: after 5 s a new connection is %s and the forward %s; want %s", when, got, fstate, want)
	return got
}

func TestAgentUnderFirewalls(t *testing.T) {
	for _, fw := range firewalls {
		for _, backend := range []string{"nftables", "iptables-nft", "iptables-legacy"} {
			t.Run(fw.name+"/"+backend, func(t *testing.T) {
				t.Parallel()
				nstest.RequireCmd(t, fw.cmds...)
				h := newHost(t)
				h.agent(t, "--backend", backend)
				// nftables refuses at priority -150, before any filter
				// chain of other software. The iptables backends' REJECT
				// shares its hook and priority with the filter chains of
				// nftables firewalls, so one of those that drops first
				// turns the reset into a dropped SYN: the server is out
				// all the same, the check times out instead.
				refusedOnly := backend == "nftables"
				h.settle(t, "started", "served", false)

				repairs := func() int {
					b, _ := os.ReadFile(h.marker("agent.log"))
					return strings.Count(string(b), "forward repaired")
				}
				before := repairs()
				fw.load(t, h)
				h.settle(t, "in service, after "+fw.name, "served", false)
				t.Logf("%s: in service, after %s: %d repairs", backend, fw.name, repairs()-before)

				if _, stderr, code := h.ctl(t, "maintenance", "enter", "--reason", "patch"); code != 0 {
					t.Fatal(stderr)
				}
				h.settle(t, "held", "out", refusedOnly)
				fw.load(t, h)
				if got := h.probe(t); got == "served" {
					t.Fatalf("held, just after %s: a new connection was served", fw.name)
				}
				got := h.settle(t, "held, after "+fw.name, "out", refusedOnly)
				t.Logf("%s: held, after %s: a new connection is %s", backend, fw.name, got)

				if _, stderr, code := h.ctl(t, "maintenance", "exit"); code != 0 {
					t.Fatal(stderr)
				}
				h.settle(t, "after exit", "served", false)
			})
		}
	}
}
