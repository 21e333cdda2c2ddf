package main

import (
	"fmt"
	"strings"
	"unicode"
)

// safeLine shows a string from a client or the agent (a reason, a name, a
// note) on one line with its control characters escaped: a reason must
// not clear the operator's screen, move the cursor, or fake a line of
// output. safeText does the same but keeps newlines and tabs, for
// messages and command output made of several lines.
func safeLine(s string) string { return escapeControls(s, false) }

func safeText(s string) string { return escapeControls(s, true) }

func escapeControls(s string, keepLines bool) string {
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar }) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case keepLines && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
