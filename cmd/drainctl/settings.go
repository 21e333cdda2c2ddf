package main

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/config"
	"github.com/drainctl/drainctl/pkg/drain"
	"github.com/drainctl/drainctl/pkg/forward"
	"github.com/drainctl/drainctl/pkg/metrics"
	"github.com/drainctl/drainctl/pkg/settings"
)

// The agent's settings are made in one way, here: settings.Defaults, the
// config file laid over them, then only the flags that were given. The
// flags are the settings' table's (settings.All): each shows its default
// from settings.Defaults and its old names as aliases, and parses its
// value with the setting's own parser, as the file does; the values are
// judged once, by settings.Settings' Validate, whose errors name the
// file's line when the file gave the setting.

// A setting is a flag that overrides one of the agent's settings.
type setting struct {
	st   *settings.Setting
	flag cli.Flag
	// global: the flag is also the app's own (--socket), given before the
	// command or after it.
	global bool
}

// given says whether the flag was set on the command line (under any of
// its names) or by its environment variable.
func (st setting) given(c *cli.Context) bool {
	name := st.flag.Names()[0]
	if !st.global {
		return c.IsSet(name)
	}
	for _, cc := range c.Lineage() {
		if cc.IsSet(name) {
			return true
		}
	}
	return false
}

// apply lays the flag's value over s, through the setting's parser.
func (st setting) apply(c *cli.Context, s *settings.Settings) error {
	name := st.flag.Names()[0]
	var err error
	switch st.st.Kind() {
	case settings.Duration:
		err = st.st.Set(s, c.Duration(name).String())
	case settings.Count:
		err = st.st.Set(s, strconv.Itoa(c.Int(name)))
	case settings.Bool:
		err = st.st.Set(s, strconv.FormatBool(c.Bool(name)))
	case settings.List:
		err = st.st.SetList(s, c.StringSlice(name))
	default:
		if st.global {
			return st.st.Set(s, socketPath(c))
		}
		err = st.st.Set(s, c.String(name))
	}
	if err != nil {
		return fmt.Errorf("--%s: %w", name, err)
	}
	return nil
}

// applySettings lays the given flags of sts over s and returns the keys
// they set.
func applySettings(c *cli.Context, s *settings.Settings, sts []setting) (map[string]bool, error) {
	given := map[string]bool{}
	for _, st := range sts {
		if !st.given(c) {
			continue
		}
		if err := st.apply(c, s); err != nil {
			return nil, err
		}
		given[st.st.Key] = true
	}
	return given, nil
}

// flagsOf are the settings' flags, for a command's Flags.
func flagsOf(sts []setting) []cli.Flag {
	fs := make([]cli.Flag, len(sts))
	for i, st := range sts {
		fs[i] = st.flag
	}
	return fs
}

// flagOf is a setting's flag: its name, old names, doc and default from
// its declaration, its type from its kind. A default that is a rule, not
// a value (socket-group, ready-url), is the flag's DefaultText.
func flagOf(st *settings.Setting) setting {
	name, aliases, usage, def := st.Flag(), st.OldFlags, st.Doc, st.Default()
	var env []string
	if st.Env != "" {
		env = []string{st.Env}
	}
	var f cli.Flag
	switch st.Kind() {
	case settings.Duration:
		d, _ := time.ParseDuration(def)
		f = &cli.DurationFlag{Name: name, Aliases: aliases, Usage: usage, EnvVars: env, Value: d, DefaultText: st.DefaultText}
	case settings.Count:
		n, _ := strconv.Atoi(def)
		f = &cli.IntFlag{Name: name, Aliases: aliases, Usage: usage, EnvVars: env, Value: n, DefaultText: st.DefaultText}
	case settings.Bool:
		b, _ := strconv.ParseBool(def)
		f = &cli.BoolFlag{Name: name, Aliases: aliases, Usage: usage, EnvVars: env, Value: b, DefaultText: st.DefaultText}
	case settings.List:
		sf := &cli.StringSliceFlag{Name: name, Aliases: aliases, Usage: usage, EnvVars: env, DefaultText: st.DefaultText}
		if def != "" && st.DefaultText == "" {
			sf.DefaultText = def
		}
		f = sf
	default:
		f = &cli.StringFlag{Name: name, Aliases: aliases, Usage: usage, EnvVars: env, Value: def, DefaultText: st.DefaultText}
	}
	return setting{st: st, flag: f}
}

