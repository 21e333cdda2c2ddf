package lab

// Hosted app servers (Options.Hosted): the lab makes their namespace,
// links and pool settings; the test runs the web server and the agent
// there itself, e.g. in a systemd-nspawn container that joins the
// namespace, so that a real systemd runs them and a reboot is real.

// NetNS is the path of w's network namespace, for nspawn's
// --network-namespace-path.
func (w *Web) NetNS() string { return "/run/netns/" + w.ns.Name }

// PoolFlags are the agent flags that put w in the lab's pool (none
// without Options.Pool).
func (w *Web) PoolFlags() []string { return append([]string(nil), w.poolFlags...) }
