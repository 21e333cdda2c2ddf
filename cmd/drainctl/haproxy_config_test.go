package main

import (
	"strings"
	"testing"
)

// --haproxy-backend names HAProxy's backend; --backend, its old name, goes
// on working for scripts, unlisted.
func TestHAProxyBackendFlag(t *testing.T) {
	const server = "--server=web1=10.0.0.11"
	def, _, code := runCLI(t, "haproxy-config", server)
	if code != exitOK || !strings.HasPrefix(def, "backend app\n") {
		t.Fatalf("default: exit %d:\n%s", code, def)
	}
	named, _, code := runCLI(t, "haproxy-config", server, "--haproxy-backend", "www")
	if code != exitOK || !strings.HasPrefix(named, "backend www\n") {
		t.Fatalf("--haproxy-backend www: exit %d:\n%s", code, named)
	}
	old, _, code := runCLI(t, "haproxy-config", server, "--backend", "www")
	if code != exitOK || old != named {
		t.Fatalf("--backend www: exit %d:\n%s\nwant what --haproxy-backend www prints:\n%s", code, old, named)
	}
	if both, _, code := runCLI(t, "haproxy-config", server, "--backend", "www", "--haproxy-backend", "www"); code != exitOK || both != named {
		t.Fatalf("both, the same: exit %d:\n%s", code, both)
	}
	if _, stderr, code := runCLI(t, "haproxy-config", server, "--backend", "www", "--haproxy-backend", "app"); code != exitUsage || !strings.Contains(stderr, "give one") {
		t.Fatalf("both, different: exit %d: %s", code, stderr)
	}
	help, _, _ := runCLI(t, "haproxy-config", "--help")
	if !strings.Contains(help, "--haproxy-backend NAME") || strings.Contains(help, "--backend") {
		t.Fatalf("help lists the old name or not the new one:\n%s", help)
	}
}
