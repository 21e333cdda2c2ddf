package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The agent (and config check) refuse a config file others may change:
// it defines the commands run as root.
func TestAgentRefusesAWritableConfig(t *testing.T) {
	clearEnv(t)
	path := filepath.Join(t.TempDir(), "drainctl.yaml")
	if err := os.WriteFile(path, []byte("backend: nftables\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := settingsOf(t, "", nil, "--config", path, "--restart-cmd", "true"); err != nil {
		t.Fatalf("mode 0644: %v", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	_, err := settingsOf(t, "", nil, "--config", path, "--restart-cmd", "true")
	if err == nil || !strings.Contains(err.Error(), "chmod go-w "+path) {
		t.Fatalf("mode 0666: %v, want refused", err)
	}
}
