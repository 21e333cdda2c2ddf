package main

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/drainctl/drainctl/pkg/api"
)

// client talks to the agent on the socket the flags name. Each command
// makes one and uses it for all its calls (maintenance run: the enter
// and the exit share its connection).
func client(c *cli.Context) *api.Client { return &api.Client{Socket: socketPath(c)} }

// The client's errors carry what to do (start the agent, use sudo or join
// the socket's group); errors.go maps them to exit codes 4 and 8.

// label says who asked, beyond the uid the agent sees from the socket's
// peer credentials: under sudo that is root, and the history should name
// the person.
func label() string {
	if u := os.Getenv("SUDO_USER"); u != "" {
		return "via sudo by " + u
	}
	return ""
}
