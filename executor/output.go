package executor

import (
	"io"
	"sync"
)

// GatedWriter passes writes to an underlying writer once a gate channel
// is closed, and keeps the first error that writer returns. After an
// error it discards the rest, so a task whose output cannot be delivered
// is not blocked on a full pipe. GateOutputs makes them.
//
// Callers do not write to one GatedWriter concurrently (os/exec runs one
// copying goroutine per writer); Err may be called at any time.
type GatedWriter struct {
	w    io.Writer
	open <-chan struct{}

	mu  sync.Mutex
	err error // guarded by mu
}

// Write waits for the gate to open, then writes p to the underlying
// writer. It always reports success, so that the copy from the task goes
// on draining the pipe.
func (g *GatedWriter) Write(p []byte) (int, error) {
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
// It returns nil for a nil GatedWriter.
func (g *GatedWriter) Err() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}
