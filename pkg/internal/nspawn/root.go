package nspawn

// The container root: a Debian 12 tree made by debootstrap once, kept as
// a tar in a cache directory that test binaries running at the same time
// share (the first to take the lock builds it, the others wait), unpacked
// once next to it (the base), and given to each container as an overlay
// on the base: its writes are its own, the base is never written.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CacheEnv names the directory that keeps the root's tar. scripts/test.sh
// sets it so that every test binary of a run shares one debootstrap; set
// it to a directory of your own to keep the root between runs. Unset, each
// test binary builds its own root in a directory Main removes at exit.
const CacheEnv = "DRAINCTL_NSPAWN_CACHE"

// MirrorEnv overrides the Debian mirror debootstrap downloads from;
// unset, it is the host's own (its apt sources), else deb.debian.org.
const MirrorEnv = "DRAINCTL_NSPAWN_MIRROR"

// Suite is the Debian release of the containers.
const Suite = "bookworm"

// Packages are what the root holds beyond debootstrap's minbase: systemd
// as PID 1 (and dbus for systemctl's bus), the web server drainctl
// restarts, the netfilter tools of every backend, iproute2 for the
// network, curl and procps for the tests' checks.
var Packages = []string{"systemd", "systemd-sysv", "dbus", "apache2", "iproute2", "nftables", "iptables", "curl", "procps"}

var (
	rootMu  sync.Mutex
	rootTar string // the tar this process uses, once known
	private string // the cache directory this process made (CacheEnv unset)
)

// Root returns the path of the root's tar, building it first when the
// cache has none (debootstrap: one to two minutes, bounded by ctx).
func Root(ctx context.Context) (string, error) {
	rootMu.Lock()
	defer rootMu.Unlock()
	if rootTar != "" {
		return rootTar, nil
	}
	dir, err := cacheDir()
	if err != nil {
		return "", err
	}
	tar := filepath.Join(dir, rootName())
	unlock, err := lockFile(ctx, filepath.Join(dir, "root.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(tar); err != nil {
		if err := build(ctx, dir, tar); err != nil {
			return "", err
		}
	}
	rootTar = tar
	return tar, nil
}

// RemoveCache removes the cache directory this process made for itself
// (none when CacheEnv is set: that one is its owner's). Main calls it; a
// TestMain of its own calls it after m.Run.
func RemoveCache() {
	rootMu.Lock()
	defer rootMu.Unlock()
	if private != "" {
		os.RemoveAll(private)
		private, rootTar = "", ""
	}
}

// rootName names the tar after what it holds, so that a kept cache is
// rebuilt when Suite or Packages change.
func rootName() string {
	sum := sha256.Sum256([]byte(Suite + " " + strings.Join(Packages, ",")))
	return "root-" + Suite + "-" + hex.EncodeToString(sum[:6]) + ".tar"
}

func cacheDir() (string, error) {
	if dir := os.Getenv(CacheEnv); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("nspawn cache %s: %w", dir, err)
		}
		return dir, nil
	}
	if private == "" {
		dir, err := os.MkdirTemp("", "drainctl-nspawn-cache-")
		if err != nil {
			return "", fmt.Errorf("nspawn cache: %w", err)
		}
		private = dir
	}
	return private, nil
}

// lockFile takes an exclusive flock on path, waiting until ctx ends; the
// kernel drops it if the process dies, so a killed build cannot wedge the
// next run.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s (another test binary builds the root): %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// build runs debootstrap into a scratch directory of the cache and tars
// the result to tar (renamed into place last: a tar that exists is whole).
func build(ctx context.Context, cache, tar string) error {
	work, err := os.MkdirTemp(cache, "build-")
	if err != nil {
		return fmt.Errorf("root build dir: %w", err)
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "root")
	mirror := Mirror()
	args := []string{"--variant=minbase", "--include=" + strings.Join(Packages, ","), Suite, root, mirror}
	if out, err := exec.CommandContext(ctx, "debootstrap", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("debootstrap %s from %s: %w\n%s", Suite, mirror, err, tail(out, 2000))
	}
	if err := trim(root); err != nil {
		return err
	}
	tmp := tar + ".tmp"
	if out, err := exec.CommandContext(ctx, "tar", "-C", root, "--numeric-owner", "-cf", tmp, ".").CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("tar the root: %w\n%s", err, out)
	}
	if err := os.Rename(tmp, tar); err != nil {
		return fmt.Errorf("root tar: %w", err)
	}
	return nil
}

