package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/settings"
)

// README's exit-code table lists every code the CLI has, and no other.
func TestREADMEListsEveryExitCode(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(b), "### Exit codes")
	section, _, _ = strings.Cut(section, "\n## ")
	var got, want []int
	for _, m := range regexp.MustCompile(`(?m)^\| (\d+) \|`).FindAllStringSubmatch(section, -1) {
		n, _ := strconv.Atoi(m[1])
		got = append(got, n)
	}
	for _, e := range exitCodes {
		want = append(want, e.code)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("README's exit codes %v, the CLI's %v", got, want)
	}
}

// The committed man pages are what the code generates: a flag or command
// changed without `make man` fails here.
func TestManPagesMatchTheCode(t *testing.T) {
	pages, err := manPages()
	if err != nil {
		t.Fatal(err)
	}
	dir := "../../docs/man"
	files, err := filepath.Glob(filepath.Join(dir, "*.8"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no man pages in %s (%v): run make man", dir, err)
	}
	for _, f := range files {
		if _, ok := pages[filepath.Base(f)]; !ok {
			t.Errorf("%s: no such command any more; run make man", f)
		}
	}
	for name, want := range pages {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("docs/man/%s differs from the code (%v): run make man", name, err)
		}
	}
	for _, name := range []string{"drainctl.8", "drainctl-maintenance-enter.8", "drainctl-agent.8", "drainctl-restart.8"} {
		if !strings.Contains(pages[name], ".SH OPTIONS") && name != "drainctl.8" {
			t.Errorf("%s has no options:\n%s", name, pages[name])
		}
	}
	if !strings.Contains(pages["drainctl.8"], ".SH EXIT STATUS") {
		t.Error("drainctl.8 has no EXIT STATUS")
	}
}

// Each flag shows one default: a usage text that says its default and a
// Value urfave/cli shows as well made "(default: the agent's) (default:
// 0s)". Checked in every man page and every command's --help.
func TestOneDefaultPerFlag(t *testing.T) {
	pages, err := manPages()
	if err != nil {
		t.Fatal(err)
	}
	for name, page := range pages {
		for _, line := range strings.Split(page, "\n") {
			if strings.HasPrefix(line, `\fB-`) && strings.Count(line, "(default") > 1 {
				t.Errorf("%s: two defaults: %s", name, line)
			}
		}
	}
	var walk func(path []string, cmds []*cli.Command)
	walk = func(path []string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := append(append([]string{}, path...), c.Name)
			out, _, _ := runCLI(t, append(p, "--help")...)
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "-") && strings.Count(line, "(default") > 1 {
					t.Errorf("drainctl %s --help: two defaults: %s", strings.Join(p, " "), strings.TrimSpace(line))
				}
			}
			walk(p, c.Subcommands)
		}
	}
	walk(nil, newApp().Commands)
	if l := flagLine(pages["drainctl.8"], "log-level"); strings.Count(l, "(default") != 1 || !strings.Contains(l, "info for the agent") {
		t.Errorf("drainctl.8 --log-level: %s", l)
	}
}

// flagLine is the line of a man page that describes --name.
func flagLine(page, name string) string {
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, `\fB--`+name+`\fP`) || strings.HasPrefix(line, `\fB--`+name+`,`) {
			return line
		}
	}
	return ""
}

// config check takes the agent's settings flags, not agent's own --check;
// agent's page says repairs are event-driven, not timed.
func TestConfigCheckAndAgentPages(t *testing.T) {
	pages, err := manPages()
	if err != nil {
		t.Fatal(err)
	}
	if l := flagLine(pages["drainctl-config-check.8"], "check"); l != "" {
		t.Errorf("drainctl-config-check.8 lists %s", l)
	}
	if flagLine(pages["drainctl-config-check.8"], "health-checks-fall") == "" || flagLine(pages["drainctl-agent.8"], "check") == "" {
		t.Error("config check lacks --health-checks-fall, or agent lacks --check")
	}
	agent := pages["drainctl-agent.8"]
	if strings.Contains(agent, "within --reconcile-interval when") || !strings.Contains(agent, "as soon as something changes them") {
		t.Errorf("drainctl-agent.8 describes the repair as timed:\n%s", agent)
	}
	if l := flagLine(pages["drainctl-haproxy-config.8"], "backend"); l != "" {
		t.Errorf("drainctl-haproxy-config.8 lists the old name: %s", l)
	}
}

// Every setting of the table is a flag of `drainctl agent` and `config
// check`, in their man pages and their --help, under its name and its
// old ones.
func TestManAndHelpListEverySetting(t *testing.T) {
	pages, err := manPages()
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{{"agent"}, {"config", "check"}} {
		page := pages["drainctl-"+strings.Join(cmd, "-")+".8"]
		help, _, _ := runCLI(t, append(cmd, "--help")...)
		for _, st := range settings.All() {
			line := flagLine(page, st.Flag())
			doc, _, _ := strings.Cut(st.Doc, "`") // the page sets `WORD` in bold
			if line == "" || !strings.Contains(line, doc[:min(len(doc), 20)]) {
				t.Errorf("drainctl %s's man page: no --%s (%s)", strings.Join(cmd, " "), st.Flag(), st.Key)
			}
			if !strings.Contains(help, "--"+st.Flag()+" ") && !strings.Contains(help, "--"+st.Flag()+",") {
				t.Errorf("drainctl %s --help: no --%s", strings.Join(cmd, " "), st.Flag())
			}
			for _, old := range st.OldFlags {
				dashes := "--"
				if len(old) == 1 {
					dashes = "-"
				}
				if !strings.Contains(line, `\fB`+dashes+old) && !strings.Contains(line, ", "+dashes+old) {
					t.Errorf("drainctl %s's man page: --%s does not name its old flag %s%s: %s", strings.Join(cmd, " "), st.Flag(), dashes, old, line)
				}
			}
		}
	}
}
