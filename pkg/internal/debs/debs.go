// Package debs builds drainctl's packages for the tests that install
// them (the package tests, the systemd tier): `make package` once per
// version and test binary, into a temporary directory removed by Remove.
package debs

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

var (
	mu    sync.Mutex
	dir   string
	built = map[string][2]string{}
)

// Build runs `make package` for version (once per test binary) and
// returns the .deb and the .rpm.
func Build(t testing.TB, version string) (deb, rpm string) {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[version]; ok {
		return p[0], p[1]
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "drainctl-test-packages-")
		if err != nil {
			t.Fatal(err)
		}
		dir = d
	}
	out := filepath.Join(dir, version)
	// Bounded: the first run builds nfpm itself (about 30 s here).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-C", repoRoot(), "package", "VERSION="+version,
		"BIN="+filepath.Join(out, "bin"), "DIST="+filepath.Join(out, "dist"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make package: %v\n%s", err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(out, "dist", "*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(out, "dist", "*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("make package made %v and %v", debs, rpms)
	}
	built[version] = [2]string{debs[0], rpms[0]}
	return debs[0], rpms[0]
}

// Remove removes what Build made; call it from TestMain after m.Run.
func Remove() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
		dir, built = "", map[string][2]string{}
	}
}

// repoRoot is the repository's top directory, from this file's place in
// it: the tests run from their own package's directory.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}
