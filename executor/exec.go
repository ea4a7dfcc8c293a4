package executor

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// fallbackPath is the PATH tasks get when the peer's own environment has
// none and ExecConfig.BaseEnv is nil.
const fallbackPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:" +
	"/sbin:/bin"

// outputDrain bounds how long Run waits for a task's output pipes to close
// after its process group is gone. Only a process that left the group (with
// setsid, say) can hold them open that long.
const outputDrain = 2 * time.Second

// ExecConfig configures the exec adapter.
type ExecConfig struct {
	// Logger receives the adapter's logs. Nil discards them.
	Logger *slog.Logger

	// BaseEnv is the environment every task starts from, before the
	// variables Run adds and the task's own Env. Nil means PATH alone,
	// copied from the peer's environment (or a standard PATH if the peer
	// has none). A non-nil map is used as given, so an empty map gives
	// tasks no PATH, and only commands named by a path can run.
	BaseEnv map[string]string

	// ReapGrace is how long Reap waits after SIGTERM before it sends
	// SIGKILL. Zero means DefaultGrace.
	ReapGrace time.Duration
}

// Exec is the exec adapter: it runs a task's command as a local process
// in its own process group, with the task's directory as working
// directory, HOME and TMPDIR.
//
// Exec does not enforce Task.Resources, Mounts or Image: the process has
// the peer's user, file system and network, and can use all the CPU and
// memory of the machine. Jobs that need isolation belong on the docker or
// wasm adapters.
//
// Exec implements [Executor] and [Reaper]. It is safe for concurrent use.
type Exec struct {
	log       *slog.Logger
	baseEnv   map[string]string
	reapGrace time.Duration
}

var (
	_ Executor = (*Exec)(nil)
	_ Reaper   = (*Exec)(nil)
)

// NewExec returns an exec adapter configured by cfg. It does not block.
func NewExec(cfg ExecConfig) *Exec {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base := make(map[string]string, len(cfg.BaseEnv))
	for k, v := range cfg.BaseEnv {
		base[k] = v
	}
	if cfg.BaseEnv == nil {
		path := os.Getenv("PATH")
		if path == "" {
			path = fallbackPath
		}
		base["PATH"] = path
	}
	grace := cfg.ReapGrace
	if grace <= 0 {
		grace = DefaultGrace
	}
	return &Exec{
		log:       log.With("component", "executor", "executor", "exec"),
		baseEnv:   base,
		reapGrace: grace,
	}
}

// Name returns "exec".
func (e *Exec) Name() string { return "exec" }

// taskEnv returns the environment of t as a sorted KEY=VALUE list: the
// base environment, then HOME, TMPDIR, BLIXARD_JOB_ID and BLIXARD_ATTEMPT,
// then t.Env, later entries winning.
func (e *Exec) taskEnv(t Task) ([]string, error) {
	env := make(map[string]string, len(e.baseEnv)+len(t.Env)+4)
	for k, v := range e.baseEnv {
		env[k] = v
	}
	env["HOME"] = t.Dir
	env["TMPDIR"] = t.Dir
	env["BLIXARD_JOB_ID"] = t.JobID
	env["BLIXARD_ATTEMPT"] = strconv.Itoa(t.Attempt)
	for k, v := range t.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("env key %q: must be non-empty "+
				"and contain no '=' or NUL", k)
		}
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("env %s: value must not contain NUL", k)
		}
		env[k] = v
	}

	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return list, nil
}

// envValue returns the value of key in a sorted KEY=VALUE list.
func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// lookPath resolves name the way a shell would with PATH set to path:
// a name with a slash is taken as is (relative to dir), a bare name is
// searched in the absolute directories of path. Relative and empty PATH
// entries are skipped, so a task never runs a program from its working
// directory by accident.
func lookPath(name, path, dir string) (string, error) {
	if strings.Contains(name, "/") {
		full := name
		if !filepath.IsAbs(full) {
			full = filepath.Join(dir, full)
		}
		if err := checkExecutable(full); err != nil {
			return "", err
		}
		return full, nil
	}
	for _, d := range filepath.SplitList(path) {
		if !filepath.IsAbs(d) {
			continue
		}
		full := filepath.Join(d, name)
		if checkExecutable(full) == nil {
			return full, nil
		}
	}
	return "", exec.ErrNotFound
}

// checkExecutable reports why file cannot be executed, or nil if it is a
// regular file with an execute bit set.
func checkExecutable(file string) error {
	fi, err := os.Stat(file)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return errors.New("is a directory")
	}
	if fi.Mode()&0o111 == 0 {
		return fs.ErrPermission
	}
	return nil
}

