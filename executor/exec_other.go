//go:build !linux

package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"syscall"
	"time"
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
	if _, err := ParseProcHandle("exec", handle); err != nil {
		return err
	}
	return fmt.Errorf("exec: reap: %w", errNoProc)
}

// ReapAttempt is not supported on this system.
func (e *Exec) ReapAttempt(ctx context.Context, jobID string, attempt int) error {
	return fmt.Errorf("exec: reap attempt: %w", errNoProc)
}

// AwaitGroup returns at once, reporting nothing stopped: off Linux no
// task process is started to wait for.
func AwaitGroup(ctx context.Context, t Task, pid int, grace time.Duration,
	log *slog.Logger) (stopped, timedOut bool) {
	return false, false
}

// KillGroup returns an error: process groups are managed only on Linux.
func KillGroup(pgid int, sig syscall.Signal) error {
	return fmt.Errorf("signal process group %d with %s: %w", pgid, sig,
		errNoProc)
}

// Reapable returns an error: processes are told apart only on Linux.
func (h ProcHandle) Reapable() (bool, error) { return h.Live() }

// ReapProcess returns an error: processes are reaped only on Linux.
func ReapProcess(ctx context.Context, h ProcHandle, grace time.Duration) error {
	return fmt.Errorf("reap: %w", errNoProc)
}

// Live returns an error: processes are told apart only on Linux.
func (h ProcHandle) Live() (bool, error) {
	return false, fmt.Errorf("reap pid %d: %w", h.PID, errNoProc)
}

// GroupHeld returns false: processes are told apart only on Linux.
func (h ProcHandle) GroupHeld() bool { return false }

// ReadProcStat returns an error: there is no /proc off Linux.
func ReadProcStat(pid int) (ProcStat, error) {
	return ProcStat{}, errNoProc
}
