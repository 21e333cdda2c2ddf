package config

import (
	"testing"

	"github.com/drainctl/drainctl/pkg/settings"
)

// FuzzParse: no document makes the config parser panic, and what it
// accepts has a valid set of forwards.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"forwards:\n  - 81:80\n", "backend: auto\nready:\n  status: [200, 301]\n", "drain:\n  deadline: 1m\n", "forwards: 5", "{", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := settings.Defaults()
		if _, err := Parse(b, &s); err != nil {
			return
		}
		for _, fw := range s.Forwards {
			if err := fw.Validate(); err != nil {
				t.Fatalf("accepted an invalid forward %v: %v", fw, err)
			}
		}
	})
}
