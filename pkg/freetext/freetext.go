// Package freetext bounds and cleans the free text that reaches the agent
// from outside: a request's who and reason, a maintenance run's command
// and the output it printed. Such text ends up in the state file, the
// history, the journal and other users' terminals, so a character that
// moves a cursor, ends a line or reverses the text around it would let
// one caller forge what another reads (a "who" with a carriage return
// fakes another caller in the history; a bidi override shows a command
// other than the one that ran).
//
// Two rules, for two kinds of text. What a person wrote for the record
// (who, reason, a command line) is refused when it is too long or holds
// such a character (Check): its author is told and can say it plainly,
// and the record keeps exactly what was asked. What a command printed
// cannot be refused (the outcome would be lost with it): it is cleaned
// (Clean) and cut to its end (Tail).
package freetext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// IsBidi reports whether r is one of Unicode's explicit directional
// embeddings, overrides or isolates (U+202A–U+202E, U+2066–U+2069): they
// make a terminal show the text around them in another order than it is
// (CVE-2021-42574, "trojan source").
func IsBidi(r rune) bool {
	return r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069'
}

// unsafe is a character that has no place in a line of text for the
// record: a control character (C0, DEL, C1; newline and tab included),
// a bidi override, or the replacement of an invalid byte.
func unsafe(r rune) bool {
	return unicode.IsControl(r) || IsBidi(r) || r == utf8.RuneError
}

// Check refuses s when it is longer than maxLen bytes, is not valid UTF-8,
// or holds a control or bidi-override character; what names the field
// in the error (e.g. "reason").
func Check(what, s string, maxLen int) error {
	if len(s) > maxLen {
		return fmt.Errorf("%s: %d bytes, at most %d", what, len(s), maxLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s: not valid UTF-8", what)
	}
	if i := strings.IndexFunc(s, unsafe); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return fmt.Errorf("%s: holds the character %U at byte %d: control and bidi-override characters are refused (they could fake another line or reorder the text others read)", what, r, i)
	}
	return nil
}

// Clean makes what a command printed safe to keep and show: its lines
// stay lines (a carriage return ends one, as a terminal would show it),
// tabs stay, and every other control or bidi-override character, or
// invalid byte, becomes U+FFFD, so that nothing is hidden either.
func Clean(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r != '\n' && r != '\t' && unsafe(r) }) {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s { // an invalid byte comes as utf8.RuneError
		switch {
		case r == '\r':
			b.WriteByte('\n')
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case unsafe(r):
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Tail is the last maxLen bytes of s (all of s when it is shorter), cut at
// a character's start so that no rune is split.
func Tail(s string, maxLen int) string {
	if len(s) <= maxLen {
		return s
	}
	s = s[len(s)-maxLen:]
	for i := 0; i < len(s) && i < utf8.UTFMax; i++ {
		if utf8.RuneStart(s[i]) {
			return s[i:]
		}
	}
	return s
}
