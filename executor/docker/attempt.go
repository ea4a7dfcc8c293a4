package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/blixard/blixard/executor"
)

// attempt is one started container of one task, from its start to its
// exit.
type attempt struct {
	d   *Docker
	log *slog.Logger
	id  string
	t   executor.Task

	conn     client.HijackedResponse
	copied   chan error        // the output copy's end, once
	exited   <-chan exitStatus // the container's exit, once
	stopWait context.CancelFunc
}

// exitStatus is what the daemon reported when the container stopped.
type exitStatus struct {
	code int
	err  error
}

// begin attaches to the container, registers for its exit and starts it.
// Attaching first means no byte of output is missed.
func (d *Docker) begin(ctx context.Context, log *slog.Logger, id string,
	t executor.Task) (*attempt, error) {
	conn, err := d.cli.ContainerAttach(ctx, id, client.ContainerAttachOptions{
		Stream: true,
		Stdin:  t.Stdin != nil,
		Stdout: true,
		Stderr: true,
	})
	if err != nil {
		return nil, fmt.Errorf("attach to container: %w", unavailable(err))
	}
	a := &attempt{d: d, log: log, id: id, t: t, conn: conn.HijackedResponse}
	a.copied = make(chan error, 1)
	go a.copyOutput()
	if t.Stdin != nil {
		go a.copyInput()
	}

	// The wait outlives ctx: a cancelled task is stopped, then waited for.
	waitCtx, cancel := context.WithCancel(context.Background())
	a.stopWait = cancel
	a.exited = d.waitExit(waitCtx, id)

	// A cancel that lands while the daemon starts the container must not
	// abandon the start half done: finish it, and let supervise stop the
	// container as for any cancel.
	startCtx, cancelStart := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancelStart()
	if _, err := d.cli.ContainerStart(startCtx, id,
		client.ContainerStartOptions{}); err != nil {
		a.close()
		return nil, fmt.Errorf("start container: %w", unavailable(err))
	}
	return a, nil
}

// copyOutput demultiplexes the attach stream into the task's writers.
func (a *attempt) copyOutput() {
	stdout, stderr := a.t.Stdout, a.t.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	_, err := stdcopy.StdCopy(stdout, stderr, newFrameGuard(a.conn.Reader))
	a.copied <- err
}

// copyInput feeds the task's stdin to the container, then half-closes the
// connection so that the container sees end of input. An error means the
// container stopped reading, which is its own business; it may end long
// after Run returned, so it logs nothing.
func (a *attempt) copyInput() {
	_, _ = io.Copy(a.conn.Conn, a.t.Stdin)
	_ = a.conn.CloseWrite()
}

// waitExit asks the daemon for the container's next exit. The returned
// channel receives exactly one status, and the goroutine behind it ends
// once ctx ends or the daemon answers.
func (d *Docker) waitExit(ctx context.Context, id string) <-chan exitStatus {
	w := d.cli.ContainerWait(ctx, id, client.ContainerWaitOptions{
		Condition: container.WaitConditionNextExit,
	})
	out := make(chan exitStatus, 1)
	go func() {
		select {
		case r := <-w.Result:
			st := exitStatus{code: int(r.StatusCode)}
			if r.Error != nil && r.Error.Message != "" {
				st.err = errors.New(r.Error.Message)
			}
			out <- st
		case err := <-w.Error:
			out <- exitStatus{err: err}
		}
	}()
	return out
}

// supervise waits for the container to exit, its timeout to pass or ctx
// to end, whichever comes first.
func (a *attempt) supervise(ctx context.Context) (executor.Result, error) {
	var timeout <-chan time.Time
	if a.t.Timeout > 0 {
		timer := time.NewTimer(a.t.Timeout)
		defer timer.Stop()
		timeout = timer.C
	}

	select {
	case st := <-a.exited:
		return a.finish(st)
	case <-timeout:
		return a.halt(executor.Result{
			ExitCode: executor.ExitTimeout,
			Reason:   "timeout after " + a.t.Timeout.String(),
			TimedOut: true,
		}), nil
	case <-ctx.Done():
		return a.halt(executor.Result{
			ExitCode:  executor.ExitCancelled,
			Reason:    "cancelled",
			Cancelled: true,
		}), nil
	}
}

// halt stops the container (stop signal, SIGKILL after the grace period),
// waits for it to exit and for its output, and returns res.
func (a *attempt) halt(res executor.Result) executor.Result {
	grace := a.t.Grace
	if grace <= 0 {
		grace = executor.DefaultGrace
	}
	secs := int((grace + time.Second - 1) / time.Second)
	a.log.Info("stopping container", "reason", res.Reason, "grace", grace)

	ctx, cancel := context.WithTimeout(context.Background(),
		grace+cleanupTimeout)
	defer cancel()
	_, err := a.d.cli.ContainerStop(ctx, a.id,
		client.ContainerStopOptions{Timeout: &secs})
	if err != nil {
		// Run removes the container by force on its way out.
		a.log.Warn("stop container", "err", err)
	}

	select {
	case <-a.exited:
	case <-ctx.Done():
	}
	a.drain()
	return res
}

// finish turns the container's own exit into a Result.
func (a *attempt) finish(st exitStatus) (executor.Result, error) {
	a.drain()
	state := a.inspectState()
	if st.err != nil {
		if state == nil || state.Running || state.Status != container.StateExited {
			err := fmt.Errorf("wait for container %s: %w", shortID(a.id),
				st.err)
			return notRun(err)
		}
		st.code = state.ExitCode
	}

	a.log.Debug("container exited", "exit_code", st.code)
	switch {
	case st.code == 0:
		return executor.Result{}, nil
	case state != nil && state.OOMKilled:
		reason := "out of memory"
		if mem := a.t.Resources.Memory; mem > 0 {
			reason += " (limit " + formatBytes(mem) + ")"
		}
		return executor.Result{ExitCode: st.code, Reason: reason}, nil
	default:
		return executor.Result{
			ExitCode: st.code,
			Reason:   fmt.Sprintf("exit status %d", st.code),
		}, nil
	}
}

// inspectState returns the container's state, or nil when the daemon
// does not say.
func (a *attempt) inspectState() *container.State {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	res, err := a.d.cli.ContainerInspect(ctx, a.id,
		client.ContainerInspectOptions{})
	if err != nil {
		a.log.Debug("inspect container", "err", err)
		return nil
	}
	return res.Container.State
}

// drain waits for the rest of the output, for at most drainTimeout, then
// cuts the stream and waits for the copy to return.
func (a *attempt) drain() {
	timer := time.NewTimer(drainTimeout)
	defer timer.Stop()
	select {
	case err := <-a.copied:
		a.copyEnded(err)
		return
	case <-timer.C:
	}
	a.log.Warn("output still open after exit; closing it",
		"after", drainTimeout)
	a.conn.Close()
	a.copyEnded(<-a.copied)
}

// copyEnded logs an output copy that ended on an error, and records that
// it ended.
func (a *attempt) copyEnded(err error) {
	if err != nil && !errors.Is(err, io.EOF) {
		a.log.Warn("copy container output", "err", err)
	}
	a.copied = nil
}

// close ends the exit wait and the attach connection. It is idempotent.
func (a *attempt) close() {
	a.stopWait()
	a.conn.Close()
}
