package plugin

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

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
	out, errw := executor.GateOutputs(t.Stdout, t.Stderr, open)
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
	st, err := executor.ReadProcStat(pid)
	if err != nil {
		// The process is at least a zombie until waited for, so this
		// means /proc is unusable and a handle could not be trusted.
		_ = executor.KillGroup(pid, syscall.SIGKILL)
		close(open)
		_ = cmd.Wait()
		return notRun(fmt.Errorf("plugin %s: read start time: %w",
			p.path, err))
	}
	if t.Started != nil {
		t.Started(executor.ProcHandle{Kind: "plugin", PID: pid, PGID: pid,
			Start: st.Start}.String())
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
	g := time.Duration(grace(t)) * time.Millisecond
	switch stopped, timedOut := executor.AwaitGroup(ctx, t, pid, g,
		p.log); {
	case !stopped:
		return stopNone
	case timedOut:
		return stopTimeout
	}
	return stopCancel
}

// finish kills what is left of the plugin's process group, reaps the
// plugin and turns its end into a Result.
func (p *Plugin) finish(t executor.Task, cmd *exec.Cmd, files *taskFiles,
	reason stopReason, out, errw *executor.GatedWriter) (
	executor.Result, error) {
	pid := cmd.Process.Pid
	_ = executor.KillGroup(pid, syscall.SIGKILL)
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
	for _, w := range []*executor.GatedWriter{out, errw} {
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
	res := executor.WaitResult(ws)

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
