// Package wasm is the executor adapter that runs WASI preview 1 modules
// inside the peer process with wazero, granting them nothing of the host
// beyond the directories a task mounts.
//
// A task's module runs with its argv, env, stdin, stdout and stderr, a real
// clock and a real random source. It has no filesystem except the task's
// mounts and no sockets. Its linear memory is bounded by the task's memory
// resource (capped by [Config.MaxMemory]).
//
// How a task ends maps to a [executor.Result] like this:
//   - proc_exit(n), or returning from _start (n = 0): exit code n;
//   - a trap (unreachable, out of bounds memory access, ...): exit code
//     [ExitTrap] and a Reason that starts with "trap: " and names it;
//   - a refused memory grow followed by a failure: the module's exit code
//     and a Reason that names the memory limit;
//   - the task's timeout: [executor.ExitTimeout], "timeout after 2s";
//   - the context cancelled or the executor closed: [executor.ExitCancelled],
//     "cancelled";
//   - a module that cannot run (bad hash, not wasm, a missing import, an
//     initial memory above the limit): [executor.ExitNotRun] and a non-nil
//     error from Run.
//
// A module is stopped at once when its timeout passes or its context is
// cancelled: there is no polite signal in WASI, so Task.Grace does not
// apply. The stop takes effect at the module's next function call or loop
// iteration; a module blocked writing to a Task.Stdout that never returns
// stays blocked until the write returns.
package wasm

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/blixard/blixard/executor"
)

// Name is the executor name jobs select this adapter by.
const Name = "wasm"

// ExitTrap is the exit code reported for a module that trapped
// (unreachable, out of bounds memory access, integer divide by zero, ...).
// Its Reason starts with "trap: " and tells the trap apart from a module
// that called proc_exit(1).
const ExitTrap = 1

// DefaultMaxMemory is the upper bound of a task's linear memory when
// Config.MaxMemory is zero.
const DefaultMaxMemory = 256 << 20

const (
	pageSize = 64 << 10
	// maxPages is the most a 32-bit linear memory can address (4 GiB).
	maxPages = 1 << 16
	// wazeroModule is the module path looked up in the build info.
	wazeroModule = "github.com/tetratelabs/wazero"
	// fallbackVersion is advertised when the build info has no wazero.
	fallbackVersion = "1.12.0"
)

// errClosed is the cause given to the contexts of tasks that Close ends.
var errClosed = errors.New("wasm executor closed")

// Config configures a [Wasm] executor. The zero value is usable.
type Config struct {
	// CacheDir keeps compiled modules on disk, so a restarted peer does
	// not compile a module again. Empty keeps them in memory only, for
	// the life of the executor.
	CacheDir string

	// MaxMemory bounds the linear memory of any task, in bytes, whatever
	// its Resources.Memory asks for. Zero means DefaultMaxMemory; at most
	// 4 GiB, the most a 32-bit module can address.
	MaxMemory int64

	// Logger receives debug records about compiles and task ends. Nil
	// discards them.
	Logger *slog.Logger
}

// Wasm runs WASI preview 1 modules. It implements [executor.Executor].
// It is safe for concurrent use: tasks share compiled modules but each runs
// in its own module instance with its own memory.
type Wasm struct {
	maxMemory int64
	log       *slog.Logger
	runtime   wazero.Runtime
	cache     wazero.CompilationCache
	modules   *moduleCache

	// compiles counts modules compiled from their bytes (cache misses).
	compiles atomic.Int64

	mu      sync.Mutex
	closed  bool                               // guarded by mu
	cancels map[uint64]context.CancelCauseFunc // guarded by mu
	nextID  uint64                             // guarded by mu
	wg      sync.WaitGroup                     // running tasks

	closeMu sync.Mutex // serializes Close
	done    bool       // guarded by closeMu; resources released
}

