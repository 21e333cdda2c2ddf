package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
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
