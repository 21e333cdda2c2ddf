package integration

// The packages as Debian's and RPM's tools judge them: lintian on the
// .deb (no error, no warning: the overrides it ships carry their
// reasons), rpmlint on the .rpm (no error), the changelog of the
// package's own version, and a binary hardened as the package says (a
// PIE, full RELRO, no shared library needed beyond the Depends).

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// TestPackageLint: lintian reports nothing of warning level or above on
// the .deb, rpmlint no error on the .rpm (with scripts/package/rpmlint.toml).
// The packages are the ones TestPackageDeb installs (built once per test
// binary), so this adds only the linters' time: about 8 s.
func TestPackageLint(t *testing.T) {
	t.Parallel()
	nstest.RequireCmd(t, "lintian", "rpmlint", "dpkg-deb", "cpio")
	deb, rpm := buildPackages(t, "0.0.2")

	// --pedantic and -I list every tag; only E: and W: (errors and
	// warnings) fail. Overridden tags are not printed (lintian's
	// default), each override's reason is in the package.
	out := runLinter(t, "", nil, "lintian", "--pedantic", "-I", deb)
	if bad := linesMatching(out, `^[EW]: `); len(bad) > 0 {
		t.Errorf("lintian on %s:\n%s\n(full output:\n%s)", filepath.Base(deb), strings.Join(bad, "\n"), out)
	}

	// rpmlint unpacks the .rpm with `rpm2cpio | cpio -id` in a temporary
	// directory; nfpm's cpio names files by absolute paths, which GNU
	// cpio would write to the host's root. A cpio first in PATH that
	// strips the leading / keeps the unpacking in rpmlint's directory.
	shim := t.TempDir()
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(shim, "cpio"), []byte("#!/bin/sh\nexec "+cpio+" --no-absolute-filenames \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + shim + ":/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8", "HOME=" + t.TempDir()}
	out = runLinter(t, t.TempDir(), env, "rpmlint", "-c", filepath.Join(repoDir(), "scripts/package/rpmlint.toml"), rpm)
	if !regexp.MustCompile(`(?m)^ 1 packages and 0 specfiles checked; 0 errors,`).MatchString(out) {
		t.Errorf("rpmlint on %s:\n%s", filepath.Base(rpm), out)
	}
	// rpmlint judged the unpacked files: the binary was seen as ELF.
	if strings.Contains(out, "no-binary") {
		t.Errorf("rpmlint did not unpack the .rpm (no-binary):\n%s", out)
	}

	checkChangelog(t, deb)
	checkHardened(t, filepath.Join(filepath.Dir(filepath.Dir(deb)), "bin", "drainctl"))
}

// runLinter runs a linter (at most 2 minutes) in dir with env (nil: the
// test's own) and returns its output; its exit status is not judged,
// its report is.
func runLinter(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil || (err != nil && cmd.ProcessState == nil) {
		t.Fatalf("%s: %v\n%s", args[0], err, out)
	}
	return string(out)
}

func linesMatching(out, pattern string) []string {
	re := regexp.MustCompile(pattern)
	var m []string
	for _, l := range strings.Split(out, "\n") {
		if re.MatchString(l) {
			m = append(m, l)
		}
	}
	return m
}

// checkChangelog: the .deb's changelog.Debian.gz has the package's own
// version in its first entry, and its copyright file is DEP-5.
func checkChangelog(t *testing.T, deb string) {
	t.Helper()
	version, err := exec.Command("dpkg-deb", "-f", deb, "Version").Output()
	if err != nil {
		t.Fatalf("dpkg-deb -f: %v", err)
	}
	gz, err := exec.Command("sh", "-c", `dpkg-deb --fsys-tarfile "$1" | tar -xOf - ./usr/share/doc/drainctl/changelog.Debian.gz`, "sh", deb).Output()
	if err != nil {
		t.Fatalf("the .deb has no changelog.Debian.gz: %v", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	text, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	want := "drainctl (" + strings.TrimSpace(string(version)) + ") "
	if !strings.HasPrefix(string(text), want) {
		t.Errorf("changelog.Debian.gz starts %q, want %q (the package's version)", strings.SplitN(string(text), "\n", 2)[0], want)
	}
	copyright, err := exec.Command("sh", "-c", `dpkg-deb --fsys-tarfile "$1" | tar -xOf - ./usr/share/doc/drainctl/copyright`, "sh", deb).Output()
	if err != nil || !strings.HasPrefix(string(copyright), "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n") {
		t.Errorf("the .deb's copyright file is not DEP-5: %v\n%s", err, copyright)
	}
}

// checkHardened: the packaged binary is a PIE with full RELRO (a
// PT_GNU_RELRO segment, bound now) that needs no shared library, which
// is what its Depends (libc6, for the loader alone) says.
func checkHardened(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Type != elf.ET_DYN {
		t.Errorf("%s: ELF type %v, want ET_DYN (a PIE)", bin, f.Type)
	}
	relro := false
	for _, p := range f.Progs {
		relro = relro || p.Type == elf.PT_GNU_RELRO
	}
	if !relro {
		t.Errorf("%s: no PT_GNU_RELRO segment", bin)
	}
	flags, _ := f.DynValue(elf.DT_FLAGS)
	flags1, _ := f.DynValue(elf.DT_FLAGS_1)
	if !hasBit(flags, uint64(elf.DF_BIND_NOW)) && !hasBit(flags1, uint64(elf.DF_1_NOW)) {
		t.Errorf("%s: not bound now (DT_FLAGS %v, DT_FLAGS_1 %v): partial RELRO only", bin, flags, flags1)
	}
	if needed, err := f.DynString(elf.DT_NEEDED); err != nil || len(needed) > 0 {
		t.Errorf("%s: needs %v (%v); the package depends on libc6 for the loader alone", bin, needed, err)
	}
}

func hasBit(vals []uint64, bit uint64) bool {
	for _, v := range vals {
		if v&bit != 0 {
			return true
		}
	}
	return false
}

// repoDir is the repository's top directory, from this file's place.
func repoDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}