// New returns a wasm executor. It creates CacheDir if needed. It returns an
// error naming the field when cfg is invalid or the cache directory cannot
// be used. Close releases what it holds.
func New(cfg Config) (*Wasm, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	maxMemory := cfg.MaxMemory
	if maxMemory == 0 {
		maxMemory = DefaultMaxMemory
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	cache := wazero.NewCompilationCache()
	if cfg.CacheDir != "" {
		var err error
		cache, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("open wasm cache dir %s: %w",
				cfg.CacheDir, err)
		}
	}

	// The runtime's own limit stays at 4 GiB: each task's memory
	// allocator enforces the task's limit, so a refused grow is seen.
	ctx := context.Background()
	rc := wazero.NewRuntimeConfig().
		WithCompilationCache(cache).
		WithCloseOnContextDone(true)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		_ = cache.Close(ctx)
		return nil, fmt.Errorf("instantiate wasi: %w", err)
	}

	w := &Wasm{
		maxMemory: maxMemory,
		log:       log.With("component", "executor", "executor", Name),
		runtime:   rt,
		cache:     cache,
		cancels:   make(map[uint64]context.CancelCauseFunc),
	}
	w.modules = newModuleCache(maxCachedModules, w.compile)
	return w, nil
}

func (c Config) validate() error {
	switch {
	case c.MaxMemory < 0:
		return fmt.Errorf("wasm config: max_memory %d is negative",
			c.MaxMemory)
	case c.MaxMemory > 0 && c.MaxMemory < pageSize:
		return fmt.Errorf("wasm config: max_memory %d is below one "+
			"64 KiB page", c.MaxMemory)
	case c.MaxMemory > maxPages*pageSize:
		return fmt.Errorf("wasm config: max_memory %d is above 4 GiB",
			c.MaxMemory)
	}
	return nil
}

// Name returns "wasm". It is safe for concurrent use.
func (w *Wasm) Name() string { return Name }

// Probe reports the wazero version and the WASI flavour. It does not
// block. It returns an error wrapping [executor.ErrUnavailable] once the
// executor is closed. It is safe for concurrent use.
func (w *Wasm) Probe(ctx context.Context) (executor.Info, error) {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return executor.Info{}, fmt.Errorf("%w: %w",
			executor.ErrUnavailable, errClosed)
	}
	return executor.Info{
		Version: wazeroVersion(),
		Labels:  map[string]string{"wasm.wasi": "preview1"},
	}, nil
}

// wazeroVersion returns the version of the wazero module linked into this
// binary, without the leading "v".
func wazeroVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path != wazeroModule {
				continue
			}
			if dep.Replace != nil {
				dep = dep.Replace
			}
			if v := strings.TrimPrefix(dep.Version, "v"); v != "" &&
				v != "(devel)" {
				return v
			}
		}
	}
	return fallbackVersion
}

// Close stops the tasks still running (they end as cancelled), waits for
// them until ctx is done, and releases the compiled modules and the
// runtime. Runs after Close fail with ExitNotRun. Close is idempotent and
// safe for concurrent use.
func (w *Wasm) Close(ctx context.Context) error {
	w.closeMu.Lock()
	defer w.closeMu.Unlock()
	if w.done {
		return nil
	}

	w.mu.Lock()
	w.closed = true
	for _, cancel := range w.cancels {
		cancel(errClosed)
	}
	w.mu.Unlock()

	waited := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		return fmt.Errorf("close wasm executor: wait for tasks: %w",
			ctx.Err())
	}

	w.done = true
	w.modules.closeAll(ctx)
	err := w.runtime.Close(ctx)
	if cerr := w.cache.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close wasm runtime: %w", err)
	}
	return nil
}

// register records a starting task so Close can stop it, and returns the
// task's id. It returns false once the executor is closed.
func (w *Wasm) register(cancel context.CancelCauseFunc) (uint64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, false
	}
	w.nextID++
	w.cancels[w.nextID] = cancel
	w.wg.Add(1)
	return w.nextID, true
}

// unregister forgets a task that register recorded.
func (w *Wasm) unregister(id uint64) {
	w.mu.Lock()
	delete(w.cancels, id)
	w.mu.Unlock()
	w.wg.Done()
}

// loadModule reads the module file and checks it against wantHash.
func loadModule(path, wantHash string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read module: %w", err)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != wantHash {
		return nil, fmt.Errorf("module %s has sha256 %s, task "+
			"module_hash wants %s", path, got, wantHash)
	}
	return b, nil
}

// randReader is the guest's random source: the host's CSPRNG.
var randReader = rand.Reader
