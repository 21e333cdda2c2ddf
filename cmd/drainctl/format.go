package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/conntable"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/freetext"
)

// How drainctl writes for people: durations, sizes, ports and forwards,
// drain progress, and text from others made safe for a terminal. For
// scripts, --json prints the API's own shapes (printJSON).

// printJSON prints v indented, for --json of commands that print one
// document.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// dur writes a duration as a person reads it at a glance: 250ms, 2.5s,
// 3m05s, 2h0m0s; Go's own (2.503417s) carries digits nobody wants.
func dur(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return d.Round(time.Minute).String()
}

// byteSize writes a byte count in decimal units, one decimal.
func byteSize(n uint64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000_000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000_000_000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1f GB", float64(n)/1e9)
}

// portList writes ports as :80,:443, as ss(8) shows them.
func portList(ports []uint16) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = fmt.Sprintf(":%d", p)
	}
	return strings.Join(s, ",")
}

// fwList writes forwards as the tables show them: 81→80,444→443.
func fwList(fs []forward.Forward) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = fmt.Sprintf("%d→%d", f.From, f.To)
	}
	return strings.Join(s, ",")
}

// fwSpecs writes forwards as flags take them: 81:80,444:443.
func fwSpecs(fs []forward.Forward) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = f.String()
	}
	return strings.Join(s, ",")
}

// progressPrinter shows drain events: one rewritten line on a terminal,
// JSON lines with --json, a line every few seconds otherwise (logs, cron
// mail: a redraw there is noise). It takes the API's events: the
// agent's, and wait-drained's converted (api.DrainEventOf), which prints
// them with --json as the API sends them.
func progressPrinter(asJSON bool) func(apitype.DrainEvent) {
	enc := json.NewEncoder(os.Stdout)
	fi, _ := os.Stdout.Stat()
	tty := fi != nil && fi.Mode()&os.ModeCharDevice != 0
	lastLog := -time.Hour
	return func(e apitype.DrainEvent) {
		if asJSON {
			_ = enc.Encode(e)
			return
		}
		line := fmt.Sprintf("draining %s: %d active (forward %d, direct %d), %d idle, %d new; quiet %s; deadline in %s",
			dur(e.Elapsed), e.Active, e.ByPath[string(conntable.PathForward)], e.ByPath[string(conntable.PathDirect)], e.Idle, e.New, dur(e.QuietFor), dur(e.DeadlineIn))
		if e.Oldest != nil {
			line += fmt.Sprintf("; oldest %s (%s, %s)", e.Oldest.Peer, e.Oldest.Path, dur(e.Oldest.Age))
		}
		switch {
		case tty:
			fmt.Printf("\r\033[K%s", line)
			if e.Outcome != "" {
				fmt.Println()
			}
		case e.Outcome != "" || e.Elapsed-lastLog >= 5*time.Second:
			fmt.Println(line)
			lastLog = e.Elapsed
		}
	}
}

// safeLine shows a string from a client or the agent (a reason, a name, a
// note) on one line with its control characters escaped: a reason must
// not clear the operator's screen, move the cursor, or fake a line of
// output. Bidi overrides and isolates (U+202A–U+202E, U+2066–U+2069) are
// escaped too (\u202e): they would show the text around them in another
// order than it is. Escaped rather than dropped, so that the operator
// sees something was there. safeText does the same but keeps newlines
// and tabs, for messages and command output made of several lines.
func safeLine(s string) string { return escapeControls(s, false) }

func safeText(s string) string { return escapeControls(s, true) }

func escapeControls(s string, keepLines bool) string {
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsControl(r) || freetext.IsBidi(r) || r == unicode.ReplacementChar }) < 0 {
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
		case unicode.IsControl(r) && r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r) || freetext.IsBidi(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
