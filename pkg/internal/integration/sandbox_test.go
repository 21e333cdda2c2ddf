package integration

// The agent's sandbox as systemd sets it up from the packaged unit
// (systemd/drainctl.service): what systemd-analyze rates it, and what the
// running agent holds and sees. That the agent still does its work inside
// it (netfilter, the packet capture, the web server's reload and restarts
// through systemd, nginx's binary upgrade) is what the other tests of the
// systemd tier prove, each under this unit.

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/drainctl/drainctl/pkg/internal/nspawn"
)

// maxExposure is the bar for `systemd-analyze security`.
const maxExposure = 4.0

// agentCaps are the capabilities the unit leaves the agent (CapEff, and
// the bounding set its commands inherit): CAP_CHOWN (0), CAP_DAC_OVERRIDE
// (1), CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13),
// CAP_SYS_PTRACE (19).
const agentCaps = 1<<0 | 1<<1 | 1<<10 | 1<<12 | 1<<13 | 1<<19

var exposureRE = regexp.MustCompile(`Overall exposure level for drainctl\.service: ([0-9]+\.[0-9]+)`)

// checkExposure asserts systemd's own rating of the installed unit, as
// loaded by the container's systemd (drop-ins and all).
func checkExposure(t *testing.T, c *nspawn.Container) {
	t.Helper()
	// systemd-analyze exits 0 below its threshold (100: none given).
	out := csh(t, c, "systemd-analyze security --no-pager drainctl.service")
	m := exposureRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in systemd-analyze security's output:\n%s", out)
	}
	score, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd-analyze security drainctl.service: exposure %.1f", score)
	if score > maxExposure {
		t.Fatalf("drainctl.service's exposure %.1f is over %.1f:\n%s", score, maxExposure, out)
	}
}

// checkSandbox asserts what the running agent (pid, in the container's
// PID namespace) holds: its capabilities, no new privileges, its umask,
// the file system read-only but its own directories, its own /tmp and
// /dev.
func checkSandbox(t *testing.T, c *nspawn.Container, pid int) {
	t.Helper()
	status := csh(t, c, fmt.Sprintf("cat /proc/%d/status", pid))
	for _, field := range []string{"CapEff", "CapPrm", "CapBnd"} {
		want := fmt.Sprintf("%s:\t%016x", field, agentCaps)
		if !strings.Contains(status, "\n"+want+"\n") {
			t.Errorf("the agent's %s: want %q\n%s", field, want, status)
		}
	}
	for _, want := range []string{"NoNewPrivs:\t1", "Umask:\t0027", "Seccomp:\t2"} {
		if !strings.Contains(status, want+"\n") {
			t.Errorf("the agent's status lacks %q:\n%s", want, status)
		}
	}
	// In the agent's mount namespace (nsenter -m: the test's capabilities,
	// the agent's mounts).
	in := func(script string) (string, error) {
		return c.Sh(context.Background(), fmt.Sprintf("nsenter -t %d -m sh -c '%s'", pid, script))
	}
	for _, path := range []string{"/etc/probe", "/usr/probe", "/var/log/probe", "/root/probe"} {
		if out, err := in("touch " + path); err == nil || !strings.Contains(err.Error(), "Read-only file system") {
			t.Errorf("%s must be read-only for the agent: %q, %v", path, out, err)
		}
	}
	for _, path := range []string{"/var/lib/drainctl/probe", "/run/drainctl/probe", "/run/probe", "/tmp/probe"} {
		if out, err := in("touch " + path + " && rm " + path); err != nil {
			t.Errorf("%s must be writable for the agent: %q, %v", path, out, err)
		}
	}
	// What the commands write in /run: iptables-legacy's lock (created
	// if missing), nginx -t's pid file.
	if out, err := in("touch /run/xtables.lock && : >>/run/xtables.lock"); err != nil {
		t.Errorf("iptables-legacy's lock must be writable for the agent: %q, %v", out, err)
	}
	// The machine's /tmp and /dev are not the agent's.
	csh(t, c, "touch /tmp/machine-probe && test -e /dev/console")
	if out, err := in("test ! -e /tmp/machine-probe && test ! -e /dev/console && test -c /dev/null"); err != nil {
		t.Errorf("the agent must have a /tmp and a /dev of its own: %q, %v", out, err)
	}
	csh(t, c, "touch /root/probe /etc/probe && rm /root/probe /etc/probe") // but not for the rest of the machine
}

// checkFullRootCommand: a command of the operator's that needs full root
// runs as a transient unit of its own (docs/design.md, "Commands of the
// operator's"): from inside the sandbox systemd-run still reaches PID 1,
// and the command writes where the agent cannot (/etc), and reloads
// Apache, and `drainctl restart` passes.
func checkFullRootCommand(t *testing.T, c *nspawn.Container) {
	t.Helper()
	csh(t, c, `printf '#!/bin/sh\nset -e\ntouch /etc/drainctl-probe\nsystemctl reload apache2.service\n' >/usr/local/sbin/full-root-restart && chmod 755 /usr/local/sbin/full-root-restart
mkdir -p /etc/systemd/system/drainctl.service.d
printf '[Service]\nExecStart=\nExecStart=/usr/bin/drainctl agent --restart-cmd "systemd-run --wait --pipe --collect --quiet /usr/local/sbin/full-root-restart"\n' >/etc/systemd/system/drainctl.service.d/full-root.conf
systemctl daemon-reload && systemctl restart drainctl`)
	if _, err := c.Sh(context.Background(), "test -e /etc/drainctl-probe"); err == nil {
		t.Fatal("/etc/drainctl-probe before the restart")
	}
	csh(t, c, "drainctl restart --reason full-root")
	csh(t, c, "test -e /etc/drainctl-probe")
}
