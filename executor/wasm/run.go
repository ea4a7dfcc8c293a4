package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/blixard/blixard/executor"
)

// Run runs t's module to completion and blocks until its instance is gone.
//
// t.Module is read and checked against t.ModuleHash on every run; the
// compiled code is cached by that hash. t.Command is the argv the module
// sees (empty means the module file's base name alone). t.Mounts are the
// only directories it can open; t.Resources.Memory, rounded down to 64 KiB
// pages and capped by Config.MaxMemory, bounds its linear memory. t.Image,
// t.Workdir, t.Dir, t.Resources.CPU and t.Grace are not used.
//
// t.Started, if set, is called with an empty handle just before the module
// starts: a wasm task lives inside the peer process and cannot outlive it,
// so there is nothing to reap.
//
// A context already done when Run is called starts nothing and yields a
// cancelled Result. Run is safe for concurrent use.
func (w *Wasm) Run(ctx context.Context, t executor.Task) (
	executor.Result, error) {
	if ctx.Err() != nil {
		return executor.Result{ExitCode: executor.ExitCancelled,
			Reason: "cancelled", Cancelled: true}, nil
	}
	stopCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	id, ok := w.register(stop)
	if !ok {
		return notRun(fmt.Errorf("run task: %w", errClosed))
	}
	defer w.unregister(id)

	limit, err := w.validate(t)
	if err != nil {
		return notRun(err)
	}
	hash := strings.ToLower(t.ModuleHash)
	bin, err := loadModule(t.Module, hash)
	if err != nil {
		return notRun(err)
	}
	mod, release, err := w.modules.acquire(stopCtx, hash, bin)
	if err != nil {
		return notRun(fmt.Errorf("compile module %s: %w", t.Module, err))
	}
	defer release()
	if err := checkInitialMemory(mod, limit); err != nil {
		return notRun(err)
	}

	runCtx, cancelTimeout := stopCtx, context.CancelFunc(func() {})
	if t.Timeout > 0 {
		runCtx, cancelTimeout = context.WithTimeout(stopCtx, t.Timeout)
	}
	defer cancelTimeout()

	started := time.Now()
	alloc := &allocator{limit: limit}
	err = w.instantiate(runCtx, t, mod, alloc)
	res, err := w.result(t, err, stopCtx, runCtx, alloc)
	w.log.Debug("task ended", "job_id", t.JobID, "attempt", t.Attempt,
		"module_hash", hash, "exit_code", res.ExitCode,
		"reason", res.Reason, "duration", time.Since(started))
	return res, err
}

// instantiate runs the module's _start in a fresh instance and closes the
// instance again. It returns the error wazero reported, nil for exit 0.
func (w *Wasm) instantiate(ctx context.Context, t executor.Task,
	mod wazero.CompiledModule, alloc *allocator) error {
	stdin, closeStdin := guestStdin(ctx, t.Stdin)
	defer closeStdin()
	cfg := moduleConfig(ctx, t, stdin)

	if t.Started != nil {
		t.Started("")
	}
	ictx := experimental.WithMemoryAllocator(ctx, alloc)
	inst, err := w.runtime.InstantiateModule(ictx, mod, cfg)
	if inst != nil {
		// _start returned without proc_exit: the instance is still open.
		_ = inst.Close(context.Background())
	}
	return err
}

// result maps how the instance ended to a Result. stopCtx is done when
// the caller cancelled or the executor closed, runCtx also when the
// timeout passed.
func (w *Wasm) result(t executor.Task, err error, stopCtx,
	runCtx context.Context, alloc *allocator) (executor.Result, error) {
	switch {
	case stopCtx.Err() != nil:
		reason := "cancelled"
		if errors.Is(context.Cause(stopCtx), errClosed) {
			reason = "cancelled: " + errClosed.Error()
		}
		return executor.Result{ExitCode: executor.ExitCancelled,
			Reason: reason, Cancelled: true}, nil
	case runCtx.Err() != nil:
		return executor.Result{ExitCode: executor.ExitTimeout,
			Reason:   "timeout after " + t.Timeout.String(),
			TimedOut: true}, nil
	}

	var res executor.Result
	var exit *sys.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.ExitCode = int(exit.ExitCode())
		res.Reason = fmt.Sprintf("exit status %d", res.ExitCode)
	case trapName(err) != "":
		res.ExitCode = ExitTrap
		res.Reason = "trap: " + trapName(err)
		w.log.Debug("module trapped", "job_id", t.JobID,
			"attempt", t.Attempt, "error", err)
	default:
		return notRun(fmt.Errorf("instantiate module %s: %w", t.Module, err))
	}
	if refused := alloc.refused.Load(); refused > 0 && res.ExitCode != 0 {
		res.Reason = fmt.Sprintf("memory limit %s exceeded: grow to %s "+
			"refused (%s)", formatBytes(alloc.limit), formatBytes(refused),
			res.Reason)
	}
	return res, nil
}

// trapName returns the trap that err reports ("unreachable", "out of
// bounds memory access"), or "" when err is no trap.
func trapName(err error) string {
	const marker = "wasm error: "
	msg := err.Error()
	i := strings.Index(msg, marker)
	if i < 0 {
		return ""
	}
	name, _, _ := strings.Cut(msg[i+len(marker):], "\n")
	return strings.TrimSpace(name)
}

