package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at build time by the Makefile (-ldflags -X); a plain `go build`
// leaves them empty and the build's own VCS stamp is used instead.
var (
	version   = ""
	commit    = ""
	buildDate = ""
)

// versionText is what --version prints: version, commit, build date and
// Go version, each from the linker flags, else from the module's build
// information (go build stamps the VCS revision and time), else unknown.
func versionText() string {
	v, c, d := versionInfo()
	return fmt.Sprintf("drainctl %s\ncommit:  %s\nbuilt:   %s\ngo:      %s", v, c, d, runtime.Version())
}

// versionInfo is the version, commit and build date, from the linker
// flags, else the build information, else "devel" and "unknown".
func versionInfo() (v, c, d string) {
	v, c, d = version, commit, buildDate
	modified := false
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if c == "" {
					c = s.Value
				}
			case "vcs.time":
				if d == "" {
					d = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	// A build from a tree with uncommitted changes says so: its commit
	// alone would name code it does not run. The Makefile's commit
	// (-ldflags) is taken as it is.
	if c == "" {
		c = "unknown"
	} else if modified && commit == "" {
		c += " (modified)"
	}
	if d == "" {
		d = "unknown"
	}
	return v, c, d
}
