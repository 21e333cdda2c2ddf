package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/agent"
	"github.com/drainctl/drainctl/pkg/config"
	"github.com/drainctl/drainctl/pkg/pool"
)

// poolSettingFlags put the agent in a pool (the config file's pool:).
// Without --pool-etcd there is no pool: the host decides alone.
func poolSettingFlags() []setting {
	return []setting{
		{key: agent.KeyPoolEtcd, flag: &cli.StringFlag{Name: "pool-etcd", DefaultText: "none: no pool, this host decides alone",
			Usage: "etcd's client `URL`s, comma-separated: take a slot of the pool before taking the server out"},
			apply: func(c *cli.Context, s *agent.Settings) error {
				s.Pool.Etcd = config.SplitList(c.String("pool-etcd"))
				return nil
			}},
		textSetting(agent.KeyPoolName, &cli.StringFlag{Name: "pool-name", Usage: "the pool's `NAME` (pools sharing one etcd never block each other)"},
			func(s *agent.Settings) *string { return &s.Pool.Name }),
		{key: agent.KeyPoolMax, flag: &cli.StringFlag{Name: "pool-max-unavailable", Value: agent.Defaults().Pool.MaxUnavailable.String(),
			Usage: "at most `N` servers of the pool out at once, or P% of its members (at least 1)"},
			apply: func(c *cli.Context, s *agent.Settings) (err error) {
				s.Pool.MaxUnavailable, err = pool.ParseLimit(c.String("pool-max-unavailable"))
				if err != nil {
					return usagef("--pool-%v", err)
				}
				return nil
			}},
		textSetting(agent.KeyPoolID, &cli.StringFlag{Name: "pool-id", DefaultText: "the host name", Usage: "this host's `ID` in the pool"},
			func(s *agent.Settings) *string { return &s.Pool.ID }),
		durationSetting(agent.KeyPoolWait, &cli.DurationFlag{Name: "pool-wait",
			Usage: "an operation waits at most `DURATION` for a slot unless it says (then: busy, exit 11)"},
			func(s *agent.Settings) *time.Duration { return &s.Pool.Wait }),
		textSetting(agent.KeyPoolCA, &cli.StringFlag{Name: "pool-ca", Usage: "`FILE`: the CA of etcd's certificate (https endpoints)"},
			func(s *agent.Settings) *string { return &s.Pool.CAFile }),
		textSetting(agent.KeyPoolCert, &cli.StringFlag{Name: "pool-cert", Usage: "`FILE`: this host's client certificate for etcd"},
			func(s *agent.Settings) *string { return &s.Pool.CertFile }),
		textSetting(agent.KeyPoolKey, &cli.StringFlag{Name: "pool-key", Usage: "`FILE`: its key (mode 0600 or stricter)"},
			func(s *agent.Settings) *string { return &s.Pool.KeyFile }),
		textSetting(agent.KeyPoolUser, &cli.StringFlag{Name: "pool-user", Usage: "etcd `USER`, when etcd's auth is on"},
			func(s *agent.Settings) *string { return &s.Pool.Username }),
		textSetting(agent.KeyPoolPassword, &cli.StringFlag{Name: "pool-password-file", Usage: "`FILE` holding that user's password (mode 0600 or stricter)"},
			func(s *agent.Settings) *string { return &s.Pool.PasswordFile }),
	}
}
