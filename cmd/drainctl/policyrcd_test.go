package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// policyRcd runs scripts/package/policy-rc.d with args, with stubs for
// drainctl (answering agentRC, noting its arguments), systemctl (guards
// running: guarded; the system's state: system) and update-alternatives
// (the other alternative, prev, if set: a script noting its arguments
// and exiting prevRC). It returns the exit code and what each stub saw.
type rcdCase struct {
	agentRC, prevRC int
	guarded, system string
	prev            bool
}

func policyRcd(t *testing.T, c rcdCase, args ...string) (code int, agent, prev string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("drainctl", `echo "$*" >> `+dir+`/agent.log; exit `+strconv.Itoa(c.agentRC)+"\n")
	write("systemctl", `case "$1" in
is-system-running) echo "`+c.system+`" ;;
is-active) [ "$3" = "drainctl-guard@`+c.guarded+`.service" ] ;;
esac
`)
	alts := "Name: policy-rc.d\nLink: /usr/sbin/policy-rc.d\nStatus: auto\nBest: /usr/lib/drainctl/policy-rc.d\nValue: /usr/lib/drainctl/policy-rc.d\n\nAlternative: /usr/lib/drainctl/policy-rc.d\nPriority: 100\n"
	if c.prev {
		p := write("prev", `echo "$*" >> `+dir+`/prev.log; exit `+strconv.Itoa(c.prevRC)+"\n")
		alts += "\nAlternative: " + p + "\nPriority: 50\n\nAlternative: /nonexistent/low\nPriority: 10\n"
	}
	write("update-alternatives", "cat <<'EOF'\n"+alts+"EOF\n")
	cmd := exec.Command("sh", append([]string{"../../scripts/package/policy-rc.d"}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"),
		"DRAINCTL_POLICY_BIN="+dir+"/drainctl", "DRAINCTL_POLICY_SYSTEMCTL="+dir+"/systemctl")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%v: %s", err, out)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
	p, _ := os.ReadFile(filepath.Join(dir, "prev.log"))
	return code, strings.TrimSpace(string(a)), strings.TrimSpace(string(p))
}

// drainctl's policy-rc.d asks the agent for the guarded units' restarts
// only, passes on its 101, and leaves everything else to the
// policy-rc.d that was there before (or allows it).
func TestPolicyRcd(t *testing.T) {
	if _, err := exec.LookPath("awk"); err != nil {
		t.Skip("no awk")
	}
	for _, tc := range []struct {
		name  string
		c     rcdCase
		args  []string
		code  int
		agent string
		prev  string
	}{
		{"deb-systemd-invoke, pool full", rcdCase{agentRC: 101}, []string{"apache2.service", "restart"}, 101, "hook policy apache2.service restart", ""},
		{"invoke-rc.d, quiet, runlevel, fallback", rcdCase{agentRC: 101}, []string{"--quiet", "nginx", "try-restart start", "2"}, 101, "hook policy nginx.service try-restart", ""},
		{"force-reload", rcdCase{agentRC: 101}, []string{"apache2", "force-reload"}, 101, "hook policy apache2.service force-reload", ""},
		{"nginx's binary upgrade", rcdCase{agentRC: 101}, []string{"nginx", "upgrade"}, 101, "hook policy nginx.service upgrade", ""},
		{"agent says go", rcdCase{agentRC: 0}, []string{"apache2.service", "restart"}, 0, "hook policy apache2.service restart", ""},
		{"agent fails", rcdCase{agentRC: 4}, []string{"apache2.service", "restart"}, 0, "hook policy apache2.service restart", ""},
		{"agent says go, previous decides", rcdCase{agentRC: 0, prev: true, prevRC: 101}, []string{"apache2.service", "restart"}, 101, "hook policy apache2.service restart", "apache2.service restart"},
		{"a unit with a running guard", rcdCase{agentRC: 101, guarded: "php8.2-fpm"}, []string{"php8.2-fpm.service", "restart"}, 101, "hook policy php8.2-fpm.service restart", ""},
		{"another unit", rcdCase{agentRC: 101}, []string{"mariadb.service", "restart"}, 0, "", ""},
		{"another unit, previous decides", rcdCase{agentRC: 101, prev: true, prevRC: 101}, []string{"mariadb.service", "restart"}, 101, "", "mariadb.service restart"},
		{"a start", rcdCase{agentRC: 101}, []string{"apache2.service", "start"}, 0, "", ""},
		{"a stop", rcdCase{agentRC: 101}, []string{"apache2.service", "stop"}, 0, "", ""},
		{"a reload", rcdCase{agentRC: 101}, []string{"apache2", "reload"}, 0, "", ""},
		{"invoke-rc.d's would-not-run", rcdCase{agentRC: 101}, []string{"apache2", "(restart)"}, 0, "", ""},
		{"a socket unit", rcdCase{agentRC: 101}, []string{"apache2.socket", "restart"}, 0, "", ""},
		{"shutting down", rcdCase{agentRC: 101, system: "stopping"}, []string{"apache2.service", "restart"}, 0, "", ""},
		{"--list", rcdCase{agentRC: 101, prev: true}, []string{"--list", "apache2"}, 0, "", "--list apache2"},
		{"no arguments", rcdCase{agentRC: 101}, nil, 0, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, agent, prev := policyRcd(t, tc.c, tc.args...)
			if code != tc.code || agent != tc.agent || prev != tc.prev {
				t.Errorf("policy-rc.d %q: exit %d, agent asked %q, previous %q; want %d, %q, %q", tc.args, code, agent, prev, tc.code, tc.agent, tc.prev)
			}
		})
	}
}
