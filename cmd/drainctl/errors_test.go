package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
)

// A role's refusal (the agent's 403 forbidden) exits 17, apart from the
// socket's own refusal (8): "join a group" and "the socket is closed to
// you" are different fixes.
func TestForbiddenIsItsOwnExit(t *testing.T) {
	forbidden := fmt.Errorf("pool set: %w", &apitype.Error{Code: apitype.CodeForbidden, Msg: "root's only"})
	if got := exitCode(forbidden); got != exitForbidden || exitForbidden == exitPermission {
		t.Errorf("forbidden: exit %d, want %d", got, exitForbidden)
	}
	if got := exitCode(fmt.Errorf("dial: %w", api.ErrPermission)); got != exitPermission {
		t.Errorf("the socket's refusal: exit %d, want %d", got, exitPermission)
	}
}

// The agent's settings refuse a pool login over http:// (exit 2, naming
// the setting that allows it), and take it with
// --pool-insecure-credentials or pool.insecure_credentials: true.
func TestAgentRefusesCredentialsInClear(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--restart-cmd", "true", "--pool-etcd", "http://10.0.0.5:2379", "--pool-id", "web1",
		"--pool-username", "web1", "--pool-password-file", pw}
	_, err := settingsOf(t, "", nil, args...)
	if err == nil || exitCode(err) != exitUsage || !strings.Contains(err.Error(), "cross the network in clear") ||
		!strings.Contains(err.Error(), "pool.insecure_credentials: true") {
		t.Fatalf("a password over http: %v (exit %d); want refused, exit %d", err, exitCode(err), exitUsage)
	}
	s, err := settingsOf(t, "", nil, append(args, "--pool-insecure-credentials")...)
	if err != nil || !s.Pool.InsecureCredentials || s.Pool.InsecureWarning() == "" {
		t.Fatalf("with --pool-insecure-credentials: %v; warning %q", err, s.Pool.InsecureWarning())
	}
	if _, err := settingsOf(t, "pool:\n  insecure_credentials: true\n", nil, args...); err != nil {
		t.Fatalf("with pool.insecure_credentials: true in the file: %v", err)
	}
}
