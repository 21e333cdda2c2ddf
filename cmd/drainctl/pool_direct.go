package main

// Pool administration straight on etcd, with the caller's own etcd
// credentials. Through the agent, `drainctl pool` acts with the host's
// credentials, and under etcd's RBAC (docs/rbac.md) a host may write
// its own keys only: pause, resume, set, release another host's slot
// and forget are refused to it, by design. The admin's credentials are
// the admin's: kept in a file of theirs (--admin-config) or given as
// flags or environment, never on every host, and never mixed with the
// host's (a host's password file is not read here).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/api"
	"github.com/drainctl/drainctl/pkg/api/apitype"
	"github.com/drainctl/drainctl/pkg/config"
	"github.com/drainctl/drainctl/pkg/maintenance"
	"github.com/drainctl/drainctl/pkg/pool"
	"github.com/drainctl/drainctl/pkg/settings"
)

// adminConfigFlag names the admin's own configuration file.
const adminConfigFlag = "admin-config"

// directUsage says what each of the pool's settings is to an admin
// reaching etcd directly; the flags are the agent's (same names, same
// parsers), with these words and an environment variable each.
var directUsage = map[string]string{
	settings.KeyPoolEtcd:          "reach etcd directly at these client `URL`s, as the admin, not through this host's agent (default: the config file's pool.etcd)",
	settings.KeyPoolName:          "the pool's `NAME` (default: the config file's pool.name, else default)",
	settings.KeyPoolUsername:      "the admin's etcd `USER` (a host's credentials may not administer a pool under etcd's RBAC)",
	settings.KeyPoolPasswordFile:  "`FILE` holding that user's password (mode 0600 or stricter)",
	settings.KeyPoolCAFile:        "`FILE`: the CA of etcd's certificate (default: the config file's pool.ca_file)",
	settings.KeyPoolCertFile:      "`FILE`: the admin's client certificate for etcd",
	settings.KeyPoolKeyFile:       "`FILE`: its key (mode 0600 or stricter)",
	settings.KeyPoolInsecureCreds: "allow these credentials with an http:// endpoint, which sends them in clear (labs only)",
}

// directKeys are the pool's settings an admin gives, in the table's order.
var directKeys = []string{settings.KeyPoolEtcd, settings.KeyPoolName, settings.KeyPoolCAFile,
	settings.KeyPoolCertFile, settings.KeyPoolKeyFile, settings.KeyPoolUsername, settings.KeyPoolPasswordFile, settings.KeyPoolInsecureCreds}

// directEnv is a setting's environment variable: DRAINCTL_POOL_ETCD for
// --pool-etcd.
func directEnv(st *settings.Setting) string {
	return "DRAINCTL_" + strings.ToUpper(strings.ReplaceAll(st.Flag(), "-", "_"))
}

// directSettings are the flags of the pool's admin commands that reach
// etcd directly: the agent's pool settings' flags, worded for the
// admin, with no default shown (the config file's is used, then none).
func directSettings() []setting {
	var sts []setting
	for _, key := range directKeys {
		st := settings.Lookup(key)
		s := flagOf(st)
		env := []string{directEnv(st)}
		switch f := s.flag.(type) {
		case *cli.StringFlag:
			f.Usage, f.EnvVars, f.Value, f.DefaultText = directUsage[key], env, "", ""
		case *cli.StringSliceFlag:
			f.Usage, f.EnvVars, f.DefaultText = directUsage[key], env, ""
		case *cli.BoolFlag:
			f.Usage, f.EnvVars = directUsage[key], env
		}
		sts = append(sts, s)
	}
	return sts
}

