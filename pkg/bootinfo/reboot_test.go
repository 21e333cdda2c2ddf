package bootinfo

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Output of needrestart 3.6 (Debian 12) as run on the host these tests
// were written on. That host (a VM without kernel images in /boot) gave
// KSTA 0; KSTA 1, 2 and 3 are its output with images put into /boot whose
// x86 version header named the running release and build, the running
// release with another build, and a newer release.
const (
	needrestartUnknown = "NEEDRESTART-VER: 3.6\nNEEDRESTART-KCUR: 6.18.44-fc-v857\nNEEDRESTART-KSTA: 0\n"
	needrestartCurrent = "NEEDRESTART-VER: 3.6\nNEEDRESTART-KCUR: 6.18.44-fc-v857\nNEEDRESTART-KEXP: 6.18.44-fc-v857\nNEEDRESTART-KSTA: 1\n"
	needrestartABI     = "NEEDRESTART-VER: 3.6\nNEEDRESTART-KCUR: 6.18.44-fc-v857\nNEEDRESTART-KEXP: 6.18.44-fc-v857\nNEEDRESTART-KSTA: 2\n"
	needrestartNewer   = "NEEDRESTART-VER: 3.6\nNEEDRESTART-KCUR: 6.18.44-fc-v857\nNEEDRESTART-KEXP: 6.19.2-fc-v900\nNEEDRESTART-KSTA: 3\n"
	// needrestart -b without -k also checks microcode: lines to pass over.
	needrestartAll = "NEEDRESTART-VER: 3.6\nNEEDRESTART-KCUR: 6.18.44-fc-v857\nNEEDRESTART-KSTA: 1\nNEEDRESTART-UCSTA: 1\nNEEDRESTART-UCCUR: 0x1000065\nNEEDRESTART-UCEXP: \n"
	// needrestart -Z: exit status 1 and its usage on standard output.
	needrestartUsage = "Usage:\n\n  needrestart [-vn] [-c <cfg>] [-r <mode>] [-f <fe>] [-u <ui>] [-bkl]\n"
)

