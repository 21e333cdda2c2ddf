package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/freetext"
)

// safeLine escapes bidi overrides and isolates as it does control
// characters: a reason cannot reorder what the operator reads.
func TestSafeLineEscapesBidi(t *testing.T) {
	for in, want := range map[string]string{
		"ok \u202egnp.exe":        `ok \u202egnp.exe`,
		"\u2066x\u2069 \u202a":    `\u2066x\u2069 \u202a`,
		"a\rb\x1b[2J\u0085":       `a\rb\x1b[2J\x85`,
		"plain, ünïcödé – fine ✓": "plain, ünïcödé – fine ✓",
	} {
		got := safeLine(in)
		if got != want {
			t.Errorf("safeLine(%q) = %q, want %q", in, got, want)
		}
		if strings.ContainsFunc(got, func(r rune) bool { return freetext.IsBidi(r) || r < ' ' }) {
			t.Errorf("safeLine(%q) = %q still holds a control or bidi character", in, got)
		}
	}
}

// A maintenance run's command line is recorded as one line the agent
// takes, whatever its words hold: a word with a control or bidi
// character is written in bash's $'...' form, and bash reads back the
// very words that ran.
func TestShellQuoteHostileWords(t *testing.T) {
	args := []string{"printf", "%s|", "two\nlines", "tab\there", "esc\x1b[2J", "it's", `back\slash`, "\u202eevil", "bad\xffbyte", "ünï", ""}
	line := shellQuote(args)
	if err := checkRequest(apitype.OpEnter, apitype.Request{Who: "x", Command: line}); err != nil {
		t.Fatalf("%s: refused: %v", line, err)
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is needed to read the line back")
	}
	out, err := exec.Command("bash", "-c", line).Output()
	if err != nil {
		t.Fatalf("bash -c %s: %v", line, err)
	}
	if want := strings.Join(args[2:], "|") + "|"; string(out) != want {
		t.Errorf("bash read %s back as %q, want %q", line, out, want)
	}
}