// poolDirectFlags are the flags to add to pool release, forget, pause,
// resume, set (and status): given any, the command reaches etcd itself
// with the admin's credentials instead of asking the agent.
func poolDirectFlags() []cli.Flag {
	return append([]cli.Flag{&cli.StringFlag{Name: adminConfigFlag, EnvVars: []string{"DRAINCTL_ADMIN_CONFIG"},
		Usage: "reach etcd directly, as the admin: a drainctl configuration `FILE` of the admin's whose pool: section " +
			"(etcd, name, username, password_file, ca_file, cert_file, key_file) says where and as whom"}},
		flagsOf(directSettings())...)
}

// directWanted says whether the command was given the admin's own way
// to etcd (a flag, its environment variable, or --admin-config).
func directWanted(c *cli.Context) bool {
	if c.String(adminConfigFlag) != "" {
		return true
	}
	for _, st := range directSettings() {
		if st.given(c) {
			return true
		}
	}
	return false
}

// directPoolSettings are the pool settings of a direct command: this
// host's config file for where etcd and the pool are (if it can be
// read: an admin's workstation may have none), without the host's
// credentials; then the admin's file; then the flags and environment.
func directPoolSettings(c *cli.Context) (settings.Pool, error) {
	s := settings.Defaults()
	if _, err := loadConfig(c, &s); err != nil && !errors.Is(err, os.ErrPermission) {
		return settings.Pool{}, usageError{fmt.Errorf("pool, directly on etcd: %w", err)}
	}
	s.Pool.Username, s.Pool.PasswordFile, s.Pool.CertFile, s.Pool.KeyFile = "", "", "", ""
	if f := c.String(adminConfigFlag); f != "" {
		if _, err := config.Load(f, &s); err != nil {
			return settings.Pool{}, usageError{fmt.Errorf("--%s: %w", adminConfigFlag, err)}
		}
	}
	if _, err := applySettings(c, &s, directSettings()); err != nil {
		return settings.Pool{}, usageError{err}
	}
	if !s.Pool.Enabled() {
		return settings.Pool{}, usagef("pool, directly on etcd: no etcd endpoint: give --pool-etcd URL (DRAINCTL_POOL_ETCD), or pool.etcd in --%s FILE", adminConfigFlag)
	}
	// The admin is no member: its id names none of the pool's keys, and
	// only says who in messages.
	s.Pool.ID = "admin"
	// The pool's checks (endpoints, both user and password file, a
	// password file others cannot read) are Validate's, which judges
	// every setting: judged here on the defaults, whose only gap is the
	// readiness URL that Resolve makes (asking systemd, which an admin's
	// command has no business doing), so that the host's other settings
	// cannot fail an admin's command.
	v := settings.Defaults()
	v.Ready.URL, v.Pool = "http://127.0.0.1/", s.Pool
	if err := v.Validate(); err != nil {
		return settings.Pool{}, usageError{fmt.Errorf("pool, directly on etcd: %w", err)}
	}
	return s.Pool, nil
}

// directPool opens the pool with the admin's credentials when the
// command was given them (nil: it was not; ask the agent), with the
// settings it was opened with. The caller closes it.
func directPool(c *cli.Context) (*pool.Pool, settings.Pool, error) {
	if !directWanted(c) {
		return nil, settings.Pool{}, nil
	}
	ps, err := directPoolSettings(c)
	if err != nil {
		return nil, ps, err
	}
	p, err := ps.Open()
	if err != nil {
		return nil, ps, fmt.Errorf("pool %s, directly on etcd: %w", ps.Name, err)
	}
	return p, ps, nil
}

// directWho names the admin in the pool's records (a pause, the
// settings): the person, the machine and the etcd user.
func directWho(etcdUser string) string {
	who := "?"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	if s := os.Getenv("SUDO_USER"); s != "" {
		who = s
	}
	if h, err := os.Hostname(); err == nil {
		who += " on " + h
	}
	if etcdUser != "" {
		who += " (etcd user " + etcdUser + ")"
	}
	return who
}

// directError is a direct command's failure with the code the agent
// would have answered for it, so that it exits as the agent's path does
// (exitCode finds the *apitype.Error), its chain kept for errors.Is.
type directError struct {
	err  error
	code apitype.Code
}

