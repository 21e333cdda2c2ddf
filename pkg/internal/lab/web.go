package lab

// A web server's Apache (or nginx, nginx.go) and forward, driven from
// the tests without the agent: the naive procedure and what the tests
// read back.

import (
	"bufio"
	_ "embed"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// WebServer is the web server the app servers run (Options.WebServer).
// Its values are the agent's --web-server presets (the agents say which
// they run, with the lab's own config test and reload commands).
type WebServer string

const (
	// Apache is Debian's apache2 (mpm_event), reloaded by `apache2 -k graceful`.
	Apache WebServer = "apache"
	// Nginx is Debian's nginx, reloaded by `nginx -s reload`.
	Nginx WebServer = "nginx"
)

// apacheConf is the lab's Apache config, shared with scripts/lib/lab.sh.
//
//go:embed apache2.conf
var apacheConf string

// startApache writes w's Apache config and starts it; it returns its pid.
func startApache(w *Web) (int, error) {
	run := filepath.Join(w.dir, "run")
	os.MkdirAll(run, 0o755)
	exec.Command("chown", "www-data:www-data", run).Run()
	w.conf = filepath.Join(w.dir, "apache2.conf")
	conf := strings.NewReplacer("@NAME@", w.Name, "@DIR@", w.dir).Replace(apacheConf)
	if err := os.WriteFile(w.conf, []byte(conf), 0o644); err != nil {
		return 0, err
	}
	if _, err := w.ns.Exec("apache2", "-f", w.conf, "-k", "start"); err != nil {
		return 0, err
	}
	pid, err := waitPidFile(w.pidFile())
	if err != nil {
		return 0, fmt.Errorf("apache in %s: %w: %s", w.ns.Name, err, w.ErrorLog())
	}
	return pid, nil
}

// pidFile is where w's web server writes its (master's) pid.
func (w *Web) pidFile() string {
	if w.server == Nginx {
		return filepath.Join(w.dir, "nginx.pid")
	}
	return filepath.Join(w.dir, "apache.pid")
}

// configTestCmd is the agent's --configtest-cmd for w's web server.
func (w *Web) configTestCmd() []string {
	if w.server == Nginx {
		return []string{"nginx", "-c", w.conf, "-t"}
	}
	return []string{"apache2", "-f", w.conf, "-t"}
}

// reloadCmd is the agent's --restart-cmd: a graceful reload of w's web
// server.
func (w *Web) reloadCmd() []string {
	if w.server == Nginx {
		return []string{"nginx", "-c", w.conf, "-s", "reload"}
	}
	return []string{"apache2", "-f", w.conf, "-k", "graceful"}
}

// Forward runs `drainctl forward ARGS` in w's namespace (no agent).
func (w *Web) Forward(args ...string) error {
	_, err := w.ns.Exec(append([]string{w.binary, "forward"}, append(args, "--backend", w.backend)...)...)
	return err
}

// ReloadCommand is the command Graceful (and the agent) reload w's web
// server with.
func (w *Web) ReloadCommand() string { return strings.Join(w.reloadCmd(), " ") }

// Graceful reloads w's web server gracefully in its namespace
// (`apache2 -k graceful`, `nginx -s reload`).
func (w *Web) Graceful() error {
	_, err := w.ns.Exec(w.reloadCmd()...)
	return err
}

// Generation is Apache's parent config generation (mod_status), or the
// reloads nginx's master has logged: it goes up by one with every
// graceful restart.
func (w *Web) Generation() (int, error) {
	if w.server == Nginx {
		return nginxGeneration(w)
	}
	// http.Transport dials on goroutines of its own: the dial itself must
	// run on a thread in the namespace.
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil,
		DialContext: w.ns.DialContext}}
	resp, err := c.Get("http://127.0.0.1/server-status?auto")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "ParentServerConfigGeneration: "); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("no ParentServerConfigGeneration in server-status of %s", w.Name)
}

// GenerationAfter waits up to 5 s for w's generation to pass gen and
// returns it. A graceful restart is a signal: the parent re-reads its
// configuration after `apache2 -k graceful` has returned, and the old
// generation's children keep answering (the readiness check among them)
// until it has, so a generation read at once can still be the old one.
func (w *Web) GenerationAfter(gen int) (int, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		g, err := w.Generation()
		if (err == nil && g > gen) || time.Now().After(deadline) {
			return g, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ErrorLog is w's web server's error log.
func (w *Web) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(w.dir, "error.log"))
	return string(b)
}

// NaiveCycle is what a reader of the original blog post does: delete the
// REDIRECT, wait 3 s, restart Apache gracefully, wait 3 s, add it back.
func NaiveCycle(w *Web) error {
	if err := w.Forward("remove"); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	if err := w.Graceful(); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	return w.Forward("apply")
}
