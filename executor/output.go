package executor

import (
	"io"
	"sync"
)

// gatedWriter passes writes to w once open is closed, and keeps the first
// error w returns. After an error it discards the rest, so a task whose
// output cannot be delivered is not blocked on a full pipe.
//
// Callers do not write to one gatedWriter concurrently (os/exec runs one
// copying goroutine per writer); the mutex guards err for Err.
type gatedWriter struct {
	w    io.Writer
	open <-chan struct{}

	mu  sync.Mutex
	err error // guarded by mu
}

// Write waits for the gate to open, then writes p to the underlying
// writer. It always reports success, so that the copy from the task goes
// on draining the pipe.
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
