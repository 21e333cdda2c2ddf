package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/drainctl/drainctl/pkg/history"
)

// historyEngine answers History only, and records what it was asked.
type historyEngine struct {
	Engine
	asked []int
}

func (h *historyEngine) History(n int) ([]history.Entry, error) {
	h.asked = append(h.asked, n)
	return nil, nil
}

// GET /v1/history is bounded: all (n=0, or no n) and more than the file
// keeps are the last history.Max, never the whole file whatever it holds.
func TestHistoryBounded(t *testing.T) {
	h := &historyEngine{}
	s := &Server{e: h}
	for _, q := range []string{"", "?n=0", "?n=5", "?n=1000000"} {
		w := httptest.NewRecorder()
		s.history(w, httptest.NewRequest(http.MethodGet, PathHistory+q, nil))
		if w.Code != http.StatusOK || w.Body.String() != "[]\n" {
			t.Errorf("%s: %d %s", q, w.Code, w.Body)
		}
	}
	want := []int{history.Max, history.Max, 5, history.Max}
	for i, n := range h.asked {
		if i >= len(want) || n != want[i] {
			t.Fatalf("the engine was asked for %v, want %v", h.asked, want)
		}
	}
}
