package bootinfo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Debian's flag files: a package whose update needs a reboot (a kernel,
// libc) touches the first and appends its name to the second from its
// postinst (update-notifier-common's and unattended-upgrades' convention).
const (
	rebootRequired     = "/var/run/reboot-required"
	rebootRequiredPkgs = "/var/run/reboot-required.pkgs"
)

// RebootCheck tells whether the host needs a reboot, from the sources it
// has: Debian's reboot-required flag, and needrestart where installed.
// The zero RebootCheck checks the real host.
type RebootCheck struct {
	// Root is where the flag files are looked for; "" is "/".
	Root string
	// Needrestart is the path or name of needrestart; "" looks up
	// "needrestart" in PATH. Debian installs it as /usr/sbin/needrestart,
	// so PATH must have /usr/sbin (systemd's default PATH does).
	Needrestart string
	// Run runs a command and returns its standard output; nil runs it
	// with os/exec. Tests fake it.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
}

// Need is a RebootCheck's answer.
type Need struct {
	// Required tells whether any source says a reboot is required.
	Required bool
	// Reasons say why, one per finding, for the operator.
	Reasons []string
	// Checked lists the sources consulted that gave an answer.
	Checked []string
	// Skipped says which sources were absent or could not tell, and why.
	Skipped []string
}

// String says what was found and what was looked at, e.g. "no reboot
// required (checked /var/run/reboot-required; needrestart not
// installed)".
func (n Need) String() string {
	var b strings.Builder
	if n.Required {
		b.WriteString("reboot required: " + strings.Join(n.Reasons, "; "))
	} else {
		b.WriteString("no reboot required")
	}
	var notes []string
	if len(n.Checked) > 0 {
		notes = append(notes, "checked "+strings.Join(n.Checked, ", "))
	}
	notes = append(notes, n.Skipped...)
	if len(notes) > 0 {
		b.WriteString(" (" + strings.Join(notes, "; ") + ")")
	}
	return b.String()
}

// Required consults every source. A source that is not there (no
// needrestart) is noted in Skipped, not an error; one that fails (a flag
// file it cannot read, needrestart exiting non-zero) is an error, and the
// caller decides whether to go on without it.
func (c RebootCheck) Required(ctx context.Context) (Need, error) {
	var n Need
	if err := c.checkFlag(&n); err != nil {
		return Need{}, err
	}
	if err := c.checkNeedrestart(ctx, &n); err != nil {
		return Need{}, err
	}
	n.Required = len(n.Reasons) > 0
	return n, nil
}

func (c RebootCheck) path(name string) string { return Host{Root: c.Root}.path(name) }

// checkFlag reads Debian's reboot-required flag and the packages that
// set it.
func (c RebootCheck) checkFlag(n *Need) error {
	n.Checked = append(n.Checked, rebootRequired)
	if _, err := os.Stat(c.path(rebootRequired)); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("check for a required reboot: %w", err)
	}
	n.Reasons = append(n.Reasons, rebootRequired+" exists")
	b, err := os.ReadFile(c.path(rebootRequiredPkgs))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read the packages that require a reboot: %w", err)
	}
	// Each package's postinst appends its name, so a name may come more
	// than once (two kernel updates before a reboot).
	var pkgs []string
	seen := map[string]bool{}
	for _, p := range strings.Fields(string(b)) {
		if !seen[p] {
			seen[p] = true
			pkgs = append(pkgs, p)
		}
	}
	if len(pkgs) > 0 {
		n.Reasons = append(n.Reasons, "packages: "+strings.Join(pkgs, ", "))
	}
	return nil
}

// needrestartArgs: batch mode (machine-readable NEEDRESTART-* lines),
// kernel check only (not services, which need no reboot).
var needrestartArgs = []string{"-b", "-k"}

// checkNeedrestart runs needrestart, where installed, for its view of
// the kernel.
func (c RebootCheck) checkNeedrestart(ctx context.Context, n *Need) error {
	name := c.Needrestart
	if name == "" {
		name = "needrestart"
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		// Installed or not is all that matters here: a name not in PATH
		// and a path with nothing there are both "not installed".
		if strings.ContainsRune(name, filepath.Separator) {
			n.Skipped = append(n.Skipped, "needrestart not installed (no "+name+")")
		} else {
			n.Skipped = append(n.Skipped, "needrestart not installed")
		}
		return nil
	}
	run := c.Run
	if run == nil {
		run = runCommand
	}
	cmdline := bin + " " + strings.Join(needrestartArgs, " ")
	out, err := run(ctx, bin, needrestartArgs...)
	if err != nil {
		return fmt.Errorf("run %s: %w; its output: %q", cmdline, err, strings.TrimSpace(string(out)))
	}
	k, err := parseNeedrestart(out)
	if err != nil {
		return fmt.Errorf("read the output of %s: %w; its output: %q", cmdline, err, strings.TrimSpace(string(out)))
	}
	if reason, known := k.reason(); !known {
		n.Skipped = append(n.Skipped, reason)
	} else {
		n.Checked = append(n.Checked, "needrestart")
		if k.status == kernelABIUpgrade || k.status == kernelVersionUpgrade {
			n.Reasons = append(n.Reasons, reason)
		}
	}
	return nil
}

// runCommand runs name and returns its standard output. Its standard
// error goes into the error only: needrestart 3.6 prints Perl warnings
// there ("readline() on closed filehandle HENV") even when it works.
func runCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return stdout.Bytes(), fmt.Errorf("%w (stderr: %q)", err, msg)
		}
		return stdout.Bytes(), err
	}
	return stdout.Bytes(), nil
}
