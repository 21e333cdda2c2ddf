package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// The packages' version is the commit's, whatever the checkout: a full
// clone, a `git clone --depth 1` (CI's) and a `git archive` tarball of
// one commit build the same version, and it is newer, for dpkg, than its
// parent's and than the old scheme's (0.1.0+gitCOUNT.HASH), so every
// build upgrades the ones before it. The Makefile of this tree versions
// each checkout (make -f), so the parent is versioned the same way.
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
	parent := olderAncestor(t, root)
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
	runIn(t, full, "git", "checkout", "-q", "--detach", parent)
	p := version(full)
	for _, older := range []string{p, old} {
		if exec.Command("dpkg", "--compare-versions", v, "gt", older).Run() != nil {
			t.Errorf("dpkg: %s is not newer than %s", v, older)
		}
	}
	t.Logf("HEAD %s, parent %s, old scheme %s", v, p, old)
}

// olderAncestor is the parent of HEAD, or, when HEAD was committed in the
// same second as its parent (a rebase commits a series at once), the
// nearest ancestor committed before: commits of one second sort by their
// hash (scripts/package/version). An ancestor committed after HEAD (a
// clock gone back) fails the test: its build would be newer.
func olderAncestor(t *testing.T, root string) string {
	t.Helper()
	var headTime string
	for i, line := range strings.Split(strings.TrimSpace(runIn(t, root, "git", "log", "--first-parent", "-n", "1000", "--format=%ct %H")), "\n") {
		f := strings.Fields(line)
		switch {
		case i == 0:
			headTime = f[0]
		case f[0] > headTime:
			t.Fatalf("commit %s was committed after HEAD (%s > %s): its version would be newer", f[1], f[0], headTime)
		case f[0] < headTime:
			if i > 1 {
				t.Logf("HEAD and its %d nearest ancestors share a committer second; comparing with %s", i-1, f[1])
			}
			return f[1]
		}
	}
	t.Skip("no ancestor committed before HEAD")
	return ""
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
