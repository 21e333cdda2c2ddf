// Package atomicfile replaces a whole file so that a crash, at any point,
// leaves either the old file or the new one, and a returned nil means
// the new one survives a power cut: the agent's state, the history's
// compaction and the load balancers' memory are read back after a
// reboot, and a half-written or vanished file there would put a server
// back in rotation it should not be in, or forget who held it.
package atomicfile

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data, with the mode perm (exactly: the umask
// does not apply). See WriteFunc.
func Write(path string, data []byte, perm fs.FileMode) error {
	return WriteFunc(path, perm, func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(data))
		return err
	})
}

// WriteFunc replaces path with what fill writes: a temporary file in the
// same directory (a rename is atomic only within one file system) is
// filled, given the mode perm, fsynced, renamed over path, and the
// directory fsynced (else the rename itself may not survive a crash). If
// fill or any step fails, the temporary file is removed and path keeps
// its old content; an error from the directory's fsync comes after the
// rename, when path already has the new content.
func WriteFunc(path string, perm fs.FileMode, fill func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create a temporary file: %w", err)
	}
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("set the mode of %s: %w", path, err)
	}
	if err := fill(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	renamed = true
	return SyncDir(dir)
}

// SyncDir fsyncs the directory dir, so that the names created, renamed or
// removed in it survive a crash (an fsync of a file covers its content,
// not its name).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
