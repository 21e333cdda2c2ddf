package lab

// The lab's nginx (Options.WebServer nginx): Debian's nginx in an app
// server's namespace with its own config, pid file and logs, started
// `nginx -c CONF` (it daemonizes, the master's pid in its pid file) and
// reloaded by the agent with `nginx -c CONF -s reload`.

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// nginxConf is the lab's nginx config template.
//
//go:embed nginx.conf
var nginxConf string

// nginxConfig fills in the template for a server named name whose files
// are under dir, listening on port 80 of addrs.
func nginxConfig(name, dir string, addrs ...string) string {
	var listen []string
	for _, a := range addrs {
		listen = append(listen, fmt.Sprintf("        listen %s:80;", a))
	}
	return strings.NewReplacer("@NAME@", name, "@DIR@", dir, "@LISTEN@", strings.Join(listen, "\n")).Replace(nginxConf)
}

// startNginx writes w's nginx config and starts it; it returns the
// master's pid.
func startNginx(w *Web) (int, error) {
	if err := os.MkdirAll(filepath.Join(w.dir, "tmp"), 0o755); err != nil {
		return 0, err
	}
	w.conf = filepath.Join(w.dir, "nginx.conf")
	addrs := append(append([]string{w.Addr}, w.addrs...), "127.0.0.1")
	if err := os.WriteFile(w.conf, []byte(nginxConfig(w.Name, w.dir, addrs...)), 0o644); err != nil {
		return 0, err
	}
	if out, err := w.ns.Exec("nginx", "-c", w.conf); err != nil {
		return 0, fmt.Errorf("nginx in %s: %w: %s", w.ns.Name, err, out)
	}
	pid, err := waitPidFile(w.pidFile())
	if err != nil {
		return 0, fmt.Errorf("nginx in %s: %w: %s", w.ns.Name, err, w.ErrorLog())
	}
	return pid, nil
}

// nginxReloadLogged is what nginx's master logs (at notice) for each
// reload it is asked for.
const nginxReloadLogged = "signal 1 (SIGHUP) received"

// nginxGeneration is how many reloads w's nginx master has logged.
func nginxGeneration(w *Web) (int, error) {
	b, err := os.ReadFile(filepath.Join(w.dir, "error.log"))
	if err != nil {
		return 0, err
	}
	return strings.Count(string(b), nginxReloadLogged), nil
}
