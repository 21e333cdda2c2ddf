package haproxy

import (
	"strings"
	"testing"
)

// FuzzCheck: no haproxy.cfg makes the parser or the checks panic.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{
		"backend app\n    cookie SRV insert indirect nocache\n    server web1 10.0.0.11:80 cookie web1 check port 81 inter 500ms fall 2 rise 2\n",
		"defaults\n  default-server inter 1s\nbackend b\n  server s 1.2.3.4:81 check backup\n",
		"backend\n server\n", "\x00\n\t#",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cfg string) {
		Check(strings.NewReader(cfg), expect)
	})
}