func (e directError) Error() string { return e.err.Error() }
func (e directError) Unwrap() error { return e.err }

// As gives exitCode the agent's error for it.
func (e directError) As(target any) bool {
	if t, ok := target.(**apitype.Error); ok {
		*t = &apitype.Error{Code: e.code, Msg: e.err.Error()}
		return true
	}
	return false
}

// directErr maps the pool's errors to the agent's codes: a live member
// is busy (5), etcd away or refusing is pool-unavailable (12), as the
// agent answers them; a newer layout is a bad request (2).
func directErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pool.ErrLiveMember):
		return directError{err, apitype.CodeBusy}
	case errors.Is(err, pool.ErrUnavailable):
		return directError{err, apitype.CodePoolUnavailable}
	case errors.Is(err, pool.ErrNewerLayout):
		return directError{err, apitype.CodeBadRequest}
	}
	return err
}

// directAdmin is pool administration on etcd with the admin's
// credentials. Nothing is written in a host's history (no agent is
// asked); the pool's own records say who paused and who set the limit.
type directAdmin struct {
	p   *pool.Pool
	who string
}

func (d directAdmin) release(ctx context.Context, id string, force bool) (string, error) {
	if id == "" || strings.Contains(id, "/") {
		return "", usagef("pool release: %q is not a host id (pool status lists them)", id)
	}
	c, err := d.p.ReleaseFor(ctx, id, force)
	if err != nil {
		return "", directErr(err)
	}
	return maintenance.ReleaseNote(id, c), nil
}

func (d directAdmin) forget(ctx context.Context, id string) (string, error) {
	if id == "" || strings.Contains(id, "/") {
		return "", usagef("pool forget: %q is not a host id (pool status lists them)", id)
	}
	f, err := d.p.Forget(ctx, id)
	if err != nil {
		return "", directErr(err)
	}
	_, told := maintenance.ForgetNote(f)
	return told, nil
}

func (d directAdmin) pause(ctx context.Context, reason string) (string, error) {
	if err := d.p.Pause(ctx, pool.Pause{By: d.who, Reason: reason}); err != nil {
		return "", directErr(err)
	}
	return "pool " + d.p.Name() + " paused: no slot is granted until pool resume", nil
}

func (d directAdmin) resume(ctx context.Context) (string, error) {
	if err := d.p.Resume(ctx); err != nil {
		return "", directErr(err)
	}
	return "pool " + d.p.Name() + " resumed: slots are granted again", nil
}

func (d directAdmin) set(ctx context.Context, limit string) (string, error) {
	l, err := pool.ParseLimit(limit)
	if err != nil {
		return "", usagef("pool set: %v", err)
	}
	prev, err := d.p.SetLimit(ctx, l, d.who)
	if err != nil {
		return "", directErr(err)
	}
	return "pool " + d.p.Name() + ": " + maintenance.SetNote(l, prev), nil
}

// status is the pool as the admin's credentials read it. It is no
// host's view: no id, no configured limit, no slot of its own.
func (d directAdmin) status(ctx context.Context) (apitype.PoolStatus, error) {
	ps, err := maintenance.ReadPool(ctx, d.p, nil)
	if err != nil {
		return apitype.PoolStatus{}, directErr(err)
	}
	ps.ID, ps.ConfiguredMaxUnavailable = "", ""
	return api.PoolStatusOf(ps), nil
}

// withDirectPool runs f on the pool with the admin's credentials when
// the command was given them, prints its note, and says whether it ran
// (false: ask the agent, as without them).
func withDirectPool(c *cli.Context, f func(context.Context, directAdmin) (string, error)) (bool, error) {
	p, ps, err := directPool(c)
	if err != nil || p == nil {
		return err != nil, err
	}
	defer p.Close()
	return true, printNote(f(c.Context, directAdmin{p: p, who: directWho(ps.Username)}))
}
