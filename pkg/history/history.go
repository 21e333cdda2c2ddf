// Package history keeps a record of every maintenance operation on this
// server: who, when, why, how it ended, how long each phase took, and
// the web server commands' exit statuses. It is a JSON-lines file in the
// agent's state directory, bounded to the last Max entries.
package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/atomicfile"
)

// Phase is one phase of an operation and how long it lasted.
type Phase struct {
	Phase      string    `json:"phase"`
	Start      time.Time `json:"start"`
	DurationMS int64     `json:"duration_ms"`
}

// Entry is one operation.
type Entry struct {
	Op     string    `json:"op"`
	Who    string    `json:"who"`
	Reason string    `json:"reason,omitempty"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	// DurationMS is End - Start in milliseconds.
	DurationMS int64 `json:"duration_ms"`
	// Outcome is "ok", or the failure's code (busy, drain-deadline,
	// configtest-failed, restart-failed, not-ready, internal).
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
	// Phase is where the operation left the server (in-service, held).
	Phase  string  `json:"phase"`
	Phases []Phase `json:"phases,omitempty"`
	// The web server commands' exit statuses, when they ran.
	ConfigTestExit *int `json:"configtest_exit,omitempty"`
	RestartExit    *int `json:"restart_exit,omitempty"`
	// Command is a `maintenance run`'s command: on its enter, and on its
	// exit with its exit status (-1: killed by a signal) and the end of its
	// output.
	Command       string `json:"command,omitempty"`
	CommandExit   *int   `json:"command_exit,omitempty"`
	CommandOutput string `json:"command_output,omitempty"`
	// OutOfRotation and BackInRotation say how many of the load
	// balancers checking the host confirmed the withdraw and the restore,
	// e.g. "2/2" ("0/0": none checks it); empty when not watched or not
	// done.
	OutOfRotation  string `json:"out_of_rotation,omitempty"`
	BackInRotation string `json:"back_in_rotation,omitempty"`
	// Warnings are the operation's (a change no load balancer confirmed).
	Warnings []string `json:"warnings,omitempty"`
	// OverBudget: the server went out without a pool slot (a web server's
	// stop that could not wait longer for one).
	OverBudget bool `json:"over_budget,omitempty"`
	// Action is what a restart owed to the package manager did to the
	// web server, and why: "reload: …", "upgrade: …" (nginx's binary
	// upgrade) or "restart: …".
	Action string `json:"action,omitempty"`
}

// Max is how many entries the file keeps.
const Max = 1000

// MaxLine bounds an entry's line in the file: a longer entry is cut to
// fit (fit), so that the file, and every read of it, stays bounded.
const MaxLine = 16 << 10

// readMax is the longest line a read takes: an entry written before
// MaxLine existed may be longer than it. A longer line (a file written
// by something else, or damaged) is skipped as a line that is not JSON
// is, instead of failing every read and append after it.
const readMax = 1 << 20

// Store is the history file. Its methods are safe for concurrent use.
type Store struct {
	path string
	max  int

	mu    sync.Mutex
	lines int // entries in the file, counted at Open
}

const fileName = "history.jsonl"

// Open opens (or will create) the history file in dir, keeping the last
// max entries. It counts the file's lines as it reads them, whatever
// the file's size.
func Open(dir string, max int) (*Store, error) {
	s := &Store{path: filepath.Join(dir, fileName), max: max}
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		s.lines += bytes.Count(buf[:n], []byte("\n"))
		if errors.Is(err, io.EOF) {
			return s, nil
		}
		if err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
	}
}

// Path is the file's path.
func (s *Store) Path() string { return s.path }

// Append adds an entry, cut to MaxLine if it is longer. The file is
// appended to (a log, not replaced) and synced, its directory too when
// the file is new; once it holds a tenth more than max entries it is
// rewritten with the last max (a new file, renamed over the old: a
// crash leaves one or the other).
func (s *Store) Append(e Entry) error {
	line, err := fit(e)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	// A write cut by a crash leaves a line without its newline: end it,
	// so that this entry is a line of its own.
	created := true
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		created = false
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			line = append([]byte{'\n'}, line...)
		}
	}
	_, werr := f.Write(append(line, '\n'))
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	// A file just created (or found empty) has a name the file's fsync
	// does not cover: the directory's does.
	if created {
		if err := atomicfile.SyncDir(filepath.Dir(s.path)); err != nil {
			return fmt.Errorf("history: %w", err)
		}
	}
	s.lines++
	if s.lines > s.max+s.max/10 {
		return s.compact()
	}
	return nil
}

func (s *Store) compact() error {
	all, err := s.read(s.max)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, l := range all {
		buf.Write(l)
		buf.WriteByte('\n')
	}
	if err := atomicfile.Write(s.path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	s.lines = len(all)
	return nil
}

// read returns the file's last n lines (all with n <= 0), oldest first,
// reading from the end: a request for the last ten reads about ten. A
// line that is not JSON (a write cut by a crash), or longer than
// readMax, is skipped.
func (s *Store) read(n int) ([][]byte, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	out, err := LastLines(f, fi.Size(), n, readMax)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	return out, nil
}

// List returns the last n entries (all with n <= 0), oldest first.
func (s *Store) List(n int) ([]Entry, error) {
	s.mu.Lock()
	lines, err := s.read(n)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(lines))
	for _, l := range lines {
		var e Entry
		if json.Unmarshal(l, &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}
