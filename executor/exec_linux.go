package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// reapPoll is how often Reap looks at /proc while it waits for a process
// to go away.
const reapPoll = 20 * time.Millisecond

// killWait bounds how long Reap waits for a process to go away after
// SIGKILL. Only a process stuck in the kernel takes that long.
const killWait = 5 * time.Second

// Probe reports that exec can run tasks: it needs only /proc, which it
// reads to tell processes apart. It does not block.
func (e *Exec) Probe(ctx context.Context) (Info, error) {
	if _, err := ReadProcStat(os.Getpid()); err != nil {
		return Info{}, fmt.Errorf("exec: read /proc: %w: %w",
			err, ErrUnavailable)
	}
	return Info{}, nil
}

// Run runs t.Command as a process in its own process group and blocks
// until that process has exited and every other process left in its
// group has been killed. Output reaches t.Stdout and t.Stderr only after
// t.Started has returned.
//
// When t.Timeout passes or ctx is cancelled, Run sends SIGTERM to the
// group and SIGKILL t.Grace later (DefaultGrace if zero). A context
// already done when Run is called starts nothing and yields a cancelled
// Result.
func (e *Exec) Run(ctx context.Context, t Task) (Result, error) {
	if ctx.Err() != nil {
		res, _ := stoppedResult(stopCancel, 0)
		return res, nil
	}
	cmd, err := e.prepare(t)
	if err != nil {
		return notRun(err)
	}
	open := make(chan struct{})
	out, errw := GateOutputs(t.Stdout, t.Stderr, open)
	if out != nil {
		cmd.Stdout = out
	}
	if errw != nil {
		cmd.Stderr = errw
	}
	if err := cmd.Start(); err != nil {
		return notRun(fmt.Errorf("%q: %w", t.Command[0], err))
	}

	pid := cmd.Process.Pid
	st, err := ReadProcStat(pid)
	if err != nil {
		// Not yet waited for, the process is at least a zombie, so this
		// means /proc is unusable and a handle could not be trusted.
		_ = KillGroup(pid, syscall.SIGKILL)
		close(open)
		_ = cmd.Wait()
		return notRun(fmt.Errorf("%q: read start time: %w",
			t.Command[0], err))
	}
	if t.Started != nil {
		t.Started(ProcHandle{Kind: "exec", PID: pid, PGID: pid,
			Start: st.Start}.String())
	}
	close(open)
	e.log.Debug("task started", "job_id", t.JobID, "attempt", t.Attempt,
		"pid", pid)

	reason := e.await(ctx, t, pid)
	return e.finish(t, cmd, reason, out, errw)
}

// await blocks until the process pid has exited, stopping its group if
// t's timeout passes or ctx is done first. It leaves the process a zombie,
// so that its pid, and with it the group id, cannot be reused yet.
func (e *Exec) await(ctx context.Context, t Task, pid int) stopReason {
	grace := t.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	switch stopped, timedOut := AwaitGroup(ctx, t, pid, grace, e.log); {
	case !stopped:
		return stopNone
	case timedOut:
		return stopTimeout
	}
	return stopCancel
}

// AwaitGroup blocks until the child pid, which leads its own process
// group and runs t, has exited. If t.Timeout, when positive, passes or
// ctx is done first, it logs that at Debug level to log and stops the
// group: SIGTERM, then SIGKILL if pid still runs after grace. It leaves
// the process a zombie for the caller to wait for, so that its pid, and
// with it the group id, cannot be reused yet. It reports whether it
// stopped the group and, if so, whether the timeout was the cause.
func AwaitGroup(ctx context.Context, t Task, pid int, grace time.Duration,
	log *slog.Logger) (stopped, timedOut bool) {
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
	select {
	case <-exited:
		return false, false
	case <-expired:
		timedOut = true
	case <-ctx.Done():
	}

	log.Debug("stopping task", "job_id", t.JobID, "attempt", t.Attempt,
		"pid", pid, "timed_out", timedOut)
	_ = KillGroup(pid, syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-exited:
	case <-timer.C:
		_ = KillGroup(pid, syscall.SIGKILL)
		<-exited
	}
	return true, timedOut
}

