package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/bootinfo"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/haproxy"
	"github.com/drainctl/drainctl/pkg/lbview"
	"github.com/drainctl/drainctl/pkg/maintenance"
	"github.com/drainctl/drainctl/pkg/runner"
	"github.com/drainctl/drainctl/pkg/settings"
	"github.com/drainctl/drainctl/pkg/state"
	"github.com/drainctl/drainctl/pkg/window"
)

// Options say what Gather reads.
type Options struct {
	// Settings are the agent's (the same file and flags).
	Settings settings.Settings
	// Listen is how long doctor captures the checks itself, on the
	// forward and service ports (0: not at all). It needs CAP_NET_RAW.
	Listen time.Duration
	// HAProxyConfig, if set, is a haproxy.cfg to check.
	HAProxyConfig string
	// Window is the maintenance window to report on (zero: none).
	Window window.Window
	// Root prefixes the files read (/etc/nftables.conf...); "" is "/".
	Root string
	Log  *slog.Logger
}

// captureMinChecks is how many SYNs make a source worth judging in
// doctor's own short capture: two, because a load balancer whose checks
// are dropped sends one (and its retransmit) per connect timeout only —
// HAProxy's 2 s timeout connect leaves three in 6 s, two in a short
// --listen.
const captureMinChecks = 2

// UnitName is the agent's systemd unit.
const UnitName = "drainctl.service"

// Gather reads the host. It changes nothing: the config test and the
// readiness check are run (they only read), nothing is withdrawn or
// restarted. Its error is for bad input only (an unreadable
// --haproxy-config); what it cannot read on the host is a fact.
func Gather(ctx context.Context, o Options) (Facts, error) {
	// Every command doctor runs is bounded: by this, and by their own
	// timeouts (the config test's, the readiness check's).
	ctx, cancel := context.WithTimeout(ctx, o.Listen+2*time.Minute)
	defer cancel()
	look := lookPath
	s := o.Settings
	f := Facts{Settings: s, AsRoot: os.Geteuid() == 0}
	local := localNames()
	if o.HAProxyConfig != "" {
		h, err := readHAProxy(o.HAProxyConfig, s, local)
		if err != nil {
			return f, err
		}
		f.HAProxy = h
	}
	// The capture runs while the rest is read.
	var watch *lbview.Watch
	start := time.Now()
	if o.Listen > 0 {
		var ports []uint16
		for _, fw := range s.Forwards {
			ports = append(ports, fw.From, fw.To)
		}
		var err error
		if watch, err = lbview.Start(ports, lbview.Settings{Fall: s.Checks.Fall, Rise: s.Checks.Rise, MinChecks: captureMinChecks, MaxSources: captureMaxSources}, o.Log); err != nil {
			f.Checks.CaptureErr = err
		}
	} else {
		f.Checks.CaptureErr, f.Checks.Skipped = errors.New("not captured (--listen 0)"), true
	}

	f.Agent = gatherAgent(ctx, s, look)
	recorded := ""
	if f.Agent.State != nil {
		recorded = f.Agent.State.Backend
	}
	f.Firewall = gatherFirewall(ctx, o, recorded, f.Agent.Systemd, look)
	if st := f.Agent.Status; st != nil && st.HealthChecks != nil {
		f.Checks.AgentWatching = true
		f.Checks.Agent = agentLBs(st.HealthChecks.LoadBalancers)
	}
	f.Web = gatherWeb(ctx, s, f.Agent.Systemd, look)
	f.Pool = gatherPool(ctx, s, f.agentUp())
	reboot := bootinfo.RebootCheck{Root: o.Root}
	if p, err := look("needrestart"); err == nil {
		reboot.Needrestart = p
	}
	f.Reboot.Need, f.Reboot.Err = reboot.Required(ctx)
	f.Reboot.Window = o.Window
	f.Restarts = gatherRestarts(ctx, o.Root, f.Agent.Systemd, f.Web.Unit, look)

	if watch != nil {
		select {
		case <-time.After(time.Until(start.Add(o.Listen))):
		case <-ctx.Done():
		}
		f.Checks.Seen = remote(watch.LoadBalancers(), local)
		for _, fw := range s.Forwards {
			f.Checks.Newcomers += watch.Newcomers(fw.From)
		}
		watch.Close()
		f.Checks.Listened = time.Since(start)
	}
	f.Now = time.Now()
	return f, nil
}

