package lab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fakeSSH stands in for ssh and the hosts behind it in the tests of
// drainctl-roll --reboot: no host reboots. Each host is a directory of
// $D: boot (its boot id), and what it should do, as files: norequired
// (maintenance reboot says "no reboot required"), rc (maintenance reboot
// exits with it, saying nothing of a reboot), never (it does not come
// back), held (held after the boot), steal (another roll takes the lock
// while it is down). A reboot cuts the session (exit 255), refuses SSH
// twice, then answers with a new boot id; its status then goes through
// ready-check (the reboot and the slot in the state), in service with the
// slot still held, and in service. $D/pool names the hosts' pool, if any;
// $D/lockhost is the host whose /run holds the lock ($D/lock), cleared by
// its reboot. Every call is logged to $D/log.
const fakeSSH = `#!/bin/bash
D=$(dirname "$0")
h=$1; shift; cmd="$*"; s=$D/$h
echo "$h $cmd" >> "$D/log"
if [ -e "$s/down" ]; then
	n=$(cat "$s/down")
	if [ "$n" = never ] || [ "$n" -gt 0 ]; then
		[ "$n" = never ] || echo $((n - 1)) > "$s/down"
		echo "ssh: connect to host $h port 22: Connection refused" >&2
		exit 255
	fi
	rm "$s/down"; echo "second-boot-$h" > "$s/boot"; echo 0 > "$s/step"
fi
in_service='"phase":"in-service"'
pool=""; [ -e "$D/pool" ] && pool=',"pool":{"name":"'$(cat "$D/pool")'","id":"'$h'","max_unavailable":"2"}'
case $cmd in
"cat /proc/sys/kernel/random/boot_id") cat "$s/boot" ;;
*"maintenance reboot"*)
	[ -e "$s/norequired" ] && { echo "done: in-service — no reboot required (checked /var/run/reboot-required): nothing was changed"; exit 0; }
	[ -e "$s/rc" ] && { echo "drainctl: outside-window: the reboot window is Mon-Fri 02:00-05:00" >&2; exit "$(cat "$s/rc")"; }
	echo "withdrawing, draining"
	echo "03:00:01 rebooting: running \"systemctl reboot\" (leaving boot $(cat "$s/boot")); the server comes back into rotation by itself"
	if [ -e "$s/never" ]; then echo never > "$s/down"; else echo 2 > "$s/down"; fi
	[ "$(cat "$D/lockhost" 2>/dev/null)" = "$h" ] && rm -rf "$D/lock"
	[ -e "$s/steal" ] && { mkdir "$D/lock"; echo "a roll by ops@elsewhere" > "$D/lock/owner"; }
	exit 255 ;;
*"status --json"*)
	step=$(cat "$s/step" 2>/dev/null || echo done)
	slot=',"slot":{"pool":"web","op":"reboot","since":"2025-01-01T00:00:00Z"}'
	reboot=',"op":"reboot","reboot":{"boot_id":"first","since":"2025-01-01T00:00:00Z"}'
	case $step in
	0) st='"phase":"ready-check"'$reboot$slot; running=true ;;
	1) st=$in_service$slot; running=false ;;
	*) st=$in_service; running=false ;;
	esac
	if [ -e "$s/held" ] && [ "$step" != done ]; then
		st='"phase":"held","op":"reboot","last_error":"readiness check: GET / answered 503"'$reboot$slot; running=false
	fi
	[ "$step" = done ] || echo $((step + 1)) > "$s/step"
	echo '{"state":{"version":1,'"$st"'},"running":'$running',"forwards":[{"applied":true,"withdrawn":false}]'"$pool"'}' ;;
*) eval "$cmd" ;;
esac
`

// rebootFake is a directory of fake hosts behind fakeSSH.
type rebootFake struct {
	dir   string
	hosts []string
}

