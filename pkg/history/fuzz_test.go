package history

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
)

// FuzzLastLines reads any file, in chunks of any size: it never panics,
// and it returns what the plain reading does (split at newlines, keep
// the JSON lines of at most max bytes, take the last n), in bounded
// memory (every line at most max bytes, at most n of them).
func FuzzLastLines(f *testing.F) {
	f.Add([]byte("{\"op\":\"enter\"}\n{\"op\":\"exit\"}\n"), 1, 64, 3)
	f.Add([]byte("{\"op\":\"cut"), 0, 64, 1)
	f.Add([]byte("\n\n{}\n[1,2]\nnot json\n{\"who\":\"a\nb\"}\n\"s\""), 0, 4, 2)
	f.Add([]byte(`{"who":"`+string(make([]byte, 100))+`"}`+"\n{}"), 2, 8, 7)
	f.Fuzz(func(t *testing.T, file []byte, n, max, chunk int) {
		n, max, chunk = n%10, 1+int(uint(max)%200), 1+int(uint(chunk)%64)
		got, err := lastLines(bytes.NewReader(file), int64(len(file)), n, max, chunk)
		if err != nil {
			t.Fatal(err)
		}
		var want [][]byte
		for _, l := range bytes.Split(file, []byte("\n")) {
			if len(l) > 0 && len(l) <= max && json.Valid(l) {
				want = append(want, l)
			}
		}
		if n > 0 && len(want) > n {
			want = want[len(want)-n:]
		}
		if !slices.EqualFunc(got, want, bytes.Equal) {
			t.Fatalf("n %d max %d chunk %d: got %q, want %q", n, max, chunk, got, want)
		}
	})
}
