package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// The packages' version is the commit's, whatever the checkout: a full
// clone, a `git clone --depth 1` (CI's) and a `git archive` tarball of
// one commit build the same version, and it is newer, for dpkg, than the
// old scheme's (0.1.0+gitCOUNT.HASH), and older than a later commit's, so
// every build upgrades the ones before it. The Makefile of this tree
// versions each checkout (make -f).
func TestVersionMonotonic(t *testing.T) {
	nstest.RequireCmd(t, "git", "make", "dpkg", "tar")
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if top, err := exec.Command("git", "-C", root, "rev-parse", "--show-toplevel").Output(); err != nil || strings.TrimSpace(string(top)) != root {
		nstest.Skip(t, "the source tree is not a git checkout")
	}
	makefile := filepath.Join(root, "Makefile")
	head := strings.TrimSpace(runIn(t, root, "git", "rev-parse", "HEAD"))
	version := func(dir string) string {
		t.Helper()
		v := strings.TrimSpace(runIn(t, dir, "make", "-s", "-f", makefile, "-C", dir, "print-version"))
		if !strings.HasPrefix(v, "0.") || strings.ContainsAny(v, " \n-~:") {
			t.Fatalf("print-version in %s: %q", dir, v)
		}
		return v
	}
	tmp := t.TempDir()

	full := filepath.Join(tmp, "full")
	runIn(t, tmp, "git", "clone", "-q", "file://"+root, full)
	runIn(t, full, "git", "checkout", "-q", "--detach", head)
	shallow := filepath.Join(tmp, "shallow")
	runIn(t, tmp, "git", "init", "-q", shallow)
	runIn(t, shallow, "git", "fetch", "-q", "--depth", "1", "file://"+root, head)
	runIn(t, shallow, "git", "checkout", "-q", "FETCH_HEAD")
	if n := strings.TrimSpace(runIn(t, shallow, "git", "rev-list", "--count", "HEAD")); n != "1" {
		t.Fatalf("the shallow clone has %s commits, want 1", n)
	}
	archive := filepath.Join(tmp, "archive")
	if err := os.Mkdir(archive, 0o755); err != nil {
		t.Fatal(err)
	}
	runIn(t, tmp, "sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", root, head, archive)

	v := version(full)
	if s := version(shallow); s != v {
		t.Errorf("a shallow clone builds %s, a full one %s", s, v)
	}
	if a := version(archive); a != v {
		t.Errorf("a git archive builds %s, a full clone %s", a, v)
	}
	// The old scheme, for this very commit: the last one before the change.
	old := "0.1.0+git" + strings.TrimSpace(runIn(t, full, "git", "rev-list", "--count", "HEAD")) + "." +
		strings.TrimSpace(runIn(t, full, "git", "rev-parse", "--short", "HEAD"))
	// A commit made after HEAD builds a newer version. Made here, a
	// minute later than HEAD, so the test needs no history of the source
	// tree: CI may check out one commit only.
	at := strings.TrimSpace(runIn(t, full, "git", "log", "-1", "--format=%ct"))
	later := exec.Command("git", "-c", "user.name=drainctl test", "-c", "user.email=test@drainctl.invalid",
		"commit", "-q", "--allow-empty", "-m", "a later commit")
	later.Dir = full
	later.Env = append(os.Environ(), "GIT_COMMITTER_DATE=@"+strconv.Itoa(atoi(t, at)+60)+" +0000")
	if out, err := later.CombinedOutput(); err != nil {
		t.Fatalf("commit: %v\n%s", err, out)
	}
	next := version(full)
	if exec.Command("dpkg", "--compare-versions", next, "gt", v).Run() != nil {
		t.Errorf("dpkg: a later commit's %s is not newer than %s", next, v)
	}
	if exec.Command("dpkg", "--compare-versions", v, "gt", old).Run() != nil {
		t.Errorf("dpkg: %s is not newer than the old scheme's %s", v, old)
	}
	t.Logf("HEAD %s, a later commit %s, old scheme %s", v, next, old)
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// runIn runs a command in dir and returns its output; failing fails the test.
func runIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
