//go:build !linux

package plugin

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"

	"github.com/blixard/blixard/executor"
)

// errNotLinux is why plugins cannot run off Linux: Run tells processes
// apart by their start time in /proc and stops them by process group.
var errNotLinux = errors.New("plugin executor needs Linux, not " +
	runtime.GOOS)

func supported() error { return errNotLinux }

func setGroup(cmd *exec.Cmd) {}

// Run returns an error: plugins run only on Linux.
func (p *Plugin) Run(ctx context.Context, t executor.Task) (
	executor.Result, error) {
	return notRun(errNotLinux)
}

// Reap returns an error: plugins run only on Linux.
func (p *Plugin) Reap(ctx context.Context, handle string) error {
	if _, err := executor.ParseProcHandle("plugin", handle); err != nil {
		return err
	}
	return fmt.Errorf("plugin: reap: %w", errNotLinux)
}
