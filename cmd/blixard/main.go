// Command blixard is a peer of a Blixard mesh and the client that talks
// to one: `blixard peer` joins or starts a mesh, the other commands submit
// and watch jobs through a local peer's API.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/blixard/blixard/scheduler/httpapi"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the job or the operation failed
	exitUsage  = 2 // bad usage or invalid input
)

// usageError marks an error as the user's input, for exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitError carries an exit code without a message (a job's own code).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	app := newApp()
	err := app.Run(flagsFirst(app, args))
	if err == nil {
		return exitOK
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "blixard: "+err.Error())
	var ue usageError
	var ae *httpapi.APIError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ae) && ae.BadInput():
		return exitUsage
	}
	return exitFailed
}

func newApp() *cli.App {
	app := &cli.App{
		Name:  "blixard",
		Usage: "run jobs on a mesh of equal peers",
		Description: "Every machine runs 'blixard peer'. Peers find each other, advertise " +
			"what their executors can run, and steal work from one another. The other " +
			"commands talk to a local peer's API (--api or BLIXARD_API).",
		HideHelpCommand: true,
		Commands: []*cli.Command{
			peerCommand(),
			idCommand(),
			tokenCommand(),
			submitCommand(),
			runCommand(),
			statusCommand(),
			jobsCommand(),
			logsCommand(),
			waitCommand(),
			cancelCommand(),
			peersCommand(),
			drainCommand(true),
			drainCommand(false),
			demoCommand(),
			scanCommand(),
		},
		OnUsageError: onUsageError,
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(os.Stderr, "blixard: unknown command %q; see 'blixard --help'\n", name)
			os.Exit(exitUsage)
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = onUsageError
	}
	return app
}

// onUsageError turns a flag the CLI library could not parse into a
// one-line usage error.
func onUsageError(c *cli.Context, err error, sub bool) error {
	return usageError{err}
}

// flagsFirst moves a subcommand's flags in front of its arguments, so that
// `blixard status JOB -o json` works like `blixard status -o json JOB`
// (the CLI library stops reading flags at the first argument). Nothing
// after "--" moves.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 3 {
		return args
	}
	cmd := app.Command(args[1])
	if cmd == nil {
		return args
	}
	boolFlag := map[string]bool{}
	for _, f := range cmd.Flags {
		if _, ok := f.(*cli.BoolFlag); ok {
			for _, n := range f.Names() {
				boolFlag[n] = true
			}
		}
	}
	var flags, rest []string
	tail := args[2:]
	for i := 0; i < len(tail); i++ {
		a := tail[i]
		if a == "--" {
			rest = append(rest, tail[i:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			rest = append(rest, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if !strings.Contains(name, "=") && !boolFlag[name] && i+1 < len(tail) {
			i++
			flags = append(flags, tail[i])
		}
	}
	out := append([]string{args[0], args[1]}, flags...)
	return append(out, rest...)
}
