//go:build !linux

package executor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
)

// errNoProc is why exec cannot run tasks off Linux: it tells processes
// apart by their start time in /proc.
var errNoProc = errors.New("exec needs Linux /proc, not " + runtime.GOOS)

// Probe reports that exec cannot be used on this system. It does not
// block.
func (e *Exec) Probe(ctx context.Context) (Info, error) {
	return Info{}, fmt.Errorf("exec: %w: %w", errNoProc, ErrUnavailable)
}

// Run returns an error: exec runs tasks only on Linux.
func (e *Exec) Run(ctx context.Context, t Task) (Result, error) {
	return notRun(errNoProc)
}

// Reap returns an error: exec runs tasks only on Linux.
func (e *Exec) Reap(ctx context.Context, handle string) error {
	if _, err := parseHandle(handle); err != nil {
		return err
	}
	return fmt.Errorf("exec: reap: %w", errNoProc)
}

// ReapAttempt is not supported on this system.
func (e *Exec) ReapAttempt(ctx context.Context, jobID string, attempt int) error {
	return fmt.Errorf("exec: reap attempt: %w", errNoProc)
}
