package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// The man pages come from the CLI's own definitions, so they cannot drift
// from the code: `make man` writes the pages into docs/man, and
// TestManPagesMatchTheCode fails when the committed ones differ from what
// the code generates.

func manCommand() *cli.Command {
	return &cli.Command{
		Name:      "man",
		Hidden:    true, // for packaging and `make man`
		Usage:     "write the man pages into DIR",
		ArgsUsage: "DIR",
		Action:    runMan,
	}
}

// manSection: drainctl changes netfilter and restarts services, an
// administrator's tool.
const manSection = 8

// manPages returns every man page by file name: drainctl.8 for the whole
// tool, and one per command and subcommand, git-style
// (drainctl-maintenance-enter.8).
func manPages() (map[string]string, error) {
	// urfave/cli renders through a package variable; ours names the
	// sections as man pages do (its own calls every flag global).
	defer func(t string) { cli.MarkdownDocTemplate = t }(cli.MarkdownDocTemplate)
	cli.MarkdownDocTemplate = manTemplate
	app := newApp()
	app.UsageText = "drainctl [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGUMENTS]"
	pages := map[string]string{}
	root, err := app.ToManWithSection(manSection)
	if err != nil {
		return nil, err
	}
	// The exit codes live on drainctl(8) only: they are the same for
	// every command.
	pages["drainctl.8"] = root + exitStatus() + seeAlso(app.Commands, nil)
	var walk func(path []string, cmds []*cli.Command) error
	walk = func(path []string, cmds []*cli.Command) error {
		for _, c := range cmds {
			if c.Hidden {
				continue
			}
			names := append(append([]string{}, path...), c.Name)
			usage := "drainctl " + strings.Join(names, " ")
			if len(c.Subcommands) > 0 {
				usage += " COMMAND"
			}
			usage += " [OPTIONS]"
			if c.ArgsUsage != "" {
				usage += " " + c.ArgsUsage
			}
			// urfave/cli renders whole apps only: each command becomes
			// an app of its own, named as man(1) finds it.
			page := &cli.App{
				Name:        "drainctl-" + strings.Join(names, "-"),
				Usage:       c.Usage,
				UsageText:   usage,
				Description: c.Description,
				Flags:       c.Flags,
				Commands:    c.Subcommands,
			}
			man, err := page.ToManWithSection(manSection)
			if err != nil {
				return fmt.Errorf("man page of %s: %w", usage, err)
			}
			// Each page leads back to drainctl(8), which has the exit
			// codes.
			pages[page.Name+".8"] = man + seeAlso(nil, []string{"drainctl"})
			if err := walk(names, c.Subcommands); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(nil, app.Commands); err != nil {
		return nil, err
	}
	return pages, nil
}

// manTemplate is urfave/cli's markdown template with the sections named
// as man pages name them (its own calls every flag global).
const manTemplate = `% {{ .App.Name }} {{ .SectionNum }}

# NAME

{{ .App.Name }} - {{ .App.Usage }}

# SYNOPSIS

{{ .App.UsageText }}
{{ if .App.Description }}
# DESCRIPTION

{{ .App.Description }}
{{ end }}{{ if .GlobalArgs }}
# OPTIONS
{{ range $v := .GlobalArgs }}
{{ $v }}{{ end }}
{{ end }}{{ if .Commands }}
# COMMANDS
{{ range $v := .Commands }}
{{ $v }}{{ end }}{{ end }}`

// exitStatus is drainctl(8)'s EXIT STATUS section, from exitCodes.
func exitStatus() string {
	var b strings.Builder
	b.WriteString(".SH EXIT STATUS\n")
	for _, e := range exitCodes {
		fmt.Fprintf(&b, ".TP\n\\fB%d\\fP\n%s\n", e.code, e.meaning)
	}
	return b.String()
}

// seeAlso ends a page with the pages it leads to.
func seeAlso(cmds []*cli.Command, names []string) string {
	for _, c := range cmds {
		if !c.Hidden {
			names = append(names, "drainctl-"+c.Name)
		}
	}
	sort.Strings(names)
	refs := make([]string, len(names))
	for i, n := range names {
		refs[i] = fmt.Sprintf(`\fB%s\fP(%d)`, n, manSection)
	}
	return ".SH SEE ALSO\n" + strings.Join(refs, ", ") + "\n"
}

// runMan writes every page into the directory given.
func runMan(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("man: want one argument, the directory to write the pages into")
	}
	pages, err := manPages()
	if err != nil {
		return err
	}
	dir := c.Args().First()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, text := range pages {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}
