package nspawn_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/nspawn"
	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

func TestMain(m *testing.M) { os.Exit(nspawn.Main(m)) }

// A container in a network namespace of the test's, rebooted: a new boot
// ID, an enabled unit started again, the namespace's rules gone as a
// host's would be, then powered off; nothing of it left afterwards.
func TestContainerReboot(t *testing.T) {
	t.Parallel()
	ns := nstest.New(t, "nspawn")
	begin := time.Now()
	c := nspawn.Boot(t, nspawn.Options{NetNS: "/run/netns/" + ns.Name})
	t.Logf("booted in %v (the first Boot of a run includes building or unpacking the root)", time.Since(begin).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first, err := c.BootID(ctx)
	if err != nil || len(first) != 36 {
		t.Fatalf("boot id %q: %v", first, err)
	}
	// CAP_NET_ADMIN in the namespace, and the rule seen from the host's side.
	c.Must(t, 0, "nft", "add", "table", "inet", "nspawntest")
	c.Must(t, 0, "iptables-legacy", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "81", "-j", "REDIRECT", "--to-ports", "80")
	if out := ns.MustExec(t, "nft", "list", "tables"); !strings.Contains(out, "nspawntest") {
		t.Fatalf("the container's table is not in %s:\n%s", ns.Name, out)
	}
	if out := c.Must(t, 0, "systemctl", "is-active", "apache2"); strings.TrimSpace(out) != "active" {
		t.Fatalf("apache2 after boot: %s", out)
	}
	init1 := c.InitPID()

	begin = time.Now()
	if err := c.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("rebooted in %v", time.Since(begin).Round(time.Millisecond))
	second, err := c.BootID(ctx)
	if err != nil || second == first || c.Boots() != 2 || c.InitPID() == init1 {
		t.Fatalf("after reboot: boot id %q (was %q), boots %d, init %d (was %d), %v", second, first, c.Boots(), c.InitPID(), init1, err)
	}
	if out := c.Must(t, 0, "nft", "list", "ruleset"); strings.Contains(out, "nspawntest") {
		t.Fatalf("nftables survived the reboot:\n%s", out)
	}
	if out := c.Must(t, 0, "iptables-legacy-save", "-t", "nat"); strings.Contains(out, "REDIRECT") {
		t.Fatalf("iptables-legacy survived the reboot:\n%s", out)
	}
	if out := c.Must(t, 0, "systemctl", "is-active", "apache2"); strings.TrimSpace(out) != "active" {
		t.Fatalf("apache2 after reboot: %s", out)
	}
	if err := c.WaitBoot(ctx, 1); err == nil {
		t.Fatal("WaitBoot(1) in boot 2 must fail")
	}
	// A command as a unit of the container's systemd: its own cgroup.
	if out, err := c.Unit(ctx, "cat", "/proc/self/cgroup"); err != nil || !strings.Contains(out, "0::/system.slice/run-") {
		t.Fatalf("systemd-run: %q, %v", out, err)
	}

	begin = time.Now()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("poweroff: %v", err)
	}
	t.Logf("powered off in %v", time.Since(begin).Round(time.Millisecond))
	if _, err := c.Exec(ctx, "true"); err == nil {
		t.Fatal("Exec after poweroff must fail")
	}
}

// Two containers at once, each with loopback only: separate machines
// (names, boot IDs, processes); then, after the test, no cgroup of either.
func TestContainersInParallel(t *testing.T) {
	t.Parallel()
	var cgroups []string
	t.Cleanup(func() {
		for _, cg := range cgroups {
			if _, err := os.Stat(cg); err == nil {
				t.Errorf("cgroup %s left", cg)
			}
		}
	})
	t.Run("pair", func(t *testing.T) {
		a, b := nspawn.Boot(t, nspawn.Options{}), nspawn.Boot(t, nspawn.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ida, _ := a.BootID(ctx)
		idb, _ := b.BootID(ctx)
		if a.Name == b.Name || ida == idb || ida == "" {
			t.Fatalf("%s %q and %s %q", a.Name, ida, b.Name, idb)
		}
		if out := a.Must(t, 0, "ip", "-o", "link"); strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Fatalf("private network: want loopback only:\n%s", out)
		}
		for _, c := range []*nspawn.Container{a, b} {
			for _, r := range []string{"/sys/fs/cgroup/unified/", "/sys/fs/cgroup/systemd/", "/sys/fs/cgroup/"} {
				if _, err := os.Stat(r + c.Name); err == nil {
					cgroups = append(cgroups, r+c.Name)
				}
			}
		}
		if len(cgroups) == 0 {
			t.Fatal("no cgroup of the run's own")
		}
	})
}
