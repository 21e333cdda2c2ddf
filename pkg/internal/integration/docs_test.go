package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drainctl/drainctl/pkg/internal/nstest"
)

// Bash completion asks the binary and offers what fits; asking runs no
// command (here: forward apply, in a namespace whose ruleset must not
// change).
func TestBashCompletion(t *testing.T) {
	nstest.RequireCmd(t, "nft")
	script, _, code := drainctl(t, nil, "completion", "bash")
	if code != 0 || !strings.Contains(script, "complete -o bashdefault -o default -F _drainctl drainctl") {
		t.Fatalf("completion bash: exit %d\n%s", code, script)
	}
	bin := t.TempDir()
	if err := os.Symlink(binary, filepath.Join(bin, "drainctl")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "drainctl.bash"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	ns := nstest.New(t, "compl")
	before := ns.MustExec(t, "nft", "list", "ruleset")
	complete := func(words ...string) []string {
		t.Helper()
		line := "source " + filepath.Join(bin, "drainctl.bash") + "; COMP_WORDS=(" + strings.Join(quoteAll(words), " ") +
			"); COMP_CWORD=" + strconv.Itoa(len(words)-1) + "; _drainctl; printf '%s\\n' \"${COMPREPLY[@]}\""
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns.Name, "bash", "-c", line)
		cmd.Env = append(append([]string{}, testEnv...), "PATH="+bin+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", words, err, out)
		}
		return strings.Fields(string(out))
	}
	if got := complete("drainctl", "mai"); !slices.Equal(got, []string{"maintenance"}) {
		t.Errorf("drainctl mai<TAB>: %v", got)
	}
	if got := complete("drainctl", "maintenance", ""); !slices.Contains(got, "enter") || !slices.Contains(got, "exit") {
		t.Errorf("drainctl maintenance <TAB>: %v", got)
	}
	if got := complete("drainctl", "maintenance", "enter", "--tt"); !slices.Equal(got, []string{"--ttl"}) {
		t.Errorf("drainctl maintenance enter --tt<TAB>: %v", got)
	}
	complete("drainctl", "forward", "apply", "")
	if after := ns.MustExec(t, "nft", "list", "ruleset"); after != before {
		t.Fatalf("completing forward apply changed the ruleset:\n%s", after)
	}
}

func quoteAll(words []string) []string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + w + "'"
	}
	return q
}