// finish kills what is left of the task's process group, reaps the
// process and turns its end into a Result.
func (e *Exec) finish(t Task, cmd *exec.Cmd, reason stopReason,
	out, errw *GatedWriter) (Result, error) {
	pid := cmd.Process.Pid
	_ = KillGroup(pid, syscall.SIGKILL)
	werr := cmd.Wait()
	if cmd.ProcessState == nil {
		err := fmt.Errorf("wait for pid %d: %w", pid, werr)
		return Result{ExitCode: ExitNotRun, Reason: err.Error()}, err
	}
	if errors.Is(werr, exec.ErrWaitDelay) {
		e.log.Warn("task stdin or output still open after its process "+
			"group ended; closed it", "job_id", t.JobID,
			"attempt", t.Attempt, "pid", pid)
	}
	for _, w := range []*GatedWriter{out, errw} {
		if err := w.Err(); err != nil {
			e.log.Warn("task output lost", "job_id", t.JobID,
				"attempt", t.Attempt, "err", err)
		}
	}

	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	res := WaitResult(ws)
	if r, ok := stoppedResult(reason, t.Timeout); ok {
		res = r
	}
	e.log.Debug("task ended", "job_id", t.JobID, "attempt", t.Attempt,
		"pid", pid, "exit_code", res.ExitCode, "reason", res.Reason)
	return res, nil
}

// prepare checks t and builds the command that runs it. The returned
// error is the reason the task cannot start.
func (e *Exec) prepare(t Task) (*exec.Cmd, error) {
	if len(t.Command) == 0 || t.Command[0] == "" {
		return nil, errors.New("command: must name a program")
	}
	if !filepath.IsAbs(t.Dir) {
		return nil, fmt.Errorf("dir %q: must be an absolute directory",
			t.Dir)
	}
	env, err := e.taskEnv(t)
	if err != nil {
		return nil, err
	}
	path, err := lookPath(t.Command[0], envValue(env, "PATH"), t.Dir)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", t.Command[0], err)
	}
	return &exec.Cmd{
		Path:        path,
		Args:        t.Command,
		Env:         env,
		Dir:         t.Dir,
		Stdin:       t.Stdin,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
		WaitDelay:   outputDrain,
	}, nil
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

// KillGroup sends sig to every process in group pgid. A group that no
// longer exists is not an error.
func KillGroup(pgid int, sig syscall.Signal) error {
	err := syscall.Kill(-pgid, sig)
	if err == nil || errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return fmt.Errorf("signal process group %d with %s: %w", pgid, sig, err)
}

// Reap ends the process group named by handle, a handle that Run passed
// to Task.Started, if its leader still runs: SIGTERM, then SIGKILL after
// ExecConfig.ReapGrace. It blocks until the leader has exited, then kills
// anything left in its group. A leader already gone, a pid now used by
// another process, or a leader that exited but was not yet reaped by its
// parent, count as gone. A malformed handle is an error. Cancelling ctx
// skips the rest of the grace period.
func (e *Exec) Reap(ctx context.Context, handle string) error {
	h, err := ParseProcHandle("exec", handle)
	if err != nil {
		return err
	}
	live, err := h.Reapable()
	if err != nil || !live {
		return err
	}
	e.log.Info("reaping task process left from before", "pid", h.PID,
		"pgid", h.PGID)
	return ReapProcess(ctx, h, e.reapGrace)
}

// Reapable reports whether h's process still runs, as Live does, for a
// caller about to end it with ReapProcess. It refuses, with an error, a
// handle that names the calling process or its process group.
func (h ProcHandle) Reapable() (bool, error) {
	if h.PID == os.Getpid() || h.PGID == syscall.Getpgrp() {
		return false, fmt.Errorf("%s: handle %q names this peer's own "+
			"process group", h.Kind, h.String())
	}
	return h.Live()
}