// fakeNeedrestart makes an executable file to stand for needrestart.
func fakeNeedrestart(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "needrestart")
	if err := os.WriteFile(p, []byte("#!/bin/false\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// answer is a fake Run that prints out and fails with err, and records
// what it was asked to run.
func answer(out string, err error, ran *[]string) func(context.Context, string, ...string) ([]byte, error) {
	return func(_ context.Context, name string, args ...string) ([]byte, error) {
		*ran = append(*ran, name+" "+strings.Join(args, " "))
		return []byte(out), err
	}
}

func TestRequired(t *testing.T) {
	flag := map[string]string{"var/run/reboot-required": "*** System restart required ***\n"}
	flagPkgs := map[string]string{
		"var/run/reboot-required":      "",
		"var/run/reboot-required.pkgs": "linux-image-6.1.0-28-amd64\nlibc6\nlinux-image-6.1.0-28-amd64\n",
	}
	flagNoPkgs := map[string]string{"var/run/reboot-required": "", "var/run/reboot-required.pkgs": "\n"}
	tests := []struct {
		name  string
		files map[string]string
		out   string // needrestart's output; "-" for not installed
		want  Need
		str   string
	}{
		{"nothing", nil, "-", Need{Checked: []string{rebootRequired}, Skipped: []string{"needrestart not installed (no /x)"}},
			"no reboot required (checked /var/run/reboot-required; needrestart not installed (no /x))"},
		{"flag", flag, "-", Need{Required: true, Reasons: []string{"/var/run/reboot-required exists"}, Checked: []string{rebootRequired}, Skipped: []string{"needrestart not installed (no /x)"}},
			"reboot required: /var/run/reboot-required exists (checked /var/run/reboot-required; needrestart not installed (no /x))"},
		{"flag and packages", flagPkgs, "-", Need{Required: true, Reasons: []string{"/var/run/reboot-required exists", "packages: linux-image-6.1.0-28-amd64, libc6"}, Checked: []string{rebootRequired}, Skipped: []string{"needrestart not installed (no /x)"}}, ""},
		{"flag and no packages", flagNoPkgs, "-", Need{Required: true, Reasons: []string{"/var/run/reboot-required exists"}, Checked: []string{rebootRequired}, Skipped: []string{"needrestart not installed (no /x)"}}, ""},
		{"needrestart unknown", nil, needrestartUnknown, Need{Checked: []string{rebootRequired}, Skipped: []string{"needrestart could not tell (found no kernel image in /boot to compare with the running 6.18.44-fc-v857)"}}, ""},
		{"needrestart current", nil, needrestartCurrent, Need{Checked: []string{rebootRequired, "needrestart"}},
			"no reboot required (checked /var/run/reboot-required, needrestart)"},
		{"needrestart other checks", nil, needrestartAll, Need{Checked: []string{rebootRequired, "needrestart"}}, ""},
		{"needrestart ABI", nil, needrestartABI, Need{Required: true, Reasons: []string{"kernel 6.18.44-fc-v857 running, a rebuild of it installed (an ABI-compatible upgrade)"}, Checked: []string{rebootRequired, "needrestart"}}, ""},
		{"needrestart newer", nil, needrestartNewer, Need{Required: true, Reasons: []string{"kernel 6.18.44-fc-v857 running, 6.19.2-fc-v900 installed"}, Checked: []string{rebootRequired, "needrestart"}},
			"reboot required: kernel 6.18.44-fc-v857 running, 6.19.2-fc-v900 installed (checked /var/run/reboot-required, needrestart)"},
		{"both", flagPkgs, needrestartNewer, Need{Required: true, Reasons: []string{"/var/run/reboot-required exists", "packages: linux-image-6.1.0-28-amd64, libc6", "kernel 6.18.44-fc-v857 running, 6.19.2-fc-v900 installed"}, Checked: []string{rebootRequired, "needrestart"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ran []string
			c := RebootCheck{Root: writeFiles(t, tt.files), Needrestart: "/x", Run: answer(tt.out, nil, &ran)}
			if tt.out != "-" {
				c.Needrestart = fakeNeedrestart(t)
			}
			got, err := c.Required(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !equalNeed(got, tt.want) {
				t.Errorf("Required =\n%#v\nwant\n%#v", got, tt.want)
			}
			if tt.str != "" && got.String() != tt.str {
				t.Errorf("String = %q\nwant     %q", got.String(), tt.str)
			}
			wantRan := []string(nil)
			if tt.out != "-" {
				wantRan = []string{c.Needrestart + " -b -k"}
			}
			if !slices.Equal(ran, wantRan) {
				t.Errorf("ran %q, want %q", ran, wantRan)
			}
		})
	}
}

func equalNeed(a, b Need) bool {
	return a.Required == b.Required && slices.Equal(a.Reasons, b.Reasons) && slices.Equal(a.Checked, b.Checked) && slices.Equal(a.Skipped, b.Skipped)
}

func TestRequiredNeedrestartFails(t *testing.T) {
	tests := []struct {
		name string
		out  string
		err  error
		want []string
	}{
		{"exit status", needrestartUsage, errors.New("exit status 1"), []string{"-b -k: exit status 1", "Usage:"}},
		{"no status line", "NEEDRESTART-VER: 3.6\n", nil, []string{"no NEEDRESTART-KSTA line", "NEEDRESTART-VER: 3.6"}},
		{"unknown status", "NEEDRESTART-KSTA: 4\n", nil, []string{`NEEDRESTART-KSTA "4" is not a kernel status`}},
		{"not a number", "NEEDRESTART-KSTA: x\n", nil, []string{`NEEDRESTART-KSTA "x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ran []string
			c := RebootCheck{Root: t.TempDir(), Needrestart: fakeNeedrestart(t), Run: answer(tt.out, tt.err, &ran)}
			_, err := c.Required(context.Background())
			if err == nil {
				t.Fatal("no error")
			}
			for _, part := range append(tt.want, c.Needrestart) {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not say %q", err, part)
				}
			}
			if tt.err != nil && !errors.Is(err, tt.err) {
				t.Errorf("error %q does not wrap %q", err, tt.err)
			}
		})
	}
}

func TestRequiredFlagUnreadable(t *testing.T) {
	// A reboot-required.pkgs that is a directory cannot be read.
	root := writeFiles(t, map[string]string{"var/run/reboot-required": "", "var/run/reboot-required.pkgs/x": ""})
	_, err := RebootCheck{Root: root, Needrestart: "/x"}.Required(context.Background())
	if err == nil || !strings.Contains(err.Error(), "reboot-required.pkgs") {
		t.Errorf("error %v, want it to name reboot-required.pkgs", err)
	}
}

func TestRequiredLooksInPath(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	var ran []string
	c := RebootCheck{Root: t.TempDir(), Run: answer(needrestartCurrent, nil, &ran)}
	got, err := c.Required(context.Background())
	if err != nil || !slices.Equal(got.Skipped, []string{"needrestart not installed"}) || len(ran) != 0 {
		t.Errorf("without needrestart in PATH: %#v, %v, ran %q", got, err, ran)
	}
	bin := filepath.Join(dir, "needrestart")
	if err := os.WriteFile(bin, []byte("#!/bin/false\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err = c.Required(context.Background())
	if err != nil || !slices.Equal(got.Checked, []string{rebootRequired, "needrestart"}) || !slices.Equal(ran, []string{bin + " -b -k"}) {
		t.Errorf("with needrestart in PATH: %#v, %v, ran %q", got, err, ran)
	}
}

func TestRunCommand(t *testing.T) {
	out, err := runCommand(context.Background(), "sh", "-c", "echo out; echo warning >&2")
	if err != nil || string(out) != "out\n" {
		t.Errorf("runCommand = %q, %v; want standard output only", out, err)
	}
	out, err = runCommand(context.Background(), "sh", "-c", "echo usage; echo bad option >&2; exit 3")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(err.Error(), "bad option") || string(out) != "usage\n" {
		t.Errorf("runCommand = %q, %v; want the exit status, stderr in the error and stdout", out, err)
	}
}
