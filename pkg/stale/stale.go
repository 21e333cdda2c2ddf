// Package stale says whether a running service still runs the files on
// disk: which of the executable files its main process maps (its binary,
// the libraries and modules it loaded) were replaced or removed since it
// started. A package upgrade that replaced none of them needs only the
// server's graceful reload to load its new configuration and data; one
// that replaced the binary or a library needs a new process. It is what
// needrestart reads too (/proc/PID/maps), for one unit.
package stale

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// deleted is how the kernel marks a mapping whose file was unlinked
// (dpkg replaces a file by renaming the new one over it: the old inode
// lives on, unlinked, while mapped).
const deleted = " (deleted)"

// Unit returns the files replaced under unit's main process (systemd's
// MainPID), sorted; none when it runs what is on disk. A unit without a
// main process (not running) is an error: nothing can be said.
func Unit(ctx context.Context, unit string) ([]string, error) {
	pid, err := mainPID(ctx, unit)
	if err != nil {
		return nil, err
	}
	return Process("/proc", pid)
}

// mainPID asks systemd for unit's main process.
func mainPID(ctx context.Context, unit string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemctl", "show", "--property=MainPID", "--value", unit).Output()
	if err != nil {
		return 0, fmt.Errorf("the main process of %s: systemctl show: %w", unit, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("the main process of %s: none (is it running?)", unit)
	}
	return pid, nil
}

// Process returns the files replaced under process pid, read from
// procRoot (/proc): its executable first, then every other file it maps
// executable that the kernel marks deleted, sorted. Mappings that are not files (the heap,
// anonymous memory, memfd, System V shared memory, devices) are not
// replaced files.
func Process(procRoot string, pid int) ([]string, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	var found []string
	exe, err := os.Readlink(filepath.Join(dir, "exe"))
	if err != nil {
		return nil, fmt.Errorf("process %d's executable: %w", pid, err)
	}
	exe, exeGone := strings.CutSuffix(exe, deleted)
	f, err := os.Open(filepath.Join(dir, "maps"))
	if err != nil {
		return nil, fmt.Errorf("process %d's mappings: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		if p, ok := replaced(sc.Text()); ok && p != exe && !slices.Contains(found, p) {
			found = append(found, p)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("process %d's mappings: %w", pid, err)
	}
	slices.Sort(found)
	if exeGone {
		// What a reader looks for first: the binary.
		found = append([]string{exe}, found...)
	}
	return found, nil
}

// replaced reads one line of /proc/PID/maps ("ADDR PERMS OFFSET DEV
// INODE PATH"): the path of an executable mapping of a deleted file.
func replaced(line string) (string, bool) {
	fields := strings.Fields(line)
	if len(fields) < 6 || !strings.Contains(fields[1], "x") {
		return "", false
	}
	// The path is the rest of the line after the inode (it may hold
	// spaces, and the kernel's " (deleted)").
	rest := line
	for range 5 {
		rest = strings.TrimLeft(rest, " ")
		i := strings.IndexByte(rest, ' ')
		if i < 0 {
			return "", false
		}
		rest = rest[i:]
	}
	path, ok := strings.CutSuffix(strings.TrimLeft(rest, " "), deleted)
	if !ok || !strings.HasPrefix(path, "/") || notFile(path) {
		return "", false
	}
	return path, true
}

// notFile are the mappings the kernel names with a path that is not a
// package's file.
func notFile(path string) bool {
	for _, p := range []string{"/memfd:", "/dev/", "/SYSV", "/anon_hugepage", "/[aio]"} {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}
