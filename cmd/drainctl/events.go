package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/api/apitype"
)

// eventsCommand follows the agent, read-only: it changes nothing and
// holds nothing, so any number may run beside an operation.
func eventsCommand() *cli.Command {
	return &cli.Command{
		Name:  "events",
		Usage: "follow the agent's progress events as they happen (any operation, by anyone)",
		Description: "Prints every transition, drain progress line and command output of the agent\n" +
			"until interrupted: follow from a second terminal a restart that cron or a\n" +
			"colleague started. --json prints the lines of GET /v1/events ({\"event\": …}).",
		Flags:  []cli.Flag{socketFlag(), jsonFlag("print JSON lines")},
		Action: runEvents,
	}
}

// runEvents prints the agent's events until interrupted: the same stream
// every client gets, whoever started the operation.
func runEvents(c *cli.Context) error {
	enc := json.NewEncoder(os.Stdout)
	// With --json the drain's progress goes out inside the event lines,
	// as the API sends them; the printer is for people only.
	drainLine := progressPrinter(false)
	return client(c).Events(c.Context, func(ev apitype.Event) {
		switch {
		case c.Bool("json"):
			enc.Encode(apitype.Line{Event: &ev}) // as GET /v1/events sends it
		case ev.Drain != nil:
			drainLine(*ev.Drain)
		case ev.Output != nil:
			fmt.Printf("%s %s: exit %d\n", ev.Time.Local().Format(time.TimeOnly), ev.Output.Command, ev.Output.ExitCode)
		default:
			fmt.Printf("%s %s %s %s\n", ev.Time.Local().Format(time.TimeOnly), ev.Op, ev.Phase, safeLine(ev.Message))
		}
	})
}