// ReapProcess ends the process group of h, whose leader the caller has
// found live with Reapable: it sends SIGTERM to the group and to the
// leader, in case the leader left the group, then SIGKILL if the leader
// still runs after grace. It blocks until the leader has exited, then
// kills anything left in its group. Cancelling ctx skips the rest of the
// grace period. ReapProcess returns an error if a signal cannot be sent
// or if the leader still runs 5 seconds after SIGKILL.
func ReapProcess(ctx context.Context, h ProcHandle, grace time.Duration) error {
	if err := h.signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("reap: %w", err)
	}
	if !h.waitGone(ctx, grace) {
		if err := h.signal(syscall.SIGKILL); err != nil {
			return fmt.Errorf("reap: %w", err)
		}
		if !h.waitGone(context.WithoutCancel(ctx), killWait) {
			return fmt.Errorf("reap: pid %d still runs %s after SIGKILL",
				h.PID, killWait)
		}
	}
	if h.GroupHeld() {
		return KillGroup(h.PGID, syscall.SIGKILL)
	}
	return nil
}

// Live reports whether h's process still runs: its pid exists, has h's
// start time and has not exited. A process that exited but was not yet
// reaped by its parent does not run.
func (h ProcHandle) Live() (bool, error) {
	st, err := ReadProcStat(h.PID)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reap pid %d: %w", h.PID, err)
	}
	return st.Start == h.Start && st.State != 'Z' && st.State != 'X', nil
}

// GroupHeld reports whether h's pid is not taken by another process, so
// that h's group id still names h's group, or no group at all.
func (h ProcHandle) GroupHeld() bool {
	st, err := ReadProcStat(h.PID)
	return err != nil || st.Start == h.Start
}

// signal sends sig to h's process group and to h's process itself, in
// case it left the group. The caller has checked that h is live.
func (h ProcHandle) signal(sig syscall.Signal) error {
	err := KillGroup(h.PGID, sig)
	if kerr := syscall.Kill(h.PID, sig); kerr != nil &&
		!errors.Is(kerr, syscall.ESRCH) {
		err = errors.Join(err, fmt.Errorf("signal pid %d: %w", h.PID, kerr))
	}
	return err
}

// waitGone polls until h's process is no longer live, for at most d or
// until ctx is done. It reports whether the process went away.
func (h ProcHandle) waitGone(ctx context.Context, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(reapPoll)
	defer tick.Stop()
	for {
		if live, err := h.Live(); err == nil && !live {
			return true
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// ReadProcStat reads /proc/PID/stat of pid. A pid that does not exist
// gives an error wrapping fs.ErrNotExist.
func ReadProcStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ProcStat{}, err
	}
	return parseStat(b)
}

// parseStat parses the contents of a /proc/PID/stat file. The command
// name in field 2 may hold spaces and parentheses, so fields are counted
// from the last closing parenthesis.
func parseStat(b []byte) (ProcStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ProcStat{}, errors.New("parse stat: no command name")
	}
	// fields[0] is field 3 of the file.
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return ProcStat{}, fmt.Errorf("parse stat: %d fields after the "+
			"command name, want at least 20", len(fields))
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return ProcStat{}, fmt.Errorf("parse stat: starttime: %w", err)
	}
	return ProcStat{State: fields[0][0], Start: start}, nil
}

// ReapAttempt ends every process that runs attempt of job jobID, found by
// the BLIXARD_JOB_ID and BLIXARD_ATTEMPT variables exec gives each task.
// It covers a crash between a task's start and the moment its handle was
// recorded. Processes whose environment cannot be read are skipped.
func (e *Exec) ReapAttempt(ctx context.Context, jobID string, attempt int) error {
	want := [][]byte{
		[]byte("BLIXARD_JOB_ID=" + jobID + "\x00"),
		[]byte("BLIXARD_ATTEMPT=" + strconv.Itoa(attempt) + "\x00"),
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("reap attempt: %w", err)
	}
	var errs []error
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + ent.Name() + "/environ")
		if err != nil || !bytes.Contains(env, want[0]) || !bytes.Contains(env, want[1]) {
			continue
		}
		st, err := ReadProcStat(pid)
		if err != nil {
			continue
		}
		pgid, err := syscall.Getpgid(pid)
		if err != nil || pgid == syscall.Getpgrp() {
			continue
		}
		h := ProcHandle{Kind: "exec", PID: pid, PGID: pgid, Start: st.Start}
		if err := e.Reap(ctx, h.String()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
