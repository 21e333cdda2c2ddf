package nstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildBinary builds the Go command at pkgDir (a path relative to the
// calling test's package, e.g. "../../../cmd/drainctl") as name in a
// temporary directory, for tests that run the real binary. cleanup
// removes it.
func BuildBinary(pkgDir, name string) (bin string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "drainctl-test-bin-")
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", bin, pkgDir).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build %s: %w\n%s", pkgDir, err, out)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}
