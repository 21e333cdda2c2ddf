// Package fileowner checks who owns a file the agent trusts: its config
// file, which defines the commands it runs as root, and the key and
// password files of its pool. Such a file must be root's, or the agent's
// own user's (an agent run by another user runs its commands as that
// user, so that user's file gives nobody more than they have). The mode
// is the caller's to judge: a config file must not be writable by
// others, a secret not readable by them.
package fileowner

import (
	"fmt"
	"os"
	"syscall"
)

// Stat stats path and refuses it unless root or this process's
// effective user owns it; what names the file in the error (e.g.
// "pool.key_file").
func Stat(what, path string) (os.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fi, nil
	}
	if euid := os.Geteuid(); st.Uid != 0 && int(st.Uid) != euid {
		return fi, fmt.Errorf("%s %s: owned by uid %d, so that user can change what the agent trusts; it must be root's (or the agent's own user's, uid %d): chown root %s",
			what, path, st.Uid, euid, path)
	}
	return fi, nil
}
