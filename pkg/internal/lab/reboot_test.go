package lab

// Reboots for real: the hosted app servers of a lab (Options.Hosted) are
// Debian 12 containers booted under systemd-nspawn in the lab's
// namespaces, the .deb installed, the agent run by systemd. `drainctl
// maintenance reboot` in one is a real reboot: systemd stops every unit,
// nspawn exits 133 and starts it again, a new boot id, the enabled units
// start again (Apache, then the agent), and the agent finishes the
// reboot by itself. HAProxy and the users are the lab's.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/internal/debs"
	"github.com/drainctl/drainctl/pkg/internal/nspawn"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// bootHosted boots a container in w's namespace with drainctl's .deb
// installed, Apache serving w's name, and the agent started by systemd
// with the lab's drain settings, w's pool flags and extra flags. It
// returns once HAProxy has the server UP.
func bootHosted(t *testing.T, l *Lab, w *Web, extra ...string) *nspawn.Container {
	t.Helper()
	deb, _ := debs.Build(t, "0.0.1")
	c := nspawn.Boot(t, nspawn.Options{NetNS: w.NetNS(), BindRO: []string{deb + ":/mnt/drainctl.deb"}})
	flags := append([]string{"--min-wait", "1s", "--quiet", "1s", "--deadline", l.o.Deadline.String(), "--reconcile-interval", "1s",
		"--boot-ready-timeout", "10s", "--reboot-timeout", "60s"}, w.PoolFlags()...)
	flags = append(flags, extra...)
	dropIn := "[Service]\nExecStart=\nExecStart=/usr/bin/drainctl agent " + strings.Join(flags, " ") + "\n"
	script := fmt.Sprintf(`set -e
echo %s > /var/www/html/index.html
dpkg -i /mnt/drainctl.deb >/dev/null
mkdir -p /etc/systemd/system/drainctl.service.d
cat > /etc/systemd/system/drainctl.service.d/lab.conf <<'EOF'
%sEOF
systemctl daemon-reload
systemctl start drainctl`, w.Name, dropIn)
	c.Must(t, 2*time.Minute, "sh", "-c", script)
	if _, err := l.WaitStatus(context.Background(), w.Name, "UP", 20*time.Second); err != nil {
		t.Fatalf("%s never UP in HAProxy: %v", w.Name, err)
	}
	return c
}

// inContainer runs drainctl in c, bounded, and returns its output and
// exit code (the connection may be cut by a reboot: code -1).
func inContainer(c *nspawn.Container, timeout time.Duration, args ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := c.Exec(ctx, append([]string{"drainctl"}, args...)...)
	if err != nil {
		return out + err.Error(), -1
	}
	return out, 0
}

// containerStatus is drainctl status --json in c.
func containerStatus(t *testing.T, c *nspawn.Container) apitype.Status {
	t.Helper()
	out, code := inContainer(c, 10*time.Second, "status", "--json")
	var st apitype.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status in %s: exit %d\n%s", c.Name, code, out)
	}
	return st
}

// waitSettled waits until c's agent runs no operation and the server is
// in phase, at most timeout.
func waitSettled(t *testing.T, c *nspawn.Container, phase apitype.Phase, timeout time.Duration) apitype.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := c.Exec(ctx, "drainctl", "status", "--json")
		cancel()
		var st apitype.Status
		if err == nil && json.Unmarshal([]byte(out), &st) == nil && !st.Running && st.State.Phase == phase &&
			(phase != apitype.PhaseInService || st.State.Slot == nil) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not settled %s after %v: %v\n%s", c.Name, phase, timeout, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lastEntry is the last history entry in c.
func lastEntry(t *testing.T, c *nspawn.Container) apitype.HistoryEntry {
	t.Helper()
	out, code := inContainer(c, 10*time.Second, "history", "-n", "1", "--json")
	var es []apitype.HistoryEntry
	if code != 0 || json.Unmarshal([]byte(out), &es) != nil || len(es) != 1 {
		t.Fatalf("history in %s: exit %d\n%s", c.Name, code, out)
	}
	return es[0]
}

