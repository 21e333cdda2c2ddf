package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/settings"
)

// clearDirectEnv keeps the host's DRAINCTL_POOL_* and admin config out
// of a test: set even to "", one counts as given.
func clearDirectEnv(t *testing.T) {
	t.Helper()
	vars := []string{"DRAINCTL_ADMIN_CONFIG", "DRAINCTL_CONFIG"}
	for _, st := range directSettings() {
		vars = append(vars, directEnv(st.st))
	}
	for _, v := range vars {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
}

// runDirect runs a command with the direct flags (and --config, as the
// pool's commands would read the host's file) and f as its action.
func runDirect(t *testing.T, f func(c *cli.Context) error, args ...string) error {
	t.Helper()
	app := &cli.App{
		Commands: []*cli.Command{{
			Name:   "x",
			Flags:  append([]cli.Flag{configFlag(), &cli.BoolFlag{Name: "force"}}, poolDirectFlags()...),
			Action: f,
		}},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	return app.Run(append([]string{"drainctl", "x"}, args...))
}

// write makes a file of the test with mode 0600 and returns its path.
func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Without any of the admin's flags, environment or file, the pool's
// commands ask the agent; with one, they go to etcd. The settings are
// the host's file's for where (etcd, the pool's name, the CA), never
// its credentials; then the admin's file; then the flags.
func TestDirectPoolSettings(t *testing.T) {
	clearDirectEnv(t)
	dir := t.TempDir()
	hostPw := write(t, dir, "host-pw", "host\n")
	host := write(t, dir, "host.yaml", "pool:\n  etcd: [http://192.0.2.1:2379]\n  name: web\n  insecure_credentials: true\n  username: web1\n  password_file: "+hostPw+"\n")
	adminPw := write(t, dir, "admin-pw", "admin\n")
	admin := write(t, dir, "admin.yaml", "pool:\n  username: alice\n  password_file: "+adminPw+"\n")
	get := func(args ...string) (settings.Pool, bool, error) {
		t.Helper()
		var ps settings.Pool
		var wanted bool
		var err error
		if rerr := runDirect(t, func(c *cli.Context) error {
			wanted = directWanted(c)
			if wanted {
				ps, err = directPoolSettings(c)
			}
			return nil
		}, args...); rerr != nil {
			t.Fatal(rerr)
		}
		return ps, wanted, err
	}
	if _, wanted, _ := get("--config", host); wanted {
		t.Error("no admin flag: direct all the same; want the agent asked")
	}
	ps, wanted, err := get("--config", host, "--pool-name", "api")
	if !wanted || err != nil {
		t.Fatalf("--pool-name: wanted %v, %v", wanted, err)
	}
	if ps.Username != "" || ps.PasswordFile != "" || ps.Name != "api" || strings.Join(ps.Etcd, ",") != "http://192.0.2.1:2379" {
		t.Errorf("got %+v; want the host's etcd, the flag's name, and not the host's credentials", ps)
	}
	ps, _, err = get("--config", host, "--admin-config", admin)
	if err != nil || ps.Username != "alice" || ps.PasswordFile != adminPw || ps.Name != "web" {
		t.Errorf("--admin-config: %+v, %v; want alice's credentials in pool web", ps, err)
	}
	t.Setenv("DRAINCTL_POOL_USERNAME", "bob")
	t.Setenv("DRAINCTL_POOL_PASSWORD_FILE", adminPw)
	ps, _, err = get("--config", host)
	if err != nil || ps.Username != "bob" {
		t.Errorf("DRAINCTL_POOL_USERNAME: %+v, %v; want bob's credentials", ps, err)
	}
	t.Setenv("DRAINCTL_POOL_PASSWORD_FILE", hostPw+".missing")
	if _, _, err := get("--config", host); err == nil || exitCode(err) != exitUsage {
		t.Errorf("a password file that is not there: %v (exit %d); want a usage error", err, exitCode(err))
	}
	clearDirectEnv(t)
	if _, _, err := get("--config", os.DevNull, "--pool-username", "alice", "--pool-password-file", adminPw); err == nil || !strings.Contains(err.Error(), "--pool-etcd") {
		t.Errorf("no etcd anywhere: %v; want told to give --pool-etcd", err)
	}
}

// On a real etcd with auth on: the admin's credentials, from the
// admin's file, pause, set, resume, release and forget; a host's, given
// as flags, are refused by etcd's RBAC and exit as pool-unavailable (12)
// with a message that says refused, as the agent's path would.
func TestDirectAdminOnRBAC(t *testing.T) {
	clearDirectEnv(t)
	endpoint := authEtcd(t, map[string][]pool.Grant{"web1": pool.HostGrants("web", "web1"), "web2": pool.HostGrants("web", "web2"), "alice": pool.AdminGrants("web")})
	dir := t.TempDir()
	admin := write(t, dir, "admin.yaml", "pool:\n  etcd: ["+endpoint+"]\n  name: web\n  insecure_credentials: true\n  username: alice\n  password_file: "+write(t, dir, "alice", "pw-alice\n")+"\n")
	asAdmin := []string{"--config", os.DevNull, "--admin-config", admin}
	asHost := []string{"--config", os.DevNull, "--pool-etcd", endpoint, "--pool-name", "web", "--pool-insecure-credentials", "--pool-username", "web1", "--pool-password-file", write(t, dir, "web1", "pw-web1\n")}

	// web2 holds a slot and is gone (its agent stopped): what an admin
	// mends, and web1 may not.
	web2, err := pool.Open(pool.Config{Endpoints: []string{endpoint}, Name: "web", ID: "web2", Username: "web2", Password: "pw-web2", RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer web2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	do := func(args []string, f func(context.Context, directAdmin) (string, error)) error {
		t.Helper()
		var err error
		if rerr := runDirect(t, func(c *cli.Context) error {
			var ran bool
			ran, err = withDirectPool(c, f)
			if !ran {
				t.Error("not run directly")
			}
			return nil
		}, args...); rerr != nil {
			t.Fatal(rerr)
		}
		return err
	}
	pause := func(ctx context.Context, d directAdmin) (string, error) { return d.pause(ctx, "bad patch") }
	set := func(ctx context.Context, d directAdmin) (string, error) { return d.set(ctx, "2") }
	resume := func(ctx context.Context, d directAdmin) (string, error) { return d.resume(ctx) }
	release := func(ctx context.Context, d directAdmin) (string, error) { return d.release(ctx, "web2", true) }
	forget := func(ctx context.Context, d directAdmin) (string, error) { return d.forget(ctx, "web2") }

	if err := do(asAdmin, set); err != nil {
		t.Fatalf("admin sets: %v", err)
	}
	if _, err := web2.Acquire(ctx, pool.Claim{Op: "reboot"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := web2.PublishHealth(ctx, pool.Health{InService: false, Why: "rebooting"}); err != nil {
		t.Fatal(err)
	}
	for _, op := range []struct {
		name string
		f    func(context.Context, directAdmin) (string, error)
	}{{"pause", pause}, {"set", set}, {"resume", resume}, {"release", release}, {"forget", forget}} {
		err := do(asHost, op.f)
		if !errors.Is(err, pool.ErrDenied) || exitCode(err) != exitPoolUnavailable || !strings.Contains(err.Error(), "refused by etcd's access control") {
			t.Errorf("%s with web1's credentials: %v (exit %d); want refused, exit %d", op.name, err, exitCode(err), exitPoolUnavailable)
		}
	}
	for _, op := range []struct {
		name string
		f    func(context.Context, directAdmin) (string, error)
	}{{"pause", pause}, {"set", set}, {"resume", resume}, {"release", release}, {"forget", forget}} {
		if err := do(asAdmin, op.f); err != nil {
			t.Errorf("%s with the admin's credentials: %v", op.name, err)
		}
	}
	st, err := web2.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Holders) != 0 || len(st.Members) != 0 || st.Paused != nil || st.Settings == nil || st.Settings.MaxUnavailable.String() != "2" || !strings.Contains(st.Settings.By, "(etcd user alice)") {
		t.Errorf("after the admin: %+v; want web2 freed and forgotten, not paused, limit 2 set by alice", st)
	}
	var status string
	if err := do(asAdmin, func(ctx context.Context, d directAdmin) (string, error) {
		ps, err := d.status(ctx)
		status = ps.Name + " " + ps.MaxUnavailable + " " + ps.ID
		return "", err
	}); err != nil || status != "web 2 " {
		t.Errorf("status as the admin: %q, %v; want pool web, limit 2, no host id", status, err)
	}
}

// authEtcd runs one etcd (Debian's etcd-server) for the test, with auth
// on: each user (password pw-USER) has a role of its own with grants.
// pkg/internal/etcdtest does this for the packages; cmd may not import
// it.
func authEtcd(t *testing.T, users map[string][]pool.Grant) string {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Fatal("etcd is needed (apt-get install etcd-server)")
	}
	port := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	client, peer := fmt.Sprintf("http://127.0.0.1:%d", port()), fmt.Sprintf("http://127.0.0.1:%d", port())
	dir := t.TempDir()
	cmd := exec.Command("etcd", "--name", "m0", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "m0="+peer,
		"--log-level", "warn", "--logger", "zap")
	log, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); log.Close() })
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("etcd: %v\n%s", err, b)
		}
	}
	users["root"] = nil
	for u, gs := range users {
		must(cli.UserAdd(ctx, u, "pw-"+u))
		if u == "root" {
			must(cli.UserGrantRole(ctx, u, "root"))
			continue
		}
		must(cli.RoleAdd(ctx, "role-"+u))
		for _, g := range gs {
			typ := clientv3.PermissionType(clientv3.PermRead)
			if g.Write {
				typ = clientv3.PermissionType(clientv3.PermReadWrite)
			}
			must(cli.RoleGrantPermission(ctx, "role-"+u, g.Key, g.RangeEnd(), typ))
		}
		must(cli.UserGrantRole(ctx, u, "role-"+u))
	}
	must(cli.AuthEnable(ctx))
	return client
}

// The direct flags say one default each (the config file's, in words),
// and each has its environment variable.
func TestDirectFlagsHelp(t *testing.T) {
	for _, f := range poolDirectFlags() {
		s := f.String()
		if strings.Count(s, "(default") > 1 || !strings.Contains(s, "$DRAINCTL_") {
			t.Errorf("--%s: %s", f.Names()[0], s)
		}
	}
}