func newRebootFake(t *testing.T, hosts ...string) *rebootFake {
	t.Helper()
	f := &rebootFake{dir: t.TempDir(), hosts: hosts}
	if err := os.WriteFile(filepath.Join(f.dir, "ssh"), []byte(fakeSSH), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		os.Mkdir(filepath.Join(f.dir, h), 0o755)
		f.set(t, h, "boot", "first-boot-"+h)
	}
	f.set(t, "", "lockhost", hosts[0])
	return f
}

// set writes host's file name (a file of the fake's directory if host is "").
func (f *rebootFake) set(t *testing.T, host, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, host, name), []byte(text+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *rebootFake) read(host, name string) string {
	b, _ := os.ReadFile(filepath.Join(f.dir, host, name))
	return strings.TrimSpace(string(b))
}

// roll runs drainctl-roll through the fake with args, the hosts after them.
func (f *rebootFake) roll(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rollScript, append(append([]string{"--ssh", filepath.Join(f.dir, "ssh"), "--drainctl", "drainctl",
		"--lock", filepath.Join(f.dir, "lock")}, args...), f.hosts...)...)
	cmd.Env = append(os.Environ(), "DRAINCTL_ROLL_POLL=1")
	out, err := cmd.CombinedOutput()
	return string(out), exitCode(err)
}

// rebooted says whether the roll asked host to reboot.
func (f *rebootFake) rebooted(host string) bool {
	return strings.Contains(f.read("", "log"), host+" drainctl maintenance reboot ")
}

// drainctl-roll --reboot, its arguments and its flow against fake hosts
// (fakeSSH; nothing reboots): --help documents the flags; bad
// combinations are refused (exit 2); a roll reboots each host in turn,
// waits for the new boot id and for the host back in service with its
// slot released, and prints each stage's time; the lock, cleared by the
// first host's reboot, is taken again; --if-required passes the flag and a
// host with nothing to do is done; a host held after the boot, one that
// does not come back, one outside its window, and a lock taken by another
// roll meanwhile each stop the roll, named, the hosts after untouched; in
// a pool, --parallel 2 and no lock.
func TestFleetRollReboot(t *testing.T) {
	t.Run("usage", rebootUsage)
	t.Run("roll", rebootRoll)
	t.Run("if-required", rebootIfRequired)
	t.Run("stops", rebootStops)
	t.Run("pool", rebootPool)
}

func rebootUsage(t *testing.T) {
	t.Parallel()
	f := newRebootFake(t, "web1")
	out, code := f.roll(t, "--help")
	for _, want := range []string{"--reboot ", "--if-required", "--reboot-timeout D", "(default 15m)", "--ready-timeout D", "(default 10m)", "no reboot required", "boot id", "held"} {
		if code != 2 || !strings.Contains(out, want) {
			t.Errorf("--help: exit %d, want 2 and %q\n%s", code, want, out)
		}
	}
	for _, c := range []struct{ args, want string }{
		{"--reboot --run true", "--reboot and --run"},
		{"--if-required", "--if-required goes with --reboot"},
		{"--ready-timeout 5m", "--ready-timeout goes with --reboot"},
		{"--reboot --reboot-timeout soon", "--reboot-timeout soon: want a duration"},
		{"--reboot --ready-timeout 0", "--ready-timeout 0: want a duration"},
	} {
		if out, code := f.roll(t, strings.Fields(c.args)...); code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %d, want 2 and %q\n%s", c.args, code, c.want, out)
		}
	}
	if f.rebooted("web1") {
		t.Error("a refused roll rebooted a host")
	}
}

