package agent

import (
	"encoding/json"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/drainctl/drainctl/pkg/lbview"
)

// memoryFile keeps who checks this host, in the state directory.
const memoryFile = "loadbalancers.json"

// remember loads the load balancers the agent knew before into v (so
// that confirmations after a restart wait for them) and keeps the file
// up to date every 30 s and when stop is called. A kill -9 loses at most
// 30 s of last-check times, which matter only against the day after
// which one is forgotten.
func remember(v *lbview.View, dir string, log *slog.Logger) (stop func()) {
	path := filepath.Join(dir, memoryFile)
	lbs, err := lbview.Load(path)
	if err != nil {
		log.Warn("cannot read the load balancers known before; confirmations start from what is seen now", "err", err)
	}
	v.Remember(lbs, time.Now())
	if len(lbs) > 0 {
		log.Info("load balancers known before", "count", len(lbs))
	}
	var last []byte
	save := func() {
		now := v.LoadBalancers()
		b, _ := json.Marshal(now)
		if string(b) == string(last) {
			return
		}
		if err := lbview.Save(path, now); err != nil {
			log.Warn("cannot keep the load balancers", "err", err)
			return
		}
		last = b
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				save()
				return
			case <-t.C:
				save()
			}
		}
	}()
	return func() { close(done); <-finished }
}
