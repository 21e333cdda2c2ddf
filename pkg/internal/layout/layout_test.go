package layout

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// maxFileLines is the longest a non-test .go file may be: past it a file
// holds more than one thing, and the next change should split it.
const maxFileLines = 500

// root is the repository's top, from this package's directory (go test
// runs a test in its package's directory).
const root = "../../.."

// TestFileLength fails naming every non-test .go file of the repository
// over maxFileLines lines. It walks the whole tree, not only the packages
// go list sees (testdata, build-tagged files too), skipping .git and vendor.
func TestFileLength(t *testing.T) {
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("not at the repository's top (%s): %v", root, err)
	}
	type file struct {
		path  string
		lines int
	}
	var files []file
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" || d.Name() == "vendor" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		files = append(files, file{rel, lines(b)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no .go file found")
	}
	sort.Slice(files, func(i, j int) bool { return files[i].lines > files[j].lines })
	for _, f := range files {
		if f.lines > maxFileLines {
			t.Errorf("%s: %d lines, over %d: split it", f.path, f.lines, maxFileLines)
		}
	}
	t.Logf("%d non-test .go files; the longest: %s, %d lines", len(files), files[0].path, files[0].lines)
}

// lines counts lines as wc -l does, plus a last line without a newline.
func lines(b []byte) int {
	n := bytes.Count(b, []byte("\n"))
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

func TestLines(t *testing.T) {
	for in, want := range map[string]int{"": 0, "a": 1, "a\n": 1, "a\nb": 2, "a\nb\n": 2, "\n\n": 2} {
		if got := lines([]byte(in)); got != want {
			t.Errorf("lines(%q) = %d, want %d", in, got, want)
		}
	}
}