// agentSettingFlags are the flags of `drainctl agent` and `config check`,
// one per setting, in the table's order. --socket is the app's own too.
func agentSettingFlags() []setting {
	sts := make([]setting, 0, len(settings.All()))
	for _, st := range settings.All() {
		s := flagOf(st)
		if st.Key == settings.KeySocket {
			s.flag, s.global = socketFlag(), true
		}
		sts = append(sts, s)
	}
	return sts
}

// policySettingFlags set the drain policy: the agent's, and wait-drained's
// own. --drain-grace is the agent's only: it acts once the load balancers
// confirmed the withdraw, which only the agent sees.
func policySettingFlags() []setting {
	var sts []setting
	for _, st := range settings.All() {
		if strings.HasPrefix(st.Key, "drain.") && st.Key != settings.KeyGrace {
			sts = append(sts, flagOf(st))
		}
	}
	return sts
}

// parseOnDeadlineFlag reads --on-deadline, wherever it is given: the
// agent's, an operation's, wait-drained's. The check itself is
// settings.ParseOnDeadline's, the file's too.
func parseOnDeadlineFlag(c *cli.Context) (o drain.OnDeadline, err error) {
	o, err = settings.ParseOnDeadline(c.String("on-deadline"))
	if err != nil {
		return o, fmt.Errorf("--on-deadline %w", err)
	}
	return o, nil
}

// loadConfig lays the configuration file over s: --config's (or
// DRAINCTL_CONFIG's), else the default one if it exists. Every command
// that reads the file reads it here.
func loadConfig(c *cli.Context, s *settings.Settings) (*config.Source, error) {
	if p := c.String("config"); p != "" {
		return config.Load(p, s)
	}
	return config.LoadDefault(s)
}

// agentSettings are the settings `drainctl agent` runs with and `config
// check` prints.
func agentSettings(c *cli.Context) (settings.Settings, error) {
	s := settings.Defaults()
	src, err := loadConfig(c, &s)
	if err == nil {
		err = config.CheckFile(src.Path) // it defines the commands run as root
	}
	if err != nil {
		return s, usageError{err}
	}
	given, err := applySettings(c, &s, agentSettingFlags())
	if err != nil {
		return s, usageError{err}
	}
	// For drainctl_build_info: which binary a host runs, fleet-wide.
	v, commit, _ := versionInfo()
	s.Build = metrics.Build{Version: v, Commit: commit, GoVersion: runtime.Version()}
	// After the flags: the readiness URL follows the forwards they gave.
	s.Resolve(c.Context)
	if err := s.Validate(); err != nil {
		return s, usageError{locate(err, src, given)}
	}
	return s, nil
}

// locate names the file's line of a setting Validate refused, unless a
// flag gave it after the file: the error then names the flag's value.
func locate(err error, src *config.Source, given map[string]bool) error {
	var se *settings.SettingError
	if errors.As(err, &se) && given[se.Key] {
		return err
	}
	return src.Locate(err)
}

// parseForwards reads the forward commands' --forward FROM:TO values;
// whether they go together (a port forwarded twice) is Validate's
// business.
func parseForwards(specs []string) ([]forward.Forward, error) {
	var fs []forward.Forward
	for _, spec := range specs {
		f, err := forward.Parse(spec)
		if err != nil {
			return nil, err
		}
		fs = append(fs, f)
	}
	return fs, nil
}
