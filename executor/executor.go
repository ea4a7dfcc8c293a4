// Package executor runs one task of a job on the local machine and reports
// how it ended. Adapters (exec, noop, docker, wasm, plugin) implement
// [Executor]; the scheduler decides what runs where and never depends on
// how an adapter does its work.
package executor

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"
)

// DefaultGrace is the time between the polite stop signal (SIGTERM, or the
// adapter's equivalent) and the forced one (SIGKILL) when a task's Grace is
// zero.
const DefaultGrace = 10 * time.Second

// Exit codes that adapters report for tasks that did not exit on their own.
const (
	// ExitTimeout is reported for a task ended because its timeout passed.
	ExitTimeout = 124
	// ExitCancelled is reported for a task ended because its context was
	// cancelled.
	ExitCancelled = 130
	// ExitNotRun is reported for a task that could not be started at all.
	ExitNotRun = 127
)

// ErrUnavailable is returned by Probe when the adapter's backend cannot be
// used on this machine (no Docker daemon answering, no plugin binary).
var ErrUnavailable = errors.New("executor unavailable")

// Mount grants a task access to one host directory.
type Mount struct {
	Source   string // absolute host path
	Target   string // path seen by the task
	ReadOnly bool
}

// Resources are the CPU and memory a task may use. Zero means no limit.
type Resources struct {
	CPU    float64 // cores, fractional allowed
	Memory int64   // bytes
}

// Task is one attempt of one job, handed to an executor.
//
// Fields an adapter does not use are ignored: exec ignores Image, docker
// ignores Module. The scheduler has validated every field before Run.
type Task struct {
	JobID   string
	Attempt int

	// Command is the argv. The exec adapter runs it directly, never through
	// a shell unless Command[0] is one.
	Command []string
	Env     map[string]string

	// Dir is a fresh, empty directory created for this attempt. The exec
	// adapter runs the command there; other adapters may use it as scratch
	// space. The scheduler removes it after the attempt.
	Dir string
	// Workdir is the working directory inside a container or sandbox, for
	// adapters that have one. Empty means the adapter's default.
	Workdir string

	Image      string // docker: the image reference
	Module     string // wasm: local path of the module file
	ModuleHash string // wasm: hex SHA-256 of the module, a cache key
	Mounts     []Mount
	Resources  Resources

	// Payload is the job's free-form data, passed through uninterpreted.
	// The plugin adapter forwards it to the plugin.
	Payload json.RawMessage

	Stdin  io.Reader // nil means empty input
	Stdout io.Writer // receives the task's stdout byte for byte
	Stderr io.Writer // receives the task's stderr byte for byte

	// Timeout bounds the attempt; zero means none. When it passes the
	// adapter stops the task (polite signal, then forced after Grace) and
	// reports ExitTimeout with a reason that names the timeout.
	Timeout time.Duration
	// Grace is the time between the polite and the forced stop. Zero means
	// DefaultGrace.
	Grace time.Duration

	// Started, if not nil, is called once the workload exists, before it
	// can produce output, with a handle from which [Reaper.Reap] can find
	// it again after the peer process crashed. It must not block.
	Started func(handle string)
}

// Result is how a task ended.
type Result struct {
	// ExitCode is the workload's exit status, or one of ExitTimeout,
	// ExitCancelled, ExitNotRun.
	ExitCode int
	// Reason is a short human-readable account: "exit status 3",
	// "timeout after 5s", "cancelled", "killed by signal 9",
	// "image busybox:1 not present and no registry reachable".
	// It is empty for a clean exit 0.
	Reason    string
	TimedOut  bool
	Cancelled bool
}

// Info is what an adapter advertises about itself.
type Info struct {
	// Version is advertised as the label NAME=VERSION (for example
	// docker=28.2.2), so jobs can require versions. Empty means the
	// adapter has no version of its own and the label is NAME=true.
	Version string
	// Labels are extra labels, conventionally prefixed with the adapter's
	// name (docker.os=linux).
	Labels map[string]string
}

// Executor runs tasks. Implementations are safe for concurrent use: the
// scheduler runs several tasks at once on one executor.
type Executor interface {
	// Name is the name jobs select the executor by ("exec", "docker").
	Name() string

	// Probe reports whether the backend can be used now and what to
	// advertise. It returns an error wrapping ErrUnavailable when it cannot.
	// The scheduler calls it at start and periodically; it should answer
	// within a few seconds.
	Probe(ctx context.Context) (Info, error)

	// Run runs t to completion and blocks until the workload is gone.
	// Cancelling ctx stops the task (polite signal, then forced after
	// t.Grace) and yields a Result with Cancelled set. A non-nil error
	// means the task could not be run at all; Result then carries
	// ExitNotRun and the reason.
	Run(ctx context.Context, t Task) (Result, error)
}

// Reaper is implemented by executors whose workloads can outlive the peer
// process that started them (processes, containers).
type Reaper interface {
	// Reap ends the workload that Task.Started reported as handle if it is
	// still running, and returns once it is gone. A workload already gone,
	// or a handle naming something that is no longer the same workload (a
	// reused PID), is not an error.
	Reap(ctx context.Context, handle string) error
}