// moduleConfig builds the instance's view of the world: argv, env, stdio,
// clocks, randomness and the task's mounts, nothing else.
func moduleConfig(ctx context.Context, t executor.Task,
	stdin io.Reader) wazero.ModuleConfig {
	argv := t.Command
	if len(argv) == 0 {
		argv = []string{filepath.Base(t.Module)}
	}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithArgs(argv...).
		WithStdin(stdin).
		WithStdout(t.Stdout).
		WithStderr(t.Stderr).
		WithSysWalltime().
		WithSysNanotime().
		WithNanosleep(sleeper(ctx)).
		WithRandSource(randReader)

	keys := make([]string, 0, len(t.Env))
	for k := range t.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cfg = cfg.WithEnv(k, t.Env[k])
	}

	if len(t.Mounts) > 0 {
		fsc := wazero.NewFSConfig()
		for _, m := range t.Mounts {
			if m.ReadOnly {
				fsc = fsc.WithReadOnlyDirMount(m.Source, m.Target)
			} else {
				fsc = fsc.WithDirMount(m.Source, m.Target)
			}
		}
		cfg = cfg.WithFSConfig(fsc)
	}
	return cfg
}

// sleeper returns the guest's sleep, which wakes early when ctx is done so
// that a sleeping module is stopped at once.
func sleeper(ctx context.Context) sys.Nanosleep {
	return func(ns int64) {
		timer := time.NewTimer(time.Duration(ns))
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
		}
	}
}

// guestStdin returns the reader the module reads its stdin from. A reader
// that may block (a pipe, a network stream) is read through a pipe that is
// closed when ctx is done, so that a module waiting for input is stopped
// at once; the goroutine copying from r ends once r's pending Read
// returns. In-memory readers never block and are passed as they are.
func guestStdin(ctx context.Context, r io.Reader) (io.Reader, func()) {
	switch r.(type) {
	case nil, *bytes.Reader, *bytes.Buffer, *strings.Reader:
		return r, func() {}
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := io.Copy(pw, r)
		pw.CloseWithError(err)
	}()
	stopAfter := context.AfterFunc(ctx, func() {
		pr.CloseWithError(context.Cause(ctx))
	})
	return pr, func() {
		stopAfter()
		pr.Close()
	}
}

// validate checks the task fields this adapter uses and returns the
// task's memory limit in bytes.
func (w *Wasm) validate(t executor.Task) (uint64, error) {
	switch {
	case t.Module == "":
		return 0, errors.New("task module is empty")
	case !isSHA256(t.ModuleHash):
		return 0, fmt.Errorf("task module_hash %q is not a hex sha256 "+
			"(64 hex digits)", t.ModuleHash)
	case t.Timeout < 0:
		return 0, fmt.Errorf("task timeout %s is negative", t.Timeout)
	}
	for i, a := range t.Command {
		if strings.IndexByte(a, 0) >= 0 {
			return 0, fmt.Errorf("task command[%d] contains a NUL byte", i)
		}
	}
	for k, v := range t.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") ||
			strings.IndexByte(v, 0) >= 0 {
			return 0, fmt.Errorf("task env %q: a name must be non-empty "+
				"without '=' or NUL, a value without NUL", k)
		}
	}
	for i, m := range t.Mounts {
		if err := validateMount(m); err != nil {
			return 0, fmt.Errorf("task mounts[%d]: %w", i, err)
		}
	}
	return w.memoryLimit(t.Resources.Memory)
}

func validateMount(m executor.Mount) error {
	if !filepath.IsAbs(m.Source) {
		return fmt.Errorf("source %q is not an absolute path", m.Source)
	}
	if fi, err := os.Stat(m.Source); err != nil {
		return fmt.Errorf("source: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("source %s is not a directory", m.Source)
	}
	if !path.IsAbs(m.Target) || path.Clean(m.Target) != m.Target {
		return fmt.Errorf("target %q is not a clean absolute guest path",
			m.Target)
	}
	return nil
}

// memoryLimit returns the linear memory bound for a task that asks for
// req bytes: whole 64 KiB pages, at most the executor's MaxMemory.
func (w *Wasm) memoryLimit(req int64) (uint64, error) {
	limit := w.maxMemory
	switch {
	case req < 0:
		return 0, fmt.Errorf("task resources.memory %d is negative", req)
	case req > 0 && req < pageSize:
		return 0, fmt.Errorf("task resources.memory %d is below one "+
			"64 KiB page", req)
	case req > 0 && req < limit:
		limit = req
	}
	return uint64(limit) / pageSize * pageSize, nil
}

// checkInitialMemory refuses a module whose memory starts larger than
// limit.
func checkInitialMemory(mod wazero.CompiledModule, limit uint64) error {
	for name, def := range mod.ExportedMemories() {
		if initial := uint64(def.Min()) * pageSize; initial > limit {
			return fmt.Errorf("module memory %q starts at %s, above the "+
				"memory limit %s", name, formatBytes(initial),
				formatBytes(limit))
		}
	}
	return nil
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f',
			c >= 'A' && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// formatBytes renders n as MiB or KiB when it is a whole number of them.
func formatBytes(n uint64) string {
	switch {
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n > 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// notRun is the Result and error of a task that could not be started.
func notRun(err error) (executor.Result, error) {
	return executor.Result{ExitCode: executor.ExitNotRun,
		Reason: err.Error()}, err
}

// compile compiles a module's bytes; the module cache calls it on a miss.
func (w *Wasm) compile(ctx context.Context, hash string,
	bin []byte) (wazero.CompiledModule, error) {
	w.compiles.Add(1)
	start := time.Now()
	mod, err := w.runtime.CompileModule(context.WithoutCancel(ctx), bin)
	if err != nil {
		return nil, err
	}
	w.log.Debug("module compiled", "module_hash", hash,
		"bytes", len(bin), "duration", time.Since(start))
	return mod, nil
}