// trim removes what a container must not have or does not need: the
// build host's name (without /etc/hostname the container is named after
// its machine name), and apt's downloaded packages and lists (a third of
// the tree; the tests install no package from the network).
func trim(root string) error {
	var paths []string
	for _, glob := range []string{"etc/hostname", "var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*"} {
		m, _ := filepath.Glob(filepath.Join(root, glob))
		paths = append(paths, m...)
	}
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("trim the root: %w", err)
		}
	}
	return nil
}

// Base returns the root unpacked in the cache directory (from Root's
// tar, once per cache: a file next to it says it is complete): the
// read-only lower layer of every container's overlay. Nothing writes to
// it; containers of other test binaries may be using it.
func Base(ctx context.Context) (string, error) {
	tar, err := Root(ctx)
	if err != nil {
		return "", err
	}
	base := strings.TrimSuffix(tar, ".tar")
	if _, err := os.Stat(base + ".complete"); err == nil {
		return base, nil
	}
	unlock, err := lockFile(ctx, filepath.Join(filepath.Dir(tar), "root.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(base + ".complete"); err == nil {
		return base, nil
	}
	// A partial unpack of a killed process: start over.
	if err := os.RemoveAll(base); err != nil {
		return "", fmt.Errorf("remove partial base %s: %w", base, err)
	}
	if err := os.Mkdir(base, 0o755); err != nil {
		return "", fmt.Errorf("base dir: %w", err)
	}
	if err := unpack(ctx, tar, base); err != nil {
		return "", err
	}
	if err := os.WriteFile(base+".complete", nil, 0o644); err != nil {
		return "", fmt.Errorf("base: %w", err)
	}
	return base, nil
}

// mountRoot makes dir/root a container's root: an overlay whose writes
// land in dir/upper, on the shared base. Mounting takes milliseconds
// where unpacking the tar took 1–3 s alone and 7–10 s when three
// containers started at once. The overlay is the host's mount: cleanup
// unmounts it (unmountRoot).
func mountRoot(ctx context.Context, base, dir string) error {
	for _, d := range []string{"upper", "work", "root"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("container dir: %w", err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s/upper,workdir=%s/work", base, dir, dir)
	out, err := exec.CommandContext(ctx, "mount", "-t", "overlay", "overlay", "-o", opts, filepath.Join(dir, "root")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mount the container's overlay root: %w\n%s", err, out)
	}
	return nil
}

// unmountRoot unmounts dir/root if it is mounted.
func unmountRoot(dir string) error {
	root := filepath.Join(dir, "root")
	err := syscall.Unmount(root, 0)
	if err == nil || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOENT) {
		return nil // EINVAL: not a mount point (any more)
	}
	return fmt.Errorf("unmount %s: %w", root, err)
}

// unpack extracts the root's tar into dir.
func unpack(ctx context.Context, tar, dir string) error {
	out, err := exec.CommandContext(ctx, "tar", "-C", dir, "--numeric-owner", "-xpf", tar).CombinedOutput()
	if err != nil {
		return fmt.Errorf("unpack %s into %s: %w\n%s", tar, dir, err, out)
	}
	return nil
}

// Mirror is the Debian mirror debootstrap uses: MirrorEnv, else the
// first URI of the host's apt sources that serves Suite (deb822 or
// one-line format), else deb.debian.org.
func Mirror() string {
	if m := os.Getenv(MirrorEnv); m != "" {
		return m
	}
	if m := mirrorOf("/etc/apt/sources.list.d/debian.sources"); m != "" {
		return m
	}
	if m := mirrorOf("/etc/apt/sources.list"); m != "" {
		return m
	}
	return "http://deb.debian.org/debian"
}

// mirrorOf reads an apt sources file: a deb822 stanza's URIs when its
// Suites name Suite itself (not -security nor -updates), or a one-line
// "deb URI Suite ..." entry.
func mirrorOf(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var uri string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) == 0:
			uri = "" // a new stanza
		case fields[0] == "URIs:" && len(fields) > 1:
			uri = fields[1]
		case fields[0] == "Suites:" && uri != "" && slices.Contains(fields[1:], Suite):
			return uri
		case fields[0] == "deb":
			rest := fields[1:]
			if len(rest) > 0 && strings.HasPrefix(rest[0], "[") {
				for len(rest) > 0 && !strings.HasSuffix(rest[0], "]") {
					rest = rest[1:]
				}
				if len(rest) > 0 {
					rest = rest[1:]
				}
			}
			if len(rest) > 1 && rest[1] == Suite {
				return rest[0]
			}
		}
	}
	return ""
}

// tail is the end of a command's output, for an error message.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