// agentPath is systemd's default PATH, the agent's. Doctor finds
// programs (lookPath) and runs the config test (configTest) on its own
// PATH and these after it: under su or sudo without /usr/sbin, apache2ctl
// would look missing, and its config test fail, where the agent finds
// it.
var agentPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// searchPath is doctor's PATH followed by agentPath's directories it
// lacks: the PATH lookPath searches, as a PATH variable.
func searchPath() string {
	dirs := filepath.SplitList(os.Getenv("PATH"))
	for _, d := range agentPath {
		if !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return strings.Join(dirs, string(os.PathListSeparator))
}

// configTest runs the config test with searchPath as its PATH, so that
// the program lookPath found is the one it runs. Only that run's
// environment is widened: doctor's own stays as the caller set it.
func configTest(ctx context.Context, c runner.Command) error {
	_, err := c.RunWith(ctx, append(os.Environ(), "PATH="+searchPath()))
	return err
}

// lookPath finds a program as the agent would: on doctor's PATH, else
// on agentPath.
func lookPath(file string) (string, error) {
	p, err := exec.LookPath(file)
	if err == nil || strings.Contains(file, "/") {
		return p, err
	}
	for _, dir := range agentPath {
		if p, err := exec.LookPath(filepath.Join(dir, file)); err == nil {
			return p, nil
		}
	}
	return "", err
}

// remote drops this host's own connections (the readiness check,
// local monitoring): only other hosts are load balancers.
func remote(lbs []lbview.LB, local map[string]bool) []lbview.LB {
	var out []lbview.LB
	for _, l := range lbs {
		if !l.Addr.IsLoopback() && !local[l.Addr.String()] {
			out = append(out, l)
		}
	}
	return out
}

func readHAProxy(file string, s settings.Settings, local map[string]bool) (*HAProxy, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	all, err := haproxy.Primaries(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	h := &HAProxy{File: file}
	// Each backend that lists this host is judged against the forward
	// its entry uses. A load balancer's file serves other apps too:
	// their backends are not this host's concern, unless none lists it.
	forwardOf := map[string]forward.Forward{}
	for _, e := range all {
		if local[e.Host] {
			h.Mine = append(h.Mine, e)
			forwardOf[e.Backend] = entryForward(s.Forwards, e)
		}
	}
	h.NotMine = len(h.Mine) == 0
	for i, fw := range s.Forwards {
		findings, err := haproxy.Check(bytes.NewReader(b), haproxy.Expect{ForwardPort: int(fw.From), ServicePort: int(fw.To), Fall: s.Checks.Fall, Rise: s.Checks.Rise})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		for _, x := range findings {
			mine, listed := forwardOf[x.Backend]
			switch {
			case h.NotMine && i == 0, listed && mine == fw:
				h.Findings = append(h.Findings, x)
			case !listed && i == 0:
				h.Others++
			}
		}
	}
	return h, nil
}

// entryForward is the forward a server entry uses: the one whose port
// it checks, else the one whose service port it sends to, else the
// first.
func entryForward(fs []forward.Forward, e haproxy.Entry) forward.Forward {
	for _, f := range fs {
		if int(f.From) == e.CheckPort {
			return f
		}
	}
	for _, f := range fs {
		if int(f.To) == e.Port {
			return f
		}
	}
	return fs[0]
}

// localNames are this host's addresses and name: how a haproxy.cfg
// names it.
func localNames() map[string]bool {
	names := map[string]bool{}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				names[n.IP.String()] = true
			}
		}
	}
	if h, err := os.Hostname(); err == nil {
		names[h] = true
	}
	return names
}

func gatherAgent(ctx context.Context, s settings.Settings, look forward.LookPath) Agent {
	a := Agent{Socket: s.Socket, StateFile: state.FilePath(s.StateDir)}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	st, err := (&api.Client{Socket: s.Socket}).Status(cctx)
	cancel()
	if err != nil {
		a.Err = err
	} else {
		a.Status = &st
	}
	if b, err := os.ReadFile(a.StateFile); err == nil {
		if parsed, err := state.Parse(b); err != nil {
			a.StateErr = err
		} else {
			a.State = &parsed
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		a.StateErr = err
	}
	a.Systemd = systemdRuns()
	if a.Systemd {
		a.Unit = showUnit(ctx, look, UnitName)
	}
	return a
}

// systemdRuns is sd_booted(): systemd is PID 1 here.
func systemdRuns() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// showUnit reads a unit's properties; nil if systemctl (found by look)
// cannot say.
func showUnit(ctx context.Context, look forward.LookPath, name string) *Unit {
	systemctl, err := look("systemctl")
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, systemctl, "show", name,
		"-p", "LoadState,ActiveState,UnitFileState,RestrictAddressFamilies,CapabilityBoundingSet,User,AmbientCapabilities,DropInPaths,Wants").Output()
	if err != nil {
		return nil
	}
	return parseUnit(name, string(out))
}

