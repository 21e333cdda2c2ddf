package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/nstest"
)

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

// Bash completion asks the binary and offers what fits; asking runs no
// command (here: forward apply, in a namespace whose ruleset must not
// change).
func TestBashCompletion(t *testing.T) {
	nstest.RequireCmd(t, "nft")
	script, _, code := drainctl(t, nil, "completion", "bash")
	if code != 0 || !strings.Contains(script, "complete -o bashdefault -o default -F _drainctl drainctl") {
		t.Fatalf("completion bash: exit %d\n%s", code, script)
	}
	bin := t.TempDir()
	if err := os.Symlink(binary, filepath.Join(bin, "drainctl")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "drainctl.bash"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	ns := nstest.New(t, "compl")
	before := ns.MustExec(t, "nft", "list", "ruleset")
	complete := func(words ...string) []string {
		t.Helper()
		line := "source " + filepath.Join(bin, "drainctl.bash") + "; COMP_WORDS=(" + strings.Join(quoteAll(words), " ") +
			"); COMP_CWORD=" + strconv.Itoa(len(words)-1) + "; _drainctl; printf '%s\\n' \"${COMPREPLY[@]}\""
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns.Name, "bash", "-c", line)
		cmd.Env = append(append([]string{}, testEnv...), "PATH="+bin+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", words, err, out)
		}
		return strings.Fields(string(out))
	}
	if got := complete("drainctl", "mai"); !slices.Equal(got, []string{"maintenance"}) {
		t.Errorf("drainctl mai<TAB>: %v", got)
	}
	if got := complete("drainctl", "maintenance", ""); !slices.Contains(got, "enter") || !slices.Contains(got, "exit") {
		t.Errorf("drainctl maintenance <TAB>: %v", got)
	}
	if got := complete("drainctl", "maintenance", "enter", "--tt"); !slices.Equal(got, []string{"--ttl"}) {
		t.Errorf("drainctl maintenance enter --tt<TAB>: %v", got)
	}
	complete("drainctl", "forward", "apply", "")
	if after := ns.MustExec(t, "nft", "list", "ruleset"); after != before {
		t.Fatalf("completing forward apply changed the ruleset:\n%s", after)
	}
}

func quoteAll(words []string) []string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + w + "'"
	}
	return q
}
