package bootinfo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeFiles makes files (path relative to root: content) under a new
// temporary root and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const bootIDPath = "proc/sys/kernel/random/boot_id"

func TestBootID(t *testing.T) {
	root := writeFiles(t, map[string]string{bootIDPath: "0ea8e52a-17e7-414e-9d72-4dcac1c1b229\n"})
	id, err := Host{Root: root}.BootID()
	if err != nil || id != "0ea8e52a-17e7-414e-9d72-4dcac1c1b229" {
		t.Errorf("BootID = %q, %v", id, err)
	}

	root = writeFiles(t, map[string]string{bootIDPath: " \n"})
	if _, err := (Host{Root: root}).BootID(); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty boot_id: error %v, want it to say empty", err)
	}

	root = t.TempDir()
	_, err = Host{Root: root}.BootID()
	if err == nil || !strings.Contains(err.Error(), filepath.Join(root, bootIDPath)) {
		t.Errorf("no boot_id: error %v, want it to name the file", err)
	}
}

// realStat is /proc/1/stat as read on the Debian 12 host the tests were
// written on (init named process_api).
const realStat = "1 (process_api) S 0 0 0 0 -1 4194560 47867 106106997 0 40605 494 3340 220213 108735 10 -10 13 0 25 41095168 2671 18446744073709551615 1 1 0 0 0 0 0 4096 1256 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"

func TestParseStartTime(t *testing.T) {
	tail := " S 0 0 0 0 -1 4194560 47867 106106997 0 40605 494 3340 220213 108735 10 -10 13 0 987654 41095168 2671\n"
	tests := []struct {
		name, stat string
		want       uint64
		err        string // "" for none
	}{
		{"real", realStat, 25, ""},
		{"name with a parenthesis and a space", "1 ((a) b)" + tail, 987654, ""},
		{"name like a stat line", "1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22)" + tail, 987654, ""},
		{"name empty", "1 ()" + tail, 987654, ""},
		{"no parenthesis", "1 init S 0 0", 0, "no ')'"},
		{"cut short", "1 (init) S 0 0 0", 0, "4 fields after the command name, want at least 20"},
		{"not a number", "1 (init) S 0 0 0 0 -1 4194560 47867 106106997 0 40605 494 3340 220213 108735 10 -10 13 0 -25 1", 0, `starttime (field 22) "-25"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStartTime([]byte(tt.stat))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseStartTime = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestParseBtime(t *testing.T) {
	tests := []struct {
		stat string
		want int64
		err  string
	}{
		{"cpu  1 2 3\nintr 5 6\nbtime 1796118820\nprocesses 9\n", 1796118820, ""},
		{"btime 1796118820", 1796118820, ""},
		{"cpu 1\nprocesses 9\n", 0, "no btime line"},
		{"xbtime 5\n", 0, "no btime line"},
		{"btime soon\n", 0, `btime "soon"`},
		{"btime 0\n", 0, `btime "0"`},
	}
	for _, tt := range tests {
		got, err := parseBtime([]byte(tt.stat))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseBtime(%q) error %v, want %q", tt.stat, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseBtime(%q) = %d, %v; want %d", tt.stat, got, err, tt.want)
		}
	}
}

func TestInitStartTempRoot(t *testing.T) {
	stat := "1 (sys (init)) S 0 0 0 0 -1 4194560 47867 106106997 0 40605 494 3340 220213 108735 10 -10 13 0 12345 41095168 2671\n"
	root := writeFiles(t, map[string]string{
		"proc/1/stat": stat,
		"proc/stat":   "cpu  1 2 3\nbtime 1700000000\n",
	})
	got, err := Host{Root: root}.InitStart()
	if err != nil {
		t.Fatal(err)
	}
	// 12345 ticks of 1/100 s after the boot.
	if want := time.Unix(1700000123, 450_000_000); !got.Equal(want) {
		t.Errorf("InitStart = %v, want %v", got, want)
	}

	// With /proc/uptime: 1000.50 s since the kernel booted, init 123.45 s
	// after it: init started 877.05 s ago, to the 10 ms of both.
	root = writeFiles(t, map[string]string{"proc/1/stat": stat, "proc/uptime": "1000.50 1990.00\n"})
	got, err = Host{Root: root}.InitStart()
	if want := time.Now().Add(-877050 * time.Millisecond); err != nil || got.Sub(want).Abs() > 50*time.Millisecond {
		t.Errorf("InitStart from uptime = %v, %v; want about %v", got, err, want)
	}

	root = writeFiles(t, map[string]string{"proc/1/stat": stat, "proc/stat": "cpu 1\n"})
	if _, err := (Host{Root: root}).InitStart(); err == nil || !strings.Contains(err.Error(), "no btime line") || !strings.Contains(err.Error(), "proc/stat") {
		t.Errorf("no btime: error %v, want it to name the file and the missing line", err)
	}
	root = writeFiles(t, map[string]string{"proc/1/stat": "garbage", "proc/stat": "btime 5\n"})
	if _, err := (Host{Root: root}).InitStart(); err == nil || !strings.Contains(err.Error(), "proc/1/stat") {
		t.Errorf("bad stat: error %v, want it to name the file", err)
	}
}

// Boot is the boot ID and PID 1's start together: a container's reboot
// seen by a sandboxed service changes the second only.
func TestBoot(t *testing.T) {
	stat := func(ticks string) string {
		return "1 (systemd) S 0 0 0 0 -1 4194560 1 2 0 0 1 1 1 1 20 0 1 0 " + ticks + " 1 1\n"
	}
	id := "0ea8e52a-17e7-414e-9d72-4dcac1c1b229\n"
	first := writeFiles(t, map[string]string{"proc/sys/kernel/random/boot_id": id, "proc/1/stat": stat("12345")})
	second := writeFiles(t, map[string]string{"proc/sys/kernel/random/boot_id": id, "proc/1/stat": stat("99999")})
	a, err := Host{Root: first}.Boot()
	if err != nil || a != "0ea8e52a-17e7-414e-9d72-4dcac1c1b229@12345" {
		t.Fatalf("Boot = %q, %v", a, err)
	}
	if b, err := (Host{Root: second}).Boot(); err != nil || b == a {
		t.Errorf("the same boot ID with another init start: %q, %v; want another boot", b, err)
	}
	if _, err := (Host{Root: writeFiles(t, map[string]string{"proc/sys/kernel/random/boot_id": id})}).Boot(); err == nil {
		t.Error("no /proc/1/stat: no error")
	}
	if b, err := Boot(); err != nil || !strings.Contains(b, "@") {
		t.Errorf("the real Boot: %q, %v", b, err)
	}
}

func TestRealProc(t *testing.T) {
	id, err := BootID()
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		t.Errorf("BootID = %q, want a UUID (36 characters with dashes)", id)
	}
	again, err := BootID()
	if err != nil || again != id {
		t.Errorf("BootID changed within a boot: %q then %q (%v)", id, again, err)
	}

	start, err := InitStart()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	btime, err := parseBtime(b)
	if err != nil {
		t.Fatal(err)
	}
	if start.Before(time.Unix(btime, 0)) || !start.Before(time.Now()) {
		t.Errorf("InitStart = %v, want between the boot (%v) and now", start, time.Unix(btime, 0))
	}
}
