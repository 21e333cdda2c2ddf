package integration

// docs/api.md's examples, run against a real agent.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// example is a curl command of docs/api.md and the answer shown after it.
type example struct {
	line   int
	cmd    string
	answer string
	lang   string // json or text
}

// docExamples reads the fenced blocks of a markdown file: each sh block
// holding a curl command, paired with the block that follows it.
func docExamples(t *testing.T, path string) []example {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the API reference: %v", err)
	}
	var out []example
	var cur *example
	var lang string
	var body []string
	start := 0
	for i, l := range strings.Split(string(b), "\n") {
		switch {
		case lang == "" && strings.HasPrefix(l, "```"):
			lang, body, start = strings.TrimPrefix(l, "```"), nil, i+1
		case lang != "" && l == "```":
			text := strings.Join(body, "\n")
			switch {
			case lang == "sh" && strings.Contains(text, "curl "):
				out = append(out, example{line: start, cmd: text})
				cur = &out[len(out)-1]
			case cur != nil && cur.answer == "" && (lang == "json" || lang == "text"):
				cur.answer, cur.lang = text, lang
				cur = nil
			}
			lang = ""
		case lang != "":
			body = append(body, l)
		}
	}
	for _, e := range out {
		if e.answer == "" {
			t.Fatalf("api.md:%d: a curl example without its answer", e.line)
		}
	}
	return out
}

// Every example of docs/api.md runs against a real agent, in the file's
// order, and answers with the shape the file shows: the same fields (no
// more, no fewer) and the same op, phase, code and outcome.
func TestAPIReferenceExamples(t *testing.T) {
	requireCurl(t)
	examples := docExamples(t, "../../../docs/api.md")
	if len(examples) < 9 {
		t.Fatalf("found %d examples in docs/api.md; the parser or the file broke", len(examples))
	}
	h := newHost(t)
	h.agent(t)
	// A load balancer checking every 200 ms, seen before the first
	// example: the answers show its confirmations.
	h.balancer(t, 200*time.Millisecond)
	time.Sleep(time.Second)
	for _, e := range examples {
		cmd := strings.ReplaceAll(e.cmd, "/run/drainctl/drainctl.sock", h.sock)
		var out []byte
		if strings.Contains(cmd, "/v1/events") {
			out = followEvents(t, h, cmd)
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			c := exec.CommandContext(ctx, "sh", "-c", cmd)
			var err error
			out, err = c.Output()
			cancel()
			if err != nil {
				t.Fatalf("api.md:%d: %s: %v\n%s", e.line, e.cmd, err, out)
			}
		}
		var err error
		if e.lang == "text" {
			err = sameMetrics(e.answer, string(out))
		} else {
			err = sameStream(e.answer, string(out))
		}
		if err != nil {
			t.Errorf("api.md:%d: %s\n%v\ngot:\n%s", e.line, e.cmd, err, out)
		}
	}
}

func requireCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed for the API reference's examples: apt-get install curl")
	}
}

// followEvents runs the events example while a restart happens, and
// returns what it printed until the restart ended.
func followEvents(t *testing.T, h *host, cmd string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, "sh", "-c", "exec "+cmd)
	var out strings.Builder
	c.Stdout = &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // connected and subscribed
	if _, stderr, code := h.ctl(t, "restart", "--reason", "config change"); code != 0 {
		t.Fatalf("restart: exit %d: %s", code, stderr)
	}
	time.Sleep(200 * time.Millisecond)
	c.Process.Kill()
	c.Wait()
	return []byte(out.String())
}

// values decodes a stream of JSON values (one object, an array, or JSON
// lines), keeping a trailing "HTTP NNN" line (curl -w) apart.
func values(s string) (vals []any, status string, err error) {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "\nHTTP "); i >= 0 {
		s, status = s[:i], strings.TrimSpace(s[i:])
	}
	dec := json.NewDecoder(strings.NewReader(s))
	for {
		var v any
		if err := dec.Decode(&v); err == io.EOF {
			return vals, status, nil
		} else if err != nil {
			return nil, "", err
		}
		vals = append(vals, v)
	}
}

// sameStream: the first and last values match the sample's first and last,
// and every other sample value matches some value of the answer.
func sameStream(sample, got string) error {
	want, wantStatus, err := values(sample)
	if err != nil {
		return fmt.Errorf("the sample is not JSON: %w", err)
	}
	have, haveStatus, err := values(got)
	if err != nil {
		return fmt.Errorf("the answer is not JSON: %w", err)
	}
	if wantStatus != haveStatus {
		return fmt.Errorf("status %q, the sample says %q", haveStatus, wantStatus)
	}
	if len(have) == 0 || len(want) == 0 {
		return fmt.Errorf("%d values, the sample %d", len(have), len(want))
	}
	if err := sameShape(want[0], have[0], "first value"); err != nil {
		return err
	}
	if err := sameShape(want[len(want)-1], have[len(have)-1], "last value"); err != nil {
		return err
	}
	for i := 1; i < len(want)-1; i++ {
		if !slices.ContainsFunc(have, func(v any) bool { return sameShape(want[i], v, "") == nil }) {
			b, _ := json.Marshal(want[i])
			return fmt.Errorf("no value of the answer is like the sample's %s", b)
		}
	}
	return nil
}

// sameShape compares a sample with an answer: objects have the same keys,
// arrays' first elements match, scalars are of the same kind, and the
// fields that say what happened have the same value.
func sameShape(want, got any, path string) error {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: an object in the sample, %T in the answer", path, got)
		}
		for k := range w {
			if _, ok := g[k]; !ok {
				return fmt.Errorf("%s: no %q in the answer", path, k)
			}
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				return fmt.Errorf("%s: %q in the answer, not in the sample", path, k)
			}
		}
		for k := range w {
			if err := sameShape(w[k], g[k], path+"."+k); err != nil {
				return err
			}
			switch k {
			case "op", "phase", "code", "outcome":
				if w[k] != g[k] {
					return fmt.Errorf("%s.%s: %v in the answer, %v in the sample", path, k, g[k], w[k])
				}
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Errorf("%s: an array in the sample, %T in the answer", path, got)
		}
		if len(w) > 0 && len(g) > 0 {
			return sameShape(w[0], g[0], path+"[0]")
		}
		if len(w) > 0 {
			return fmt.Errorf("%s: empty in the answer", path)
		}
	default:
		if fmt.Sprintf("%T", want) != fmt.Sprintf("%T", got) {
			return fmt.Errorf("%s: %T in the sample, %T in the answer", path, want, got)
		}
	}
	return nil
}

// sameMetrics: every series name of the sample is in the answer.
func sameMetrics(sample, got string) error {
	names := map[string]bool{}
	for _, l := range strings.Split(got, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			names[strings.FieldsFunc(l, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
		}
	}
	for _, l := range strings.Split(sample, "\n") {
		name := strings.FieldsFunc(l, func(r rune) bool { return r == '{' || r == ' ' })[0]
		if !names[name] {
			return fmt.Errorf("no %s in the answer", name)
		}
	}
	return nil
}
