package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// The config file defines the commands the agent runs as root: one that
// another user owns, or that its group or others may write, is refused
// with the command that fixes it; root's, of mode 0644 or 0600, is
// taken.
func TestCheckFile(t *testing.T) {
	nstest.RequireRoot(t) // files of another owner: chown
	dir := t.TempDir()
	file := func(name string, mode os.FileMode, uid int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("backend: auto\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, 0); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, ok := range []string{file("a.yaml", 0o644, 0), file("b.yaml", 0o600, 0), "", os.DevNull} {
		if err := CheckFile(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, tc := range []struct{ path, want string }{
		{file("group.yaml", 0o664, 0), "mode 0664 lets its group or others change it"},
		{file("world.yaml", 0o646, 0), "chmod go-w"},
		{file("nobody.yaml", 0o644, 65534), "owned by uid 65534"},
		{filepath.Join(dir, "missing.yaml"), "no such file"},
	} {
		if err := CheckFile(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: %v, want an error naming it and saying %q", tc.path, err, tc.want)
		}
	}
}
