package main

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"
)

// Under systemd the journal stamps each line: drainctl's lines carry no
// time of their own. Elsewhere they do.
func TestLogTimeOnlyOutsideSystemd(t *testing.T) {
	for _, tc := range []struct {
		env      string
		wantTime bool
	}{
		{"", true},
		{"JOURNAL_STREAM", false},
		{"INVOCATION_ID", false},
	} {
		for _, v := range []string{"JOURNAL_STREAM", "INVOCATION_ID"} {
			t.Setenv(v, "")
			os.Unsetenv(v)
		}
		if tc.env != "" {
			t.Setenv(tc.env, "8:12345")
		}
		var b bytes.Buffer
		slog.New(logHandler(&b, slog.LevelInfo)).Info("agent ready", "socket", "/run/drainctl/drainctl.sock")
		line := b.String()
		if strings.Contains(line, "time=") != tc.wantTime || !strings.Contains(line, `msg="agent ready" socket=/run/drainctl/drainctl.sock`) {
			t.Errorf("%s set: %q (want time: %v)", tc.env, line, tc.wantTime)
		}
	}
}
