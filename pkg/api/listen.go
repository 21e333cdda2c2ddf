package api

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// SocketMode is the socket's mode: everyone may connect, and the agent
// decides what each caller may do from the kernel's credentials (roles.go).
// A mode cannot: a socket file has one group, and the roles need two
// (docs/design.md, "Roles on the socket").
const SocketMode = 0o666

// afterBind runs between the bind and the socket's chown (tests replace
// the socket there, as an attacker racing the agent would).
var afterBind = func(string) {}

// Listen creates the unix socket at path: mode SocketMode, owned by root
// and group gid. A stale socket (no agent answers on it) is replaced; a
// live agent's is not, nor anything that is not a socket. The directory
// must be one others cannot change (root's, not writable by others
// unless sticky): the socket is then changed by path only after checking
// that it is the socket this call made, and never through a symlink.
func Listen(path string, gid int) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if err := safeDir(dir); err != nil {
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	// Created with no access, then opened up: no moment where others can
	// connect.
	old := syscall.Umask(0o777)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	afterBind(path)
	if err := ownSocket(path, gid); err != nil {
		// Not SetUnlinkOnClose: what is at the path may not be ours.
		ul.SetUnlinkOnClose(false)
		ul.Close()
		return nil, err
	}
	ul.SetUnlinkOnClose(true)
	return ul, nil
}

// safeDir refuses a socket directory that others may change: one of
// them could swap the socket for a symlink between its creation and its
// chown.
func safeDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok {
		return fmt.Errorf("socket directory %s is not a directory", dir)
	}
	if uid := os.Geteuid(); int(st.Uid) != uid && st.Uid != 0 {
		return fmt.Errorf("socket directory %s is owned by uid %d, not root: choose a directory of root's (e.g. /run/drainctl)", dir, st.Uid)
	}
	if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		return fmt.Errorf("socket directory %s is writable by others (mode %04o): chmod go-w %s, or choose another", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// removeStale removes a socket no agent answers on; it refuses a live
// agent's, and anything at the path that is not a socket (a file the
// path was mistyped onto, a symlink) is left alone.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket (%s): not removing it; remove it or choose another socket path", path, fi.Mode().Type())
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("another drainctl agent is already listening on %s", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	return nil
}

// ownSocket gives the socket at path its owner and mode, once it is sure
// the path is still the socket this process made: a socket (not a
// symlink), owned by this process' user, in a directory no one else may
// change (safeDir). Lchown never follows a symlink. (fchown on the
// listener's fd would not do: it changes the socket's own inode, not the
// file that connect checks.)
func ownSocket(path string, gid int) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Type() != fs.ModeSocket || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("socket %s was replaced after it was made (now %v): refusing to change its owner", path, fi.Mode().Type())
	}
	if err := os.Lchown(path, 0, gid); err != nil {
		return fmt.Errorf("socket group: %w", err)
	}
	// chmod has no form that refuses a symlink; the path was a socket
	// just now, in a directory no one else may change.
	if err := os.Chmod(path, SocketMode); err != nil {
		return fmt.Errorf("socket mode: %w", err)
	}
	return nil
}
