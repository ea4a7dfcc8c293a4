package plugin

import (
	"fmt"
	"time"

	"github.com/blixard/blixard/executor"
)

// stopReason records why a task ended before its plugin exited on its
// own.
type stopReason int

const (
	stopNone stopReason = iota
	stopTimeout
	stopCancel
)

// stoppedResult returns the Result of a task ended for reason, which is
// not stopNone.
func stoppedResult(reason stopReason, timeout time.Duration) executor.Result {
	if reason == stopTimeout {
		return executor.Result{
			ExitCode: executor.ExitTimeout,
			Reason:   "timeout after " + timeout.String(),
			TimedOut: true,
		}
	}
	return executor.Result{
		ExitCode:  executor.ExitCancelled,
		Reason:    "cancelled",
		Cancelled: true,
	}
}

// notRun returns the Result and error of a task that could not start
// because of cause.
func notRun(cause error) (executor.Result, error) {
	err := fmt.Errorf("start: %w", cause)
	return executor.Result{ExitCode: executor.ExitNotRun,
		Reason: err.Error()}, err
}
