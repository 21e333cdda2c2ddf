package integration

// Scenario 5 of TestSystemdEveryRestart: needrestart restarting Apache
// after a library Apache maps was replaced. needrestart (Debian 12's,
// from the upgrade's repository, restarts_upgrade_test.go) is set to
// restart services itself ($nrconf{restart} = 'a', as sites set it to
// keep apt quiet); apt reinstalls libapr1 (the root's own version, from
// the repository): dpkg puts a new file in place of the one Apache maps,
// and apt's DPkg::Post-Invoke hook runs needrestart, which finds Apache
// mapping a deleted file and runs `systemctl restart apache2.service`.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/drainctl/drainctl/pkg/internal/nspawn"
)

// needrestartRun is one run of the scenario.
type needrestartRun struct {
	r       *upgradeRepo
	mainPID int // Apache's before
}

func (r *upgradeRepo) needrestart() *needrestartRun { return &needrestartRun{r: r} }

// install (before the load) installs needrestart from the repository,
// once, set to restart on its own, and checks Apache maps libapr.
func (n *needrestartRun) install(t *testing.T, c *nspawn.Container) {
	t.Helper()
	n.r.wait(t, false)
	// The setting first, as a site has it before apt runs needrestart.
	// Then needrestart once, before the load: what else runs outdated
	// libraries (the upgrade's dependencies replaced liblzma5, which
	// systemd's daemons map) restarted now, the scenario's needrestart
	// finds Apache alone.
	out := csh(t, c, fmt.Sprintf(`set -e
if ! dpkg-query -W -f '${Status}' needrestart 2>/dev/null | grep -q 'ok installed'; then
	mkdir -p /etc/needrestart/conf.d
	echo "\$nrconf{restart} = 'a';" > /etc/needrestart/conf.d/drainctl-test.conf
	grep -q '^deb .*file:%s ' /etc/apt/sources.list || { echo 'deb [trusted=yes] file:%s ./' > /etc/apt/sources.list; rm -f /etc/apt/sources.list.d/*; apt-get update -q >/dev/null; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends needrestart >/dev/null
fi
needrestart -r a -l 2>&1`, repoInside, repoInside))
	t.Logf("needrestart before the load:\n%s", out)
	n.mainPID = unitPID(t, c, "apache2")
	if maps := csh(t, c, fmt.Sprintf("grep -c 'libapr-1' /proc/%d/maps || true", n.mainPID)); strings.TrimSpace(maps) == "0" {
		t.Fatalf("Apache (main PID %d) maps no libapr-1", n.mainPID)
	}
}

// needrestartBin is needrestart's command line (perl runs the script):
// the download starts when it appears, before its restart of Apache.
const needrestartBin = "/usr/sbin/needrestart"

// reinstall reinstalls libapr1 with apt, whose hook runs needrestart,
// and starts the download once needrestart runs.
func (n *needrestartRun) reinstall(t *testing.T, c *nspawn.Container, start func()) {
	t.Helper()
	runSeeing(t, c, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall libapr1=\""+n.r.lib+"\" 2>&1", needrestartBin, start)
}

// check: needrestart restarted Apache: a new main process, which maps
// the new libapr (no deleted one).
func (n *needrestartRun) check(t *testing.T, c *nspawn.Container) {
	t.Helper()
	pid := unitPID(t, c, "apache2")
	deleted := strings.TrimSpace(csh(t, c, fmt.Sprintf("grep 'libapr-1.*(deleted)' /proc/%d/maps || true", pid)))
	if pid == n.mainPID || deleted != "" {
		t.Fatalf("needrestart did not restart Apache: main PID %d (before %d), its deleted libapr maps: %q", pid, n.mainPID, deleted)
	}
	t.Logf("Apache restarted by needrestart: main PID %d (before %d), no deleted libapr mapped", pid, n.mainPID)
}
