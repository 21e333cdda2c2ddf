package agent

import "github.com/drainctl/drainctl/pkg/settings"

// The agent runs with settings.Settings. These names are what the CLI's
// commands outside the settings' own files (forward, connections,
// haproxy-check, wait-drained) and pkg/api's wire test still call them;
// new code names pkg/settings.

// Settings are settings.Settings.
type Settings = settings.Settings

// Defaults are settings.Defaults.
func Defaults() Settings { return settings.Defaults() }

// The keys those commands name.
const (
	KeyForwards = settings.KeyForwards
	KeyBackend  = settings.KeyBackend
)
