package main

import (
	_ "embed"
	"fmt"

	"github.com/urfave/cli/v2"
)

// The scripts, as the packages install them.
//
//go:embed completion.bash
var bashCompletion string

//go:embed completion.zsh
var zshCompletion string

// completionCommand prints a completion script. The scripts are small
// and fixed: they ask drainctl itself what fits, so they need no change
// when a command or a flag does.
func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash or zsh",
		ArgsUsage: "bash|zsh",
		Description: "Packages install it; by hand:\n\n" +
			"    source <(drainctl completion bash)        # in ~/.bashrc\n" +
			"    drainctl completion zsh > \"${fpath[1]}/_drainctl\"\n\n" +
			"Completion asks drainctl itself (--generate-bash-completion), so it\n" +
			"always knows this version's commands and flags. It never runs a command.",
		Action: runCompletion,
	}
}

// runCompletion prints the script of the shell given.
func runCompletion(c *cli.Context) error {
	switch c.Args().First() {
	case "bash":
		fmt.Print(bashCompletion)
	case "zsh":
		fmt.Print(zshCompletion)
	default:
		return usagef("completion: want bash or zsh")
	}
	return nil
}