// downUp watches HAProxy's view of server until stop: when it went DOWN
// first and when it was UP again after.
type downUp struct {
	mu       sync.Mutex
	down, up time.Time
	maxDown  int // most primaries DOWN at once, of those watched
}

// seen is what the watch saw so far.
func (d *downUp) seen() (down, up time.Time, maxDown int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.down, d.up, d.maxDown
}

func watchDownUp(t *testing.T, l *Lab, servers ...string) *downUp {
	d := &downUp{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			n := 0
			for _, s := range servers {
				st, err := l.Status(s)
				if err != nil || !strings.HasPrefix(st, "UP") {
					n++
				}
				d.mu.Lock()
				switch {
				case err == nil && !strings.HasPrefix(st, "UP") && d.down.IsZero():
					d.down = time.Now()
				case err == nil && strings.HasPrefix(st, "UP") && !d.down.IsZero() && d.up.IsZero():
					d.up = time.Now()
				}
				d.mu.Unlock()
			}
			d.mu.Lock()
			d.maxDown = max(d.maxDown, n)
			d.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return d
}

// phaseMS is how long the entry's phase took, in ms (0 if absent).
func phaseMS(e apitype.HistoryEntry, phase string) int64 {
	for _, p := range e.Phases {
		if p.Phase == phase {
			return p.DurationMS
		}
	}
	return 0
}

// The reboot under load, in a pool: the container's server is taken out
// (HAProxy DOWN) before the reboot, comes back with a new boot id, back in
// rotation by itself, its slot released; no request fails. Users on the
// server when it goes down lose their sessions there: counted as moved,
// reported, not asserted. Twice: with the lab's drain deadline (3 s,
// which the sticky users use up) and with 1 s, the time of the load
// balancer's own confirmation (fall 2 × inter 500 ms).
func TestE2ERebootUnderLoad(t *testing.T) {
	nstest.RequireCmd(t, "systemd-nspawn", "debootstrap", "etcd")
	l := startLabWith(t, Options{Backend: "nftables", Servers: 2, Hosted: 1, Pool: &PoolOptions{}})
	w := l.Webs[1]
	c := bootHosted(t, l, w)
	run := users(t, l)
	time.Sleep(2 * time.Second)
	for i, deadline := range []string{l.o.Deadline.String(), "1s"} {
		rebootUnderLoad(t, l, c, w, i+2, deadline)
		time.Sleep(time.Second)
	}
	res := run.Stop()
	report(t, res)
	if res.Failed != 0 {
		t.Fatalf("%d failed requests, want 0", res.Failed)
	}
	out, _ := l.Webs[0].poolStatus()
	t.Logf("pool after: %s", out)
}

// rebootUnderLoad reboots c (its boot-th boot follows) with the drain
// deadline and checks it came back by itself; it logs the figures.
func rebootUnderLoad(t *testing.T, l *Lab, c *nspawn.Container, w *Web, boot int, deadline string) {
	t.Helper()
	before := bootID(c)
	view := watchDownUp(t, l, w.Name)
	begin := time.Now()
	out, code := inContainer(c, 2*time.Minute, "maintenance", "reboot", "--reason", "kernel 6.1.129", "--deadline", deadline)
	t.Logf("maintenance reboot --deadline %s (cut off by the reboot: exit %d):\n%s", deadline, code, out)
	if code == 0 && !strings.Contains(out, "rebooting") {
		t.Fatalf("the reboot's output says nothing of the reboot")
	}
	if err := waitBoot(c, boot); err != nil {
		t.Fatalf("boot %d: %v", boot, err)
	}
	booted := time.Now()
	after := bootID(c)
	if after == "" || after == before {
		t.Fatalf("boot id %q before, %q after: not a reboot", before, after)
	}
	st := waitSettled(t, c, apitype.PhaseInService, 60*time.Second)
	settled := time.Now()
	e := lastEntry(t, c)
	if e.Op != "reboot" || e.Outcome != "ok" || e.BackInRotation != "1/1" || e.OutOfRotation != "1/1" || phaseMS(e, "booting") == 0 {
		t.Fatalf("history: %+v", e)
	}
	// HAProxy marks the server UP on the check the agent counted last:
	// its stats may say so a poll later.
	var down, up time.Time
	for i := 0; i < 100; i++ {
		down, up, _ = view.seen()
		if !up.IsZero() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if down.IsZero() || up.IsZero() || down.After(booted) {
		t.Fatalf("HAProxy's view: DOWN at %v, UP at %v, the boot at %v: want out before the reboot and back after", down, up, booted)
	}
	if st.State.Slot != nil {
		t.Fatalf("slot still held: %+v", st.State.Slot)
	}
	out2 := e.DurationMS - phaseMS(e, "waiting-for-slot")
	reboot := phaseMS(e, "rebooting") + phaseMS(e, "booting")
	t.Logf("reboot figures (--deadline %s): out of rotation (withdraw to back, the agent's) %d ms: drain %d ms, shutdown %d ms, boot %d ms, ready-check %d ms, restore %d ms, back in rotation %d ms; HAProxy DOWN→UP %v; the command's start to settled %v (boot running after %v)",
		deadline, out2, phaseMS(e, "draining"), phaseMS(e, "rebooting"), phaseMS(e, "booting"),
		phaseMS(e, "ready-check"), phaseMS(e, "restoring"), phaseMS(e, "in-service"), up.Sub(down).Round(time.Millisecond),
		settled.Sub(begin).Round(time.Millisecond), booted.Sub(begin).Round(time.Millisecond))
	t.Logf("out of rotation minus the reboot itself (shutdown and boot): %d ms (target ≤ 3000 ms)", out2-reboot)
}

// poolStatus is `drainctl pool status` on a lab agent, for the log.
func (w *Web) poolStatus() (string, int) {
	if w.Hosted {
		return "", 0
	}
	out, code, _ := w.Drainctl(context.Background(), "pool", "status")
	return out, code
}

// Apache disabled at boot: the server comes back held, "not ready after
// the reboot", its slot kept, so the next server of the pool (max 1)
// cannot go; nothing reboots it again. Once fixed and exited, the slot
// goes back and the pool moves on. Then a reboot command that does
// nothing: held with the reason, no reboot.
func TestE2ERebootFailuresHold(t *testing.T) {
	nstest.RequireCmd(t, "systemd-nspawn", "debootstrap", "etcd")
	l := startLabWith(t, Options{Backend: "nftables", Servers: 2, Hosted: 1, Pool: &PoolOptions{}})
	w, other := l.Webs[1], l.Webs[0]
	c := bootHosted(t, l, w)
	c.Must(t, time.Minute, "systemctl", "disable", "-q", "apache2")
	inContainer(c, 2*time.Minute, "maintenance", "reboot", "--reason", "bad kernel")
	if err := waitBoot(c, 2); err != nil {
		t.Fatal(err)
	}
	st := waitSettled(t, c, apitype.PhaseHeld, 60*time.Second)
	if st.State.Slot == nil || !strings.Contains(st.State.LastError, "not ready after the reboot") {
		t.Fatalf("after a boot without Apache: %+v", st.State)
	}
	m := c.Must(t, 10*time.Second, "curl", "-sSf", "--unix-socket", "/run/drainctl/drainctl.sock", "http://x/metrics")
	for _, want := range []string{`drainctl_state{state="held"} 1`, `drainctl_operations_total{op="reboot",outcome="not-ready"} 1`, `drainctl_pool_slots_held{pool="web"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if e := lastEntry(t, c); e.Op != "reboot" || e.Outcome != "not-ready" {
		t.Errorf("history: %+v", e)
	}
	// The pool stops here: the other server gets no slot.
	if out, code, _ := other.Drainctl(context.Background(), "restart", "--reason", "next", "--pool-wait", "3s"); code != 11 {
		t.Fatalf("the next server's restart: exit %d, want 11 (pool busy)\n%s", code, out)
	}
	// No reboot loop: a held server is not rebooted, whoever asks.
	if out, code := inContainer(c, 30*time.Second, "maintenance", "reboot"); code == 0 || !strings.Contains(out, "exit status 5") {
		t.Fatalf("a reboot of the held server: %d %s", code, out)
	}
	time.Sleep(2 * time.Second)
	if c.Boots() != 2 {
		t.Fatalf("%d boots: rebooted again", c.Boots())
	}
	// Fixed by a person: back, the slot given back, the pool goes on.
	c.Must(t, time.Minute, "systemctl", "enable", "--now", "-q", "apache2")
	if out, code := inContainer(c, time.Minute, "maintenance", "exit"); code != 0 {
		t.Fatalf("maintenance exit: %s", out)
	}
	waitSettled(t, c, apitype.PhaseInService, 30*time.Second)
	if out, code, _ := other.Drainctl(context.Background(), "restart", "--reason", "next", "--pool-wait", "30s"); code != 0 {
		t.Fatalf("the next server's restart after the fix: exit %d\n%s", code, out)
	}

	// A reboot command that does nothing: held with the reason, no boot.
	c.Must(t, time.Minute, "sh", "-c", `sed -i 's/--reboot-timeout 60s/--reboot-timeout 3s --reboot-cmd true/' /etc/systemd/system/drainctl.service.d/lab.conf && systemctl daemon-reload && systemctl restart drainctl`)
	out, code := inContainer(c, time.Minute, "maintenance", "reboot", "--reason", "no-op")
	if code == 0 || !strings.Contains(out, "did not reboot within 3s") {
		t.Fatalf("reboot with a command that does nothing: %d\n%s", code, out)
	}
	if st := containerStatus(t, c); st.State.Phase != apitype.PhaseHeld || c.Boots() != 2 {
		t.Fatalf("after the no-op reboot: %+v, %d boots", st.State, c.Boots())
	}
}

// A pool of two containers and a third app server, max_unavailable 1:
// `maintenance reboot --if-required` started on both at once. They go one
// at a time (never both DOWN), both come back, no request fails, and
// after the boot no reboot is required any more (/run is new).
func TestE2ERebootPoolOneAtATime(t *testing.T) {
	nstest.RequireCmd(t, "systemd-nspawn", "debootstrap", "etcd")
	l := startLabWith(t, Options{Backend: "nftables", Servers: 3, Hosted: 2, Pool: &PoolOptions{}})
	cs := []*nspawn.Container{bootHosted(t, l, l.Webs[1]), bootHosted(t, l, l.Webs[2])}
	for _, c := range cs {
		c.Must(t, 10*time.Second, "sh", "-c", "echo '*** System restart required ***' > /var/run/reboot-required && echo linux-image-6.1.0-29-amd64 > /var/run/reboot-required.pkgs")
	}
	run := users(t, l)
	view := watchDownUp(t, l, l.Webs[1].Name, l.Webs[2].Name)
	begin := time.Now()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inContainer(c, 5*time.Minute, "maintenance", "reboot", "--if-required", "--pool-wait", "5m")
		}()
	}
	wg.Wait()
	var entries []apitype.HistoryEntry
	for _, c := range cs {
		if err := waitBoot(c, 2); err != nil {
			t.Fatal(err)
		}
		waitSettled(t, c, apitype.PhaseInService, 90*time.Second)
		entries = append(entries, lastEntry(t, c))
	}
	res := run.Stop()
	report(t, res)
	t.Logf("two reboots, one at a time: %v in all", time.Since(begin).Round(time.Millisecond))
	if res.Failed != 0 {
		t.Fatalf("%d failed requests, want 0", res.Failed)
	}
	_, _, maxDown := view.seen()
	if maxDown != 1 {
		t.Fatalf("at most %d of the two containers DOWN at once, want 1", maxDown)
	}
	for i, e := range entries {
		if e.Op != "reboot" || e.Outcome != "ok" || !strings.Contains(e.Reason, "/var/run/reboot-required") || !strings.Contains(e.Reason, "linux-image") {
			t.Errorf("container %d's history: %+v", i, e)
		}
	}
	// Out one after the other: the second withdrew after the first was
	// back in service (its forward restored and confirmed: the slot is
	// given back only then). Not after the first's history entry ended:
	// that is written after the release, a state file's fsync later, and
	// the second may rightly have begun meanwhile.
	first, second := entries[0], entries[1]
	if phaseStart(second, "withdrawing").Before(phaseStart(first, "withdrawing")) {
		first, second = second, first
	}
	back := phaseStart(first, "in-service")
	if start := phaseStart(second, "withdrawing"); back.IsZero() || start.Before(back) {
		t.Errorf("the second withdrew at %v, before the first was back in service at %v", start, back)
	}
	for _, c := range cs {
		if out, code := inContainer(c, 30*time.Second, "maintenance", "reboot", "--if-required"); code != 0 || !strings.Contains(out, "no reboot required") {
			t.Errorf("after the boot: %d %s", code, out)
		}
	}
}

// bootID is c's boot id, "" if it cannot be read within 10 s.
func bootID(c *nspawn.Container) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, _ := c.BootID(ctx)
	return id
}

// waitBoot waits, at most 2 minutes, for c's n-th boot to be running.
func waitBoot(c *nspawn.Container, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return c.WaitBoot(ctx, n)
}

// phaseStart is when the entry's phase began (zero if absent).
func phaseStart(e apitype.HistoryEntry, phase string) time.Time {
	for _, p := range e.Phases {
		if p.Phase == phase {
			return p.Start
		}
	}
	return time.Time{}
}

// drainctl-roll --reboot over a remote shell into two containers, under
// load: each host reboots for real, the tool waits for its new boot id
// and for it back in rotation before the next one, and reports each
// stage. The remote shell is nsenter into the container's current init
// (ssh needs an sshd in the root; what the tool sees is the same: a
// session cut by the reboot, a host that answers again with another boot
// id).
func TestE2ERollReboot(t *testing.T) {
	nstest.RequireCmd(t, "systemd-nspawn", "debootstrap", "jq", "nsenter")
	l := startLabWith(t, Options{Backend: "nftables", Servers: 3, Hosted: 2})
	cs := map[string]*nspawn.Container{}
	for _, w := range l.Webs[1:] {
		cs[w.Name] = bootHosted(t, l, w)
	}
	dir := t.TempDir()
	// HOST.pid follows each container's init across its boots.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			for name, c := range cs {
				pidFile := filepath.Join(dir, name+".pid")
				if pid := c.InitPID(); pid != 0 {
					os.WriteFile(pidFile+".tmp", []byte(strconv.Itoa(pid)), 0o644)
					os.Rename(pidFile+".tmp", pidFile)
				} else {
					os.Remove(pidFile)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	shell := filepath.Join(dir, "nsh")
	os.WriteFile(shell, []byte(`#!/bin/sh
# nsh HOST COMMAND: COMMAND in the container HOST, as ssh HOST COMMAND would;
# 255 when it cannot be reached (between boots), as ssh.
# Like ssh, the words after HOST are joined into one command line.
pid=$(cat "`+dir+`/$1.pid" 2>/dev/null) || exit 255
shift
nsenter -t "$pid" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c "$*" || exit $?
`), 0o755)
	run := users(t, l)
	view := watchDownUp(t, l, "web2", "web3")
	cmd := exec.Command(rollScript, "--reboot", "--ssh", shell, "--drainctl", "drainctl", "--reason", "kernel 6.1.129", "--reboot-timeout", "2m", "--ready-timeout", "2m", "web2", "web3")
	cmd.Env = append(os.Environ(), "DRAINCTL_ROLL_POLL=1")
	begin := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("drainctl-roll --reboot in %v:\n%s", time.Since(begin).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("drainctl-roll --reboot: %v", err)
	}
	res := run.Stop()
	report(t, res)
	if res.Failed != 0 {
		t.Fatalf("%d failed requests, want 0", res.Failed)
	}
	_, _, maxDown := view.seen()
	if maxDown != 1 {
		t.Errorf("at most %d of the two DOWN at once, want 1", maxDown)
	}
	var ends []time.Time
	for _, name := range []string{"web2", "web3"} {
		c := cs[name]
		e := lastEntry(t, c)
		if c.Boots() != 2 || e.Op != "reboot" || e.Outcome != "ok" || e.BackInRotation != "1/1" {
			t.Fatalf("%s: %d boots, history %+v", name, c.Boots(), e)
		}
		ends = append(ends, e.End)
		if name == "web3" && phaseStart(e, "withdrawing").Before(ends[0]) {
			t.Errorf("web3 withdrew before web2 was back")
		}
	}
}
