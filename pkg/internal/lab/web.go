package lab

// A web server's Apache and forward, driven from the tests without the
// agent: the naive procedure and what the tests read back.

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Forward runs `drainctl forward ARGS` in w's namespace (no agent).
func (w *Web) Forward(args ...string) error {
	_, err := w.ns.Exec(append([]string{w.binary, "forward"}, append(args, "--backend", w.backend)...)...)
	return err
}

// Graceful runs `apache2 -k graceful` in w's namespace.
func (w *Web) Graceful() error {
	_, err := w.ns.Exec("apache2", "-f", w.conf, "-k", "graceful")
	return err
}

// Generation is Apache's parent config generation (mod_status): it goes
// up by one with every (graceful) restart.
func (w *Web) Generation() (int, error) {
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

// ErrorLog is w's Apache error log.
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
