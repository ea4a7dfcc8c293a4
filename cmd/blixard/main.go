// Command blixard is a peer of a Blixard mesh and the client that talks
// to one: `blixard peer` joins or starts a mesh, the other commands submit
// and watch jobs through a local peer's API.
package main

import (
	"errors"
	"fmt"
	"os"

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
	err := app.Run(args)
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
	return &cli.App{
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
		OnUsageError: func(c *cli.Context, err error, sub bool) error {
			return usageError{err}
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
}