// notRun returns the Result and error of a task that could not start
// because of cause.
func notRun(cause error) (Result, error) {
	err := fmt.Errorf("start: %w", cause)
	return Result{ExitCode: ExitNotRun, Reason: err.Error()}, err
}

// stopReason records why a task ended before exiting on its own.
type stopReason int

const (
	stopNone stopReason = iota
	stopTimeout
	stopCancel
)

// stoppedResult returns the Result of a task ended for reason, or false
// if reason is stopNone.
func stoppedResult(reason stopReason, timeout time.Duration) (Result, bool) {
	switch reason {
	case stopTimeout:
		return Result{
			ExitCode: ExitTimeout,
			Reason:   "timeout after " + timeout.String(),
			TimedOut: true,
		}, true
	case stopCancel:
		return Result{
			ExitCode:  ExitCancelled,
			Reason:    "cancelled",
			Cancelled: true,
		}, true
	}
	return Result{}, false
}

// exitResult returns the Result of a task that exited with status code.
func exitResult(code int) Result {
	if code == 0 {
		return Result{}
	}
	return Result{ExitCode: code, Reason: "exit status " + strconv.Itoa(code)}
}

// GateOutputs returns the writers a task's stdout and stderr go to, for
// an adapter that runs the task with os/exec: each holds its writes until
// open is closed, and one shared writer stands for both when stdout and
// stderr are the same writer, so it is never called concurrently. A nil
// stdout or stderr gives a nil writer, which the caller leaves unset on
// the command.
func GateOutputs(stdout, stderr io.Writer, open <-chan struct{}) (
	out, errw *GatedWriter) {
	if stdout != nil {
		out = &GatedWriter{w: stdout, open: open}
	}
	switch {
	case stderr == nil:
	case stdout != nil && sameWriter(stdout, stderr):
		errw = out
	default:
		errw = &GatedWriter{w: stderr, open: open}
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

// maxHandleLen bounds the length of a handle ParseProcHandle accepts.
const maxHandleLen = 64

// ProcHandle names one process group leader that an adapter started: its
// pid, its process group and its start time in clock ticks after boot
// (field 22 of /proc/PID/stat), which tells it apart from a later process
// that reuses the pid. Kind names the adapter, "exec" for [Exec].
//
// Its text form, made by String and read by ParseProcHandle, is
// "KIND:PID:PGID:START". Adapters pass it to Task.Started and it is stored
// on disk, so the format must not change.
type ProcHandle struct {
	Kind  string
	PID   int
	PGID  int
	Start uint64
}

// String formats h as "KIND:PID:PGID:START".
func (h ProcHandle) String() string {
	return fmt.Sprintf("%s:%d:%d:%d", h.Kind, h.PID, h.PGID, h.Start)
}

// ParseProcHandle parses a handle of the given kind made by
// ProcHandle.String. It refuses handles longer than 64 bytes, handles of
// another kind, and pids and groups below 2, which signals would turn
// into "every process" or "init". Its errors start with kind.
func ParseProcHandle(kind, s string) (ProcHandle, error) {
	bad := func(why string) (ProcHandle, error) {
		if len(s) > maxHandleLen {
			s = s[:maxHandleLen] + "..."
		}
		return ProcHandle{}, fmt.Errorf("%s: handle %q: %s", kind, s, why)
	}
	if len(s) > maxHandleLen {
		return bad(fmt.Sprintf("longer than %d bytes", maxHandleLen))
	}
	format := kind + ":PID:PGID:START"
	rest, ok := strings.CutPrefix(s, kind+":")
	parts := strings.Split(rest, ":")
	if !ok || len(parts) != 3 {
		return bad("want " + format)
	}
	pid, err1 := strconv.Atoi(parts[0])
	pgid, err2 := strconv.Atoi(parts[1])
	start, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return bad("want " + format + " with decimal numbers")
	}
	if pid < 2 || pgid < 2 {
		return bad("pid and pgid must be at least 2")
	}
	return ProcHandle{Kind: kind, PID: pid, PGID: pgid, Start: start}, nil
}

// ProcStat holds the fields of /proc/PID/stat, read by ReadProcStat,
// that tell whether a process runs and which process a pid names.
type ProcStat struct {
	State byte   // field 3: R, S, D, Z, ...
	Start uint64 // field 22: start time in clock ticks after boot
}

// WaitResult returns the Result of a process that ended with ws: exit
// code and "exit status N" for one that exited with N other than 0, 128
// plus the signal and "killed by signal N (NAME)" for one a signal
// killed, and the zero Result for a clean exit.
func WaitResult(ws syscall.WaitStatus) Result {
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
