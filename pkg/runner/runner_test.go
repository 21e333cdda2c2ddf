package runner

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	out, err := Command{Line: "echo Syntax OK; echo warn >&2", Timeout: 5 * time.Second}.Run(context.Background())
	if err != nil || out.ExitCode != 0 || !strings.Contains(out.Output, "Syntax OK") || !strings.Contains(out.Output, "warn") {
		t.Fatalf("%+v, %v", out, err)
	}
	out, err = Command{Line: "echo 'AH00526: Syntax error on line 3'; exit 1", Timeout: 5 * time.Second}.Run(context.Background())
	if err == nil || out.ExitCode != 1 || !strings.Contains(err.Error(), "AH00526: Syntax error on line 3") {
		t.Fatalf("failing command: %+v, %v", out, err)
	}
	start := time.Now()
	_, err = Command{Line: "sleep 30 & sleep 30", Timeout: 200 * time.Millisecond}.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "timed out after 200ms") {
		t.Fatalf("timeout: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("a timed-out command was not killed with its children")
	}
	if _, err := (Command{Timeout: time.Second}).Run(context.Background()); err == nil {
		t.Fatal("empty command accepted")
	}
}

// RunWith's environment is the command's: a program on the PATH it
// gives runs, where Run (this process's PATH) does not find it.
func TestRunWithEnvironment(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "drainctl-test-configtest"), []byte("#!/bin/sh\necho Syntax OK \"$GREETING\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := Command{Line: "drainctl-test-configtest", Timeout: 5 * time.Second}
	ctx := context.Background()
	env := append(os.Environ(), "PATH="+os.Getenv("PATH")+string(os.PathListSeparator)+dir, "GREETING=hello")
	out, err := c.RunWith(ctx, env)
	if err != nil || out.ExitCode != 0 || !strings.Contains(out.Output, "Syntax OK hello") {
		t.Fatalf("with the temp dir on PATH: %+v, %v", out, err)
	}
	if out, err := c.Run(ctx); err == nil || out.ExitCode != 127 {
		t.Fatalf("found without the temp dir on PATH: %+v, %v", out, err)
	}
}

// Where systemd runs Apache the restart goes through systemd (the new
// children then belong to apache2.service, not to drainctl.service);
// elsewhere, apache2ctl.
func TestDetectRestart(t *testing.T) {
	dir := t.TempDir()
	runDir := filepath.Join(dir, "systemd-system")
	fake := func(loadState string) string {
		p := filepath.Join(dir, "systemctl-"+loadState)
		os.WriteFile(p, []byte("#!/bin/sh\n[ \"$*\" = \"show --property=LoadState --value apache2.service\" ] || exit 9\necho "+loadState+"\n"), 0o755)
		return p
	}
	ctx := context.Background()
	if cmd, why := detectRestart(ctx, runDir, fake("loaded")); cmd != ApachectlRestart || !strings.Contains(why, "not running") {
		t.Errorf("without systemd: %q (%s)", cmd, why)
	}
	os.Mkdir(runDir, 0o755)
	if cmd, why := detectRestart(ctx, runDir, fake("loaded")); cmd != SystemdRestart || !strings.Contains(why, "systemd runs apache2.service") {
		t.Errorf("systemd with apache2.service: %q (%s)", cmd, why)
	}
	if cmd, _ := detectRestart(ctx, runDir, fake("not-found")); cmd != ApachectlRestart {
		t.Errorf("systemd without apache2.service: %q", cmd)
	}
	if cmd, _ := detectRestart(ctx, runDir, filepath.Join(dir, "no-such-systemctl")); cmd != ApachectlRestart {
		t.Errorf("no systemctl: %q", cmd)
	}
}

// nginx's preset: systemd's reload of nginx.service where systemd runs
// it, else nginx -s reload; an unknown web server is refused by name.
func TestNginxReload(t *testing.T) {
	dir := t.TempDir()
	runDir := filepath.Join(dir, "systemd-system")
	os.Mkdir(runDir, 0o755)
	systemctl := filepath.Join(dir, "systemctl")
	os.WriteFile(systemctl, []byte("#!/bin/sh\n[ \"$*\" = \"show --property=LoadState --value nginx.service\" ] && echo loaded\n"), 0o755)
	ng := Presets[Nginx]
	if cmd, why := ng.reload(context.Background(), runDir, systemctl); cmd != "systemctl reload nginx.service" || !strings.Contains(why, "systemd runs nginx.service") {
		t.Errorf("systemd with nginx.service: %q (%s)", cmd, why)
	}
	if cmd, why := ng.reload(context.Background(), filepath.Join(dir, "none"), systemctl); cmd != "nginx -s reload" || !strings.Contains(why, "not running") {
		t.Errorf("without systemd: %q (%s)", cmd, why)
	}
	// Apache's unit is not nginx's: the same systemctl does not know it.
	if cmd, _ := Presets[Apache].reload(context.Background(), runDir, systemctl); cmd != ApachectlRestart {
		t.Errorf("apache where systemd knows only nginx: %q", cmd)
	}
	if _, err := ParseWebServer("lighttpd"); err == nil || !strings.Contains(err.Error(), "apache, nginx or custom") {
		t.Errorf("unknown web server: %v", err)
	}
}

// A command's output is kept as it comes, its end only: 64 MB of output
// costs the agent its 16 KiB, not 64 MB (it once buffered all of it
// before trimming: 100 MB of output, 351 MiB of RSS). The end is what
// the command printed last.
func TestOutputBounded(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	out, err := Command{Line: "head -c 67108864 /dev/zero | tr '\\0' x; printf '\\033[2J\\nthe end\\n'", Timeout: time.Minute}.Run(context.Background())
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("64 MB of output allocated %d MiB", grew>>20)
	}
	if !strings.HasPrefix(out.Output, "…xxx") || !strings.HasSuffix(out.Output, "x\x1b[2J\nthe end\n") || len(out.Output) > keep+len("…")+8 {
		t.Errorf("kept %d bytes: %.20q … %q", len(out.Output), out.Output, out.Output[max(0, len(out.Output)-30):])
	}
}

// The tail buffer keeps exactly the last bytes, whatever the writes'
// sizes.
func TestTailBuffer(t *testing.T) {
	var all strings.Builder
	b := &tailBuffer{max: 100}
	for i := range 500 {
		chunk := strings.Repeat(string(rune('a'+i%26)), i%150)
		all.WriteString(chunk)
		b.Write([]byte(chunk))
		if cap(b.b) > 4*b.max {
			t.Fatalf("buffer grew to %d", cap(b.b))
		}
	}
	s := all.String()
	if got := b.String(); got != "…"+s[len(s)-100:] {
		t.Errorf("kept %q, want the last 100 bytes %q", got, s[len(s)-100:])
	}
	small := &tailBuffer{max: 100}
	small.Write([]byte("short\n"))
	if small.String() != "short\n" {
		t.Errorf("short output: %q", small.String())
	}
}
