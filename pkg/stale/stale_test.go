package stale

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// fakeProc writes a /proc/PID with the executable link and maps given.
func fakeProc(t *testing.T, exe, maps string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "42")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(dir, "exe")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "maps"), []byte(maps), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestProcess(t *testing.T) {
	const fresh = `55d0c8a00000-55d0c8a2e000 r--p 00000000 fe:01 1314 /usr/sbin/apache2
55d0c8a2e000-55d0c8ad0000 r-xp 0002e000 fe:01 1314 /usr/sbin/apache2
7f1e4c000000-7f1e4c021000 rw-p 00000000 00:00 0 
7f1e4d200000-7f1e4d228000 r-xp 00028000 fe:01 2201 /usr/lib/x86_64-linux-gnu/libc.so.6
7f1e4d400000-7f1e4d410000 r-xp 00000000 fe:01 3301 /usr/lib/apache2/modules/mod_cgid.so
7ffd1c5e0000-7ffd1c601000 rw-p 00000000 00:00 0                          [stack]
`
	cases := []struct {
		name, exe, maps string
		want            []string
	}{
		{"nothing replaced: a reload will do", "/usr/sbin/apache2", fresh, nil},
		{"the binary replaced", "/usr/sbin/apache2 (deleted)",
			"55d0c8a2e000-55d0c8ad0000 r-xp 0002e000 fe:01 1314 /usr/sbin/apache2 (deleted)\n",
			[]string{"/usr/sbin/apache2"}},
		{"a library replaced, mapped twice", "/usr/sbin/apache2", fresh +
			"7f1e4e000000-7f1e4e010000 r-xp 00000000 fe:01 4401 /usr/lib/x86_64-linux-gnu/libapr-1.so.0.7.2 (deleted)\n" +
			"7f1e4e100000-7f1e4e110000 r-xp 00010000 fe:01 4401 /usr/lib/x86_64-linux-gnu/libapr-1.so.0.7.2 (deleted)\n",
			[]string{"/usr/lib/x86_64-linux-gnu/libapr-1.so.0.7.2"}},
		{"the binary and modules: the binary first", "/usr/sbin/apache2 (deleted)",
			"7f1e4d400000-7f1e4d410000 r-xp 00000000 fe:01 3301 /usr/lib/apache2/modules/mod_cgid.so (deleted)\n" +
				"55d0c8a2e000-55d0c8ad0000 r-xp 0002e000 fe:01 1314 /usr/sbin/apache2 (deleted)\n" +
				"7f1e4d300000-7f1e4d310000 r-xp 00000000 fe:01 3302 /usr/lib/apache2/modules/mod_alias.so (deleted)\n",
			[]string{"/usr/sbin/apache2", "/usr/lib/apache2/modules/mod_alias.so", "/usr/lib/apache2/modules/mod_cgid.so"}},
		{"a path with a space", "/usr/sbin/apache2",
			"7f1e4e000000-7f1e4e010000 r-xp 00000000 fe:01 4401 /opt/my lib/x.so (deleted)\n", []string{"/opt/my lib/x.so"}},
		{"data mapped, not executable: not loaded code", "/usr/sbin/apache2",
			"7f1e4e000000-7f1e4e010000 r--p 00000000 fe:01 4401 /usr/share/zoneinfo/UTC (deleted)\n", nil},
		{"memory that is not a file", "/usr/sbin/apache2",
			"7f1e4e000000-7f1e4e010000 r-xp 00000000 00:01 4401 /memfd:jit (deleted)\n" +
				"7f1e4e000000-7f1e4e010000 r-xp 00000000 00:05 4401 /SYSV00000000 (deleted)\n" +
				"7f1e4e000000-7f1e4e010000 r-xp 00000000 00:05 4401 /dev/zero (deleted)\n", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Process(fakeProc(t, c.exe, c.maps), 42)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("replaced = %q, want %q", got, c.want)
			}
		})
	}
}

func TestProcessGone(t *testing.T) {
	if _, err := Process(t.TempDir(), 42); err == nil {
		t.Fatal("a process that does not exist: no error")
	}
}

// TestProcessReal replaces the binary of a real process as dpkg does (the
// new file renamed over the old) and reads the kernel's answer.
func TestProcessReal(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "sleep")
	src, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, src, bin)
	cmd := exec.Command(bin, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Until exec is done, /proc/PID/exe is the test's own binary.
	deadline := time.Now().Add(5 * time.Second)
	for {
		exe, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "exe"))
		if exe == bin || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	got, err := Process("/proc", cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("before the upgrade: replaced %q, want none", got)
	}
	copyFile(t, src, bin+".new")
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	got, err = Process("/proc", cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{bin}) {
		t.Fatalf("after the binary was replaced: %q, want [%s]", got, bin)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
