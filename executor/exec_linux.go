package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
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
	if _, err := readStat(os.Getpid()); err != nil {
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
	out, errw := outputs(t.Stdout, t.Stderr, open)
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
	st, err := readStat(pid)
	if err != nil {
		// Not yet waited for, the process is at least a zombie, so this
		// means /proc is unusable and a handle could not be trusted.
		_ = killGroup(pid, syscall.SIGKILL)
		close(open)
		_ = cmd.Wait()
		return notRun(fmt.Errorf("%q: read start time: %w",
			t.Command[0], err))
	}
	if t.Started != nil {
		t.Started(procHandle{pid: pid, pgid: pid, start: st.start}.String())
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

	grace := t.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	e.log.Debug("stopping task", "job_id", t.JobID, "attempt", t.Attempt,
		"pid", pid, "timed_out", reason == stopTimeout)
	_ = killGroup(pid, syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-exited:
	case <-timer.C:
		_ = killGroup(pid, syscall.SIGKILL)
		<-exited
	}
	return reason
}

// finish kills what is left of the task's process group, reaps the
// process and turns its end into a Result.
func (e *Exec) finish(t Task, cmd *exec.Cmd, reason stopReason,
	out, errw *gatedWriter) (Result, error) {
	pid := cmd.Process.Pid
	_ = killGroup(pid, syscall.SIGKILL)
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
	for _, w := range []*gatedWriter{out, errw} {
		if err := w.Err(); err != nil {
			e.log.Warn("task output lost", "job_id", t.JobID,
				"attempt", t.Attempt, "err", err)
		}
	}

	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	res := waitResult(ws)
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

// waitResult returns the Result of a process that ended with ws.
func waitResult(ws syscall.WaitStatus) Result {
	if ws.Signaled() {
		sig := ws.Signal()
		return Result{
			ExitCode: 128 + int(sig),
			Reason: fmt.Sprintf("killed by signal %d (%s)",
				int(sig), sig.String()),
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

// Reap ends the process group named by handle, a handle that Run passed
// to Task.Started, if its leader still runs: SIGTERM, then SIGKILL after
// ExecConfig.ReapGrace. It blocks until the leader has exited, then kills
// anything left in its group. A leader already gone, a pid now used by
// another process, or a leader that exited but was not yet reaped by its
// parent, count as gone. A malformed handle is an error. Cancelling ctx
// skips the rest of the grace period.
func (e *Exec) Reap(ctx context.Context, handle string) error {
	h, err := parseHandle(handle)
	if err != nil {
		return err
	}
	if h.pid == os.Getpid() || h.pgid == syscall.Getpgrp() {
		return fmt.Errorf("exec: handle %q names this peer's own process "+
			"group", handle)
	}
	live, err := h.live()
	if err != nil || !live {
		return err
	}

	e.log.Info("reaping task process left from before", "pid", h.pid,
		"pgid", h.pgid)
	if err := h.signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("reap: %w", err)
	}
	if !h.waitGone(ctx, e.reapGrace) {
		if err := h.signal(syscall.SIGKILL); err != nil {
			return fmt.Errorf("reap: %w", err)
		}
		if !h.waitGone(context.WithoutCancel(ctx), killWait) {
			return fmt.Errorf("reap: pid %d still runs %s after SIGKILL",
				h.pid, killWait)
		}
	}
	if h.groupHeld() {
		return killGroup(h.pgid, syscall.SIGKILL)
	}
	return nil
}

// live reports whether h's process still runs: its pid exists, has h's
// start time and has not exited.
func (h procHandle) live() (bool, error) {
	st, err := readStat(h.pid)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reap pid %d: %w", h.pid, err)
	}
	return st.start == h.start && st.state != 'Z' && st.state != 'X', nil
}

// groupHeld reports whether h's pid is not taken by another process, so
// that h's group id still names h's group, or no group at all.
func (h procHandle) groupHeld() bool {
	st, err := readStat(h.pid)
	return err != nil || st.start == h.start
}

// signal sends sig to h's process group and to h's process itself, in
// case it left the group. The caller has checked that h is live.
func (h procHandle) signal(sig syscall.Signal) error {
	err := killGroup(h.pgid, sig)
	if kerr := syscall.Kill(h.pid, sig); kerr != nil &&
		!errors.Is(kerr, syscall.ESRCH) {
		err = errors.Join(err, fmt.Errorf("signal pid %d: %w", h.pid, kerr))
	}
	return err
}

// waitGone polls until h's process is no longer live, for at most d or
// until ctx is done. It reports whether the process went away.
func (h procHandle) waitGone(ctx context.Context, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(reapPoll)
	defer tick.Stop()
	for {
		if live, err := h.live(); err == nil && !live {
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

// procStat holds the fields of /proc/PID/stat that exec uses.
type procStat struct {
	state byte   // field 3: R, S, D, Z, ...
	start uint64 // field 22: start time in clock ticks after boot
}

// readStat reads /proc/PID/stat of pid.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// parseStat parses the contents of a /proc/PID/stat file. The command
// name in field 2 may hold spaces and parentheses, so fields are counted
// from the last closing parenthesis.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("parse stat: no command name")
	}
	// fields[0] is field 3 of the file.
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return procStat{}, fmt.Errorf("parse stat: %d fields after the "+
			"command name, want at least 20", len(fields))
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parse stat: starttime: %w", err)
	}
	return procStat{state: fields[0][0], start: start}, nil
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
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		pgid, err := syscall.Getpgid(pid)
		if err != nil || pgid == syscall.Getpgrp() {
			continue
		}
		h := procHandle{pid: pid, pgid: pgid, start: st.start}
		if err := e.Reap(ctx, h.String()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
