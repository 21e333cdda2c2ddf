package lbview

import (
	"errors"
	"log/slog"
	"slices"
)

// Watch captures the health checks of some forward ports into a View.
type Watch struct {
	*View
	ports []uint16
	caps  []*Capture
	done  chan error
}

// Start captures the checks of ports (duplicates ignored) in the caller's
// network namespace until Close.
func Start(ports []uint16, s Settings, log *slog.Logger) (*Watch, error) {
	if log == nil {
		log = slog.Default()
	}
	w := &Watch{}
	for _, p := range ports {
		if slices.Contains(w.ports, p) {
			continue
		}
		c, err := Listen(p)
		if err != nil {
			w.closeCaptures()
			return nil, err
		}
		w.ports = append(w.ports, p)
		w.caps = append(w.caps, c)
	}
	s.Ports = w.ports
	w.View = New(s)
	w.done = make(chan error, len(w.caps))
	for i, c := range w.caps {
		port := w.ports[i]
		go func() {
			err := c.Run(func(p Packet) { w.Record(port, p) })
			if err != nil {
				log.Error("health check capture stopped", "port", port, "err", err)
			}
			w.done <- err
		}()
	}
	return w, nil
}

func (w *Watch) closeCaptures() error {
	var err error
	for _, c := range w.caps {
		err = errors.Join(err, c.Close())
	}
	return err
}

// Close stops the capture.
func (w *Watch) Close() error {
	err := w.closeCaptures()
	for range w.caps {
		err = errors.Join(err, <-w.done)
	}
	return err
}
