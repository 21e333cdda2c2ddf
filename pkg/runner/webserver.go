package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// WebServer is a preset: the web server's config test and graceful
// reload, as its Debian package installs it. The agent's configtest and
// restart commands are "auto" unless configured, and the preset fills
// them in; configured commands win.
type WebServer struct {
	Name       string
	ConfigTest string
	// Unit is its systemd unit: where systemd runs it, the reload goes
	// through systemd (SystemdReload), else it reloads itself (OwnReload).
	Unit          string
	OwnReload     string
	SystemdReload string
}

// The presets, and custom: no preset, both commands must be configured.
const (
	Apache = "apache"
	Nginx  = "nginx"
	Custom = "custom"
)

// Presets are the web servers drainctl knows.
var Presets = map[string]WebServer{
	Apache: {Name: Apache, ConfigTest: DefaultConfigTest, Unit: "apache2.service", OwnReload: ApachectlRestart, SystemdReload: SystemdRestart},
	// nginx -s reload signals the master, which starts new workers and
	// lets the old ones finish their requests (docs/design.md measures
	// it).
	Nginx: {Name: Nginx, ConfigTest: "nginx -t", Unit: "nginx.service", OwnReload: "nginx -s reload", SystemdReload: "systemctl reload nginx.service"},
}

// AutoConfigTest asks the web server preset for the config test.
const AutoConfigTest = "auto"

// ParseWebServer checks a web_server setting: a preset's name or custom.
func ParseWebServer(s string) (string, error) {
	if _, ok := Presets[s]; ok || s == Custom {
		return s, nil
	}
	names := []string{}
	for n := range Presets {
		names = append(names, n)
	}
	slices.Sort(names)
	return "", fmt.Errorf("web server %q: want %s or %s", s, strings.Join(names, ", "), Custom)
}

// Reload chooses w's graceful reload and says why: through systemd where
// systemd runs w's unit (a reload started by the agent itself could leave
// the web server's new processes in drainctl.service's cgroup, killed by
// the next `systemctl stop drainctl`), else w's own.
func (w WebServer) Reload(ctx context.Context) (cmd, reason string) {
	return w.reload(ctx, "/run/systemd/system", "systemctl")
}

func (w WebServer) reload(ctx context.Context, runDir, systemctl string) (cmd, reason string) {
	if fi, err := os.Stat(runDir); err != nil || !fi.IsDir() {
		return w.OwnReload, fmt.Sprintf("systemd is not running: %s's own graceful reload", w.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, systemctl, "show", "--property=LoadState", "--value", w.Unit).Output()
	if err != nil || strings.TrimSpace(string(out)) != "loaded" {
		return w.OwnReload, fmt.Sprintf("systemd does not know %s: %s's own graceful reload", w.Unit, w.Name)
	}
	return w.SystemdReload, fmt.Sprintf("systemd runs %s: reload it through systemd", w.Unit)
}
