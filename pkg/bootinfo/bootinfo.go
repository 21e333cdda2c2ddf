// Package bootinfo reads what the host says about its boot, for the
// reboot flow: an ID that changes with every boot, when this boot's init
// started, and whether a reboot is required (reboot.go).
package bootinfo

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Host reads boot facts from the files under Root; the zero Host reads
// the real ones under "/". Tests point Root at a directory of their own.
type Host struct{ Root string }

// BootID returns the kernel's random ID for this boot, which changes on
// every boot: the reboot flow compares it before and after to know the
// host did reboot.
func BootID() (string, error) { return Host{}.BootID() }

// InitStart returns when PID 1 of this PID namespace started: on a host,
// about when this boot started; in a container, when the container did.
func InitStart() (time.Time, error) { return Host{}.InitStart() }

// path is name (an absolute path) under h's root.
func (h Host) path(name string) string {
	if h.Root == "" {
		return name
	}
	return filepath.Join(h.Root, name)
}

// BootID reads /proc/sys/kernel/random/boot_id under h's root.
func (h Host) BootID() (string, error) {
	p := h.path("/proc/sys/kernel/random/boot_id")
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read boot ID: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("read boot ID: %s is empty", p)
	}
	return id, nil
}

// userHZ is the unit of the times in /proc/PID/stat: clock ticks of
// USER_HZ, which Linux fixes at 100 on every architecture for what it
// shows user space (sysconf(_SC_CLK_TCK); getconf CLK_TCK prints 100),
// whatever the kernel's own HZ is.
const userHZ = 100

// InitStart adds PID 1's start time (field 22 of /proc/1/stat, in clock
// ticks since the kernel booted) to the boot time (btime in /proc/stat,
// seconds since the epoch). btime is whole seconds, so the result is good
// to about a second.
func (h Host) InitStart() (time.Time, error) {
	statPath := h.path("/proc/1/stat")
	stat, err := os.ReadFile(statPath)
	if err != nil {
		return time.Time{}, fmt.Errorf("read init's start time: %w", err)
	}
	ticks, err := parseStartTime(stat)
	if err != nil {
		return time.Time{}, fmt.Errorf("read init's start time from %s: %w", statPath, err)
	}
	procStat := h.path("/proc/stat")
	b, err := os.ReadFile(procStat)
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: %w", err)
	}
	btime, err := parseBtime(b)
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time from %s: %w", procStat, err)
	}
	since := time.Duration(ticks) * (time.Second / userHZ)
	return time.Unix(btime, 0).Add(since), nil
}

// parseStartTime returns field 22 (starttime) of a /proc/PID/stat line.
// Field 2 is the command name in parentheses, which may itself hold
// spaces and parentheses ("(a) b)"), so the fields are counted from after
// the last ')'.
func parseStartTime(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no ')' closing the command name")
	}
	// After the name come fields 3 (state) onwards.
	fields := strings.Fields(string(stat[i+1:]))
	const starttime = 22 - 3
	if len(fields) <= starttime {
		return 0, fmt.Errorf("%d fields after the command name, want at least %d (starttime is field 22)", len(fields), starttime+1)
	}
	ticks, err := strconv.ParseUint(fields[starttime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("starttime (field 22) %q is not a number of clock ticks", fields[starttime])
	}
	return ticks, nil
}

// parseBtime returns the btime line's value from /proc/stat.
func parseBtime(stat []byte) (int64, error) {
	for line := range strings.Lines(string(stat)) {
		value, ok := strings.CutPrefix(line, "btime ")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		btime, err := strconv.ParseInt(value, 10, 64)
		if err != nil || btime <= 0 {
			return 0, fmt.Errorf("btime %q is not seconds since the epoch", value)
		}
		return btime, nil
	}
	return 0, errors.New("no btime line")
}