// parseUnit reads systemctl show's KEY=VALUE lines.
func parseUnit(name, text string) *Unit {
	u := &Unit{Name: name}
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch k {
		case "LoadState":
			u.LoadState = v
		case "ActiveState":
			u.ActiveState = v
		case "UnitFileState":
			u.UnitFileState = v
		case "RestrictAddressFamilies":
			u.Families = v
		case "CapabilityBoundingSet":
			u.Caps, u.CapsKnown = v, true
		case "User":
			u.User = v
		case "AmbientCapabilities":
			u.Ambient = v
		case "DropInPaths":
			u.DropIns = strings.Fields(v)
		case "Wants":
			u.Wants = strings.Fields(v)
		}
	}
	return u
}

// programs are the settings' commands, by the name a finding gives them.
func programs(s settings.Settings) map[string]string {
	return map[string]string{"configtest": s.ConfigTest.Line, "restart": s.Restart.Line, "reboot": s.Reboot.Command.Line}
}

// program is the program a command line runs (after VAR=value words);
// "" when it is not a plain command (a shell construct).
func program(line string) string {
	for _, w := range strings.Fields(line) {
		if strings.Contains(w, "=") && !strings.HasPrefix(w, "/") {
			continue
		}
		if strings.ContainsAny(w, "(){}|&;<>$`'\"") || shellBuiltins[w] {
			return ""
		}
		return w
	}
	return ""
}

// shellBuiltins are not programs: LookPath would not find them.
var shellBuiltins = map[string]bool{"cd": true, "exec": true, "command": true, ".": true, "source": true, "test": true, "[": true,
	"true": true, "false": true, "export": true, "set": true, "if": true, "for": true, "while": true, "eval": true}

func gatherWeb(ctx context.Context, s settings.Settings, systemd bool, look forward.LookPath) Web {
	w := Web{Preset: runner.Presets[s.WebServer], ConfigTest: s.ConfigTest, Restart: s.Restart.Line, RestartReason: s.RestartReason}
	if w.RestartReason == "" {
		w.RestartReason = "set in the configuration"
	}
	w.Missing = map[string]string{}
	for key, line := range programs(s) {
		if p := program(line); p != "" {
			if _, err := look(p); err != nil {
				w.Missing[key] = p
			}
		}
	}
	if w.Missing["configtest"] == "" {
		w.ConfigTestErr = configTest(ctx, s.ConfigTest)
	}
	rc := s.Ready
	rc.Timeout = min(rc.Timeout, 3*time.Second)
	w.ReadyURL, w.ReadyTimeout = rc.URL, rc.Timeout
	w.ReadyErr = rc.Wait(ctx)
	if systemd && w.Preset.Unit != "" {
		w.Unit = showUnit(ctx, look, w.Preset.Unit)
	}
	return w
}

func gatherPool(ctx context.Context, s settings.Settings, agentUp bool) Pool {
	p := Pool{Configured: s.Pool.Enabled()}
	if !p.Configured {
		return p
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// etcd's storage, from etcd itself (the agent does not serve it).
	pl, err := s.Pool.Open()
	if err != nil {
		p.Err = err
		return p
	}
	defer pl.Close()
	if st, err := pl.Storage(ctx); err != nil {
		p.StorageErr = err
	} else {
		p.Storage = &st
	}
	if agentUp {
		ps, err := (&api.Client{Socket: s.Socket}).PoolStatus(ctx)
		if err != nil {
			p.Err = err
		} else {
			p.Status = &ps
		}
		return p
	}
	// No agent: ask etcd itself, as the agent would, and judge its answer
	// as the agent would have sent it.
	ps, err := maintenance.ReadPool(ctx, pl, nil)
	if err != nil {
		p.Err = err
		return p
	}
	wire := api.PoolStatusOf(ps)
	p.Status = &wire
	return p
}

// agentLBs are the agent's load balancers as lbview's, merged with
// doctor's capture and described by lbview's rules (apitype.LB has
// lbview.LB's fields, for this conversion).
func agentLBs(lbs []apitype.LB) []lbview.LB {
	out := make([]lbview.LB, len(lbs))
	for i, l := range lbs {
		out[i] = lbview.LB(l)
	}
	return out
}
