package runner

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	out, err := Command{Line: "echo Syntax OK; echo warn >&2", Timeout: 5 * time.Second}.Run(context.Background())
	if err != nil || out.ExitCode != 0 || !strings.Contains(out.Output, "Syntax OK") || !strings.Contains(out.Output, "warn") {
		t.Fatalf("%+v, %v", out, err)
	}
	out, err = Command{Line: "echo 'AH00526: Syntax error on line 3'; exit 1", Timeout: 5 * time.Second}.Run(context.Background())
	if err == nil || out.ExitCode != 1 || !strings.Contains(err.Error(), "AH00526: Syntax error on line 3") {
		t.Fatalf("failing command: %+v, %v", out, err)
	}
	start := time.Now()
	_, err = Command{Line: "sleep 30 & sleep 30", Timeout: 200 * time.Millisecond}.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "timed out after 200ms") {
		t.Fatalf("timeout: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("a timed-out command was not killed with its children")
	}
	if _, err := (Command{Timeout: time.Second}).Run(context.Background()); err == nil {
		t.Fatal("empty command accepted")
	}
}
