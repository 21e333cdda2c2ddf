package integration

// Scenario 6 of TestSystemdEveryRestart: a package upgrade that needs
// only a reload. Debian's apache2 package holds the scripts, the
// configuration and the units; the binary and the modules are
// apache2-bin's. An upgrade of apache2 alone replaces nothing Apache
// runs, yet its postinst restarts apache2.service like any other.
// drainctl's policy-rc.d takes the restart over, and once
// unattended-upgrades is done the agent, finding every file Apache maps
// still on disk, does a graceful reload, drained: Apache's main process
// stays, the users and the download with it. The package is the
// repository's apache2 repacked with a higher version (only its Version
// line: its dependency on apache2-bin stays), in the repository's
// config/.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/internal/nspawn"
)

// configDir is the repository's subdirectory with apache2 alone.
const configDir = "config"

// buildConfig makes config/: the repository's apache2 (not -bin, -data,
// -utils) with version new+config.
func (r *upgradeRepo) buildConfig(ctx context.Context) error {
	dir := filepath.Join(r.dir, configDir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	// Below second/'s new+drainctl2, which the run after this one
	// upgrades to: "+c" sorts before "+d".
	r.config = r.new + "+config"
	host := func(args ...string) (string, error) { return hostCmd(ctx, dir, args...) }
	debs, _ := filepath.Glob(filepath.Join(r.dir, "apache2_*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("config/: apache2's package in the repository: found %v", debs)
	}
	tree, err := os.MkdirTemp("", "drainctl-repack-config-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tree)
	if _, err := host("dpkg-deb", "-R", debs[0], filepath.Join(tree, "p")); err != nil {
		return err
	}
	control := filepath.Join(tree, "p", "DEBIAN", "control")
	b, err := os.ReadFile(control)
	if err != nil {
		return err
	}
	version := regexp.MustCompile(`(?m)^Version: .*$`)
	if !version.Match(b) {
		return fmt.Errorf("config/: no Version in %s", debs[0])
	}
	b = version.ReplaceAll(b, []byte("Version: "+r.config))
	if err := os.WriteFile(control, b, 0o644); err != nil {
		return err
	}
	if _, err := host("dpkg-deb", "-Znone", "-b", filepath.Join(tree, "p"), filepath.Join(dir, "apache2_config.deb")); err != nil {
		return err
	}
	return writeIndex(host, dir)
}

// reloadRun is the scenario: install, upgrade, check.
type reloadRun struct {
	r       *upgradeRepo
	bin     string // apache2-bin's version, which stays
	mainPID int
}

func (r *upgradeRepo) reload() *reloadRun { return &reloadRun{r: r} }

// install (before the load) adds config/ to the container's sources and
// checks that apt would upgrade apache2 alone.
func (u *reloadRun) install(t *testing.T, c *nspawn.Container) {
	t.Helper()
	u.r.wait(t, true)
	csh(t, c, fmt.Sprintf(`set -e
printf 'deb [trusted=yes] file:%s ./\ndeb [trusted=yes] file:%s/%s ./\n' > /etc/apt/sources.list
apt-get update -q >/dev/null`, repoInside, repoInside, configDir))
	out := csh(t, c, "apt-get -s upgrade | grep '^Inst' || true")
	if !strings.Contains(out, "Inst apache2 [") || !strings.Contains(out, "("+u.r.config+" ") || strings.Contains(out, "apache2-bin") {
		t.Fatalf("apt would not upgrade apache2 alone to %s:\n%s", u.r.config, out)
	}
	u.bin = strings.TrimSpace(csh(t, c, "dpkg-query -W -f '${Version}' apache2-bin"))
	u.mainPID = unitPID(t, c, "apache2")
}

// upgrade runs unattended-upgrade, the download started at apache2's
// postinst.
func (u *reloadRun) upgrade(t *testing.T, c *nspawn.Container, start func()) {
	t.Helper()
	runSeeing(t, c, "unattended-upgrade -v 2>&1", postinst, start)
}

// check: apache2 upgraded, apache2-bin not; Apache's main process the
// same (reloaded, not restarted); the history's restart says reload.
func (u *reloadRun) check(t *testing.T, c *nspawn.Container) {
	t.Helper()
	if v := strings.TrimSpace(csh(t, c, "dpkg-query -W -f '${Version}' apache2")); v != u.r.config {
		t.Errorf("apache2 %s after the upgrade, want %s", v, u.r.config)
	}
	if v := strings.TrimSpace(csh(t, c, "dpkg-query -W -f '${Version}' apache2-bin")); v != u.bin {
		t.Errorf("apache2-bin %s after the upgrade, want %s (unchanged)", v, u.bin)
	}
	if pid := unitPID(t, c, "apache2"); pid != u.mainPID {
		t.Errorf("Apache's main process %d, before %d: restarted, where a reload would do", pid, u.mainPID)
	}
	action := lastOwedAction(t, c)
	if !strings.HasPrefix(action, "reload: ") {
		t.Errorf("the last restart owed did %q, want a reload", action)
	}
	t.Logf("Apache reloaded, main PID %d kept; the history's action: %s", u.mainPID, action)
}

// lastOwedAction is the action of the last restart owed in the history
// (the newest of the last five entries with one).
func lastOwedAction(t *testing.T, c *nspawn.Container) string {
	t.Helper()
	out := csh(t, c, "drainctl history -n 5 --json")
	var es []apitype.HistoryEntry
	if err := json.Unmarshal([]byte(out), &es); err != nil {
		t.Fatalf("history --json: %v\n%s", err, out)
	}
	var action string
	for _, e := range es {
		if e.Action != "" {
			action = e.Action
		}
	}
	return action
}