func rebootRoll(t *testing.T) {
	t.Parallel()
	f := newRebootFake(t, "web1", "web2", "web3")
	out, code := f.roll(t, "--reboot", "--reason", "kernel 6.1.129")
	if code != 0 || strings.Count(out, "back in service, ") != 3 || !strings.Contains(out, "all 3 hosts done") {
		t.Fatalf("exit %d, want 0 and 3 hosts back\n%s", code, out)
	}
	for _, want := range []string{"web1: 03:00:01 rebooting: running", "boot until SSH answered ", "slot released ", "web1: took the lock", "web1: ready-check (reboot), running, reboot in progress, holds its pool slot", "web1: in-service, holds its pool slot"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q\n%s", want, out)
		}
	}
	log := f.read("", "log")
	for _, h := range f.hosts {
		if f.read(h, "boot") != "second-boot-"+h || !strings.Contains(log, h+` drainctl maintenance reboot --reason kernel\ 6.1.129`) {
			t.Errorf("%s not rebooted with the reason\n%s", h, log)
		}
	}
	// One host at a time: web2's reboot after web1 was seen in
	// service (its third status after the boot).
	between := log[strings.Index(log, "web1 drainctl maintenance reboot"):strings.Index(log, "web2 drainctl maintenance reboot")]
	if strings.Count(between, "web1 drainctl status") < 3 {
		t.Errorf("web2 rebooted before web1 was back:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "lock")); !os.IsNotExist(err) {
		t.Errorf("the roll left its lock (%v)", err)
	}
}

func rebootIfRequired(t *testing.T) {
	t.Parallel()
	f := newRebootFake(t, "web1", "web2")
	f.set(t, "web1", "norequired", "")
	out, code := f.roll(t, "--reboot", "--if-required")
	if code != 0 || !strings.Contains(out, "web1: done: in-service — no reboot required") || f.read("web1", "boot") != "first-boot-web1" ||
		f.read("web2", "boot") != "second-boot-web2" || !strings.Contains(f.read("", "log"), "web2 drainctl maintenance reboot --reason drainctl-roll\\ by\\ ") ||
		!strings.Contains(f.read("", "log"), "--if-required") {
		t.Fatalf("exit %d: want web1 left alone, web2 rebooted\n%s\n%s", code, out, f.read("", "log"))
	}
}

func rebootPool(t *testing.T) {
	t.Parallel()
	f := newRebootFake(t, "web1", "web2", "web3")
	f.set(t, "", "pool", "web")
	out, code := f.roll(t, "--reboot", "--parallel", "2")
	if code != 0 || !strings.Contains(out, "in pool web, 2 at a time") || strings.Count(out, "back in service, ") != 3 || strings.Contains(out, "lock") {
		t.Fatalf("exit %d, want 3 hosts rebooted in the pool, no lock\n%s", code, out)
	}
}

// rebootStops: each way a reboot stops the roll.
func rebootStops(t *testing.T) {
	for _, c := range []struct {
		name, host, file, text string
		args                   []string
		want                   string
	}{
		{"held", "web2", "held", "", nil, "FAILED on web2: held after the reboot (it keeps its pool slot; drainctl status): readiness check: GET / answered 503"},
		{"never", "web2", "never", "", []string{"--reboot-timeout", "3s"}, "FAILED on web2: not back within --reboot-timeout 3s (SSH: ssh: connect to host web2 port 22: Connection refused)"},
		{"outside-window", "web2", "rc", "13", nil, "FAILED on web2: outside its reboot window (exit 13), nothing changed: drainctl: outside-window"},
		{"lock-taken", "web1", "steal", "", nil, "FAILED on web1: another roll took the lock while it rebooted (a roll by ops@elsewhere); stopping"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newRebootFake(t, "web1", "web2", "web3")
			f.set(t, c.host, c.file, c.text)
			out, code := f.roll(t, append([]string{"--reboot"}, c.args...)...)
			if code != 1 || !strings.Contains(out, c.want) || !regexp.MustCompile(`not started: .*web3`).MatchString(out) {
				t.Fatalf("exit %d, want 1 and %q, web3 not started\n%s", code, c.want, out)
			}
			if f.rebooted("web3") {
				t.Errorf("the roll went on to web3\n%s", out)
			}
			owner := f.read("lock", "owner")
			if (c.name == "lock-taken") != (owner == "a roll by ops@elsewhere") {
				t.Errorf("the lock's owner at the end: %q\n%s", owner, out)
			}
		})
	}
}
