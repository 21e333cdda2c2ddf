package main

import (
	"os"
	"path/filepath"
	"testing"
)

// runCLI runs drainctl in this process, as main does, and returns what it
// printed and its exit code. Tests that use it must not run in parallel:
// it swaps os.Stdout and os.Stderr.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	clearEnv(t)
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	errf, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = out, errf
	code = run(append([]string{"drainctl"}, args...))
	os.Stdout, os.Stderr = oldOut, oldErr
	out.Close()
	errf.Close()
	o, _ := os.ReadFile(out.Name())
	e, _ := os.ReadFile(errf.Name())
	return string(o), string(e), code
}
