package plugin

import (
	"fmt"
	"io"
	"strconv"
	"sync"
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

// exitResult returns the Result of a plugin that exited with status code.
func exitResult(code int) executor.Result {
	if code == 0 {
		return executor.Result{}
	}
	return executor.Result{ExitCode: code,
		Reason: "exit status " + strconv.Itoa(code)}
}

// notRun returns the Result and error of a task that could not start
// because of cause.
func notRun(cause error) (executor.Result, error) {
	err := fmt.Errorf("start: %w", cause)
	return executor.Result{ExitCode: executor.ExitNotRun,
		Reason: err.Error()}, err
}

// outputs returns the writers the plugin's stdout and stderr go to: each
// holds its writes until open is closed, and one shared writer stands for
// both when stdout and stderr are the same writer, so it is never called
// concurrently.
func outputs(stdout, stderr io.Writer, open <-chan struct{}) (
	out, errw *gatedWriter) {
	if stdout != nil {
		out = &gatedWriter{w: stdout, open: open}
	}
	switch {
	case stderr == nil:
	case stdout != nil && sameWriter(stdout, stderr):
		errw = out
	default:
		errw = &gatedWriter{w: stderr, open: open}
	}
	return out, errw
}

// sameWriter reports whether a and b are the same comparable value.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// gatedWriter passes writes to w once open is closed and keeps the first
// error w returns. After an error it discards the rest, so a plugin whose
// output cannot be delivered is not blocked on a full pipe. os/exec calls
// Write from one goroutine; mu guards err for Err.
type gatedWriter struct {
	w    io.Writer
	open <-chan struct{}

	mu  sync.Mutex
	err error // guarded by mu
}

// Write waits for the gate to open, then writes p to the underlying
// writer. It always reports success, so the copy from the plugin goes on
// draining the pipe.
func (g *gatedWriter) Write(p []byte) (int, error) {
	<-g.open

	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return len(p), nil
	}
	n, err := g.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	g.err = err
	return len(p), nil
}

// Err returns the first error the underlying writer returned, if any.
func (g *gatedWriter) Err() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}
