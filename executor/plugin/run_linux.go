package plugin

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/blixard/blixard/executor"
)

// outputDrain bounds how long Run waits for the plugin's stdin and output
// pipes after its process group is gone. Only a process that left the
// group (with setsid, say) can hold them open that long.
const outputDrain = 2 * time.Second

// supported reports whether plugins can run on this system.
func supported() error { return nil }

// setGroup makes cmd's process the leader of a new process group.
func setGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// Run runs `PLUGIN run -- COMMAND...` for t and blocks until the plugin
// has exited and everything left in its process group has been killed.
// The plugin's stdin, stdout and stderr are the task's, its exit code the
// task's; a reason it writes to BLIXARD_RESULT replaces "exit status N".
// Output reaches t.Stdout and t.Stderr only after t.Started has returned.
//
// When t.Timeout passes or ctx is cancelled, Run sends SIGTERM to the
// plugin's process group and SIGKILL t.Grace later (DefaultGrace if zero).
// A context already done when Run is called starts nothing and yields a
// cancelled Result. Run is safe for concurrent use.
func (p *Plugin) Run(ctx context.Context, t executor.Task) (
	executor.Result, error) {
	if ctx.Err() != nil {
		return stoppedResult(stopCancel, 0), nil
	}
	files, err := writeTaskFiles(t)
	if err != nil {
		return notRun(err)
	}
	defer files.remove()

	cmd := p.runCommand(t, files)
	open := make(chan struct{})
	out, errw := outputs(t.Stdout, t.Stderr, open)
	if out != nil {
		cmd.Stdout = out
	}
	if errw != nil {
		cmd.Stderr = errw
	}
	if err := cmd.Start(); err != nil {
		return notRun(fmt.Errorf("plugin %s: %w", p.path, err))
	}

	pid := cmd.Process.Pid
	st, err := readStat(pid)
	if err != nil {
		// The process is at least a zombie until waited for, so this
		// means /proc is unusable and a handle could not be trusted.
		_ = killGroup(pid, syscall.SIGKILL)
		close(open)
		_ = cmd.Wait()
		return notRun(fmt.Errorf("plugin %s: read start time: %w",
			p.path, err))
	}
	if t.Started != nil {
		t.Started(procHandle{pid: pid, pgid: pid,
			start: st.start}.String())
	}
	close(open)
	p.log.Debug("task started", "job_id", t.JobID, "attempt", t.Attempt,
		"pid", pid)

	reason := p.await(ctx, t, pid)
	return p.finish(t, cmd, files, reason, out, errw)
}

// runCommand builds the plugin process for t.
func (p *Plugin) runCommand(t executor.Task, files *taskFiles) *exec.Cmd {
	args := append([]string{p.path, "run", "--"}, t.Command...)
	cmd := &exec.Cmd{
		Path:      p.path,
		Args:      args,
		Env:       p.environ(files.environ(t)),
		Dir:       t.Dir,
		Stdin:     t.Stdin,
		WaitDelay: outputDrain,
	}
	setGroup(cmd)
	return cmd
}

// await blocks until the plugin process pid has exited, stopping its group
// if t's timeout passes or ctx is done first. It leaves the process a
// zombie, so that its pid, and with it the group id, cannot be reused yet.
func (p *Plugin) await(ctx context.Context, t executor.Task,
	pid int) stopReason {
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		waitExited(pid)
	}()

	var expired <-chan time.Time
	if t.Timeout > 0 {
		timer := time.NewTimer(t.Timeout)
		defer timer.Stop()
		expired = timer.C
	}
	var reason stopReason
	select {
	case <-exited:
		return stopNone
	case <-expired:
		reason = stopTimeout
	case <-ctx.Done():
		reason = stopCancel
	}

	p.log.Debug("stopping task", "job_id", t.JobID, "attempt", t.Attempt,
		"pid", pid, "timed_out", reason == stopTimeout)
	_ = killGroup(pid, syscall.SIGTERM)
	timer := time.NewTimer(time.Duration(grace(t)) * time.Millisecond)
	defer timer.Stop()
	select {
	case <-exited:
	case <-timer.C:
		_ = killGroup(pid, syscall.SIGKILL)
		<-exited
	}
	return reason
}

// finish kills what is left of the plugin's process group, reaps the
// plugin and turns its end into a Result.
func (p *Plugin) finish(t executor.Task, cmd *exec.Cmd, files *taskFiles,
	reason stopReason, out, errw *gatedWriter) (executor.Result, error) {
	pid := cmd.Process.Pid
	_ = killGroup(pid, syscall.SIGKILL)
	werr := cmd.Wait()
	if cmd.ProcessState == nil {
		err := fmt.Errorf("wait for plugin pid %d: %w", pid, werr)
		return executor.Result{ExitCode: executor.ExitNotRun,
			Reason: err.Error()}, err
	}
	if errors.Is(werr, exec.ErrWaitDelay) {
		p.log.Warn("plugin stdin or output still open after its process "+
			"group ended; closed it", "job_id", t.JobID,
			"attempt", t.Attempt, "pid", pid)
	}
	for _, w := range []*gatedWriter{out, errw} {
		if err := w.Err(); err != nil {
			p.log.Warn("task output lost", "job_id", t.JobID,
				"attempt", t.Attempt, "error", err)
		}
	}

	res, err := p.result(t, cmd, files, reason)
	p.log.Debug("task ended", "job_id", t.JobID, "attempt", t.Attempt,
		"pid", pid, "exit_code", res.ExitCode, "reason", res.Reason)
	return res, err
}

// result maps the plugin's end and its result file to a Result.
func (p *Plugin) result(t executor.Task, cmd *exec.Cmd, files *taskFiles,
	reason stopReason) (executor.Result, error) {
	if reason != stopNone {
		return stoppedResult(reason, t.Timeout), nil
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	res := waitResult(ws)

	rf, err := files.readResult()
	if err != nil {
		p.log.Warn("plugin result file ignored", "job_id", t.JobID,
			"attempt", t.Attempt, "error", err)
		return res, nil
	}
	switch {
	case rf.NotRun:
		why := rf.Reason
		if why == "" {
			why = "plugin reported the task was not run"
		}
		err := fmt.Errorf("plugin %s: %s", p.name, why)
		return executor.Result{ExitCode: executor.ExitNotRun,
			Reason: err.Error()}, err
	case rf.Reason != "" && res.ExitCode != 0:
		res.Reason = rf.Reason
	}
	return res, nil
}

// waitResult returns the Result of a plugin that ended with ws.
func waitResult(ws syscall.WaitStatus) executor.Result {
	if ws.Signaled() {
		sig := ws.Signal()
		return executor.Result{
			ExitCode: 128 + int(sig),
			Reason: fmt.Sprintf("killed by signal %d (%s)", int(sig),
				sig.String()),
		}
	}
	return exitResult(ws.ExitStatus())
}

// waitExited blocks until the child pid has exited, without reaping it.
func waitExited(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info,
			unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}

// killGroup sends sig to every process in group pgid. A group that no
// longer exists is not an error.
func killGroup(pgid int, sig syscall.Signal) error {
	err := syscall.Kill(-pgid, sig)
	if err == nil || errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return fmt.Errorf("signal process group %d with %s: %w", pgid, sig, err)
}
