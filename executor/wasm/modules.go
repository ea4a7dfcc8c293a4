package wasm

import (
	"context"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
)

// maxCachedModules bounds how many compiled modules stay in memory. Past
// it, the least recently used module that no task is running is dropped
// (and, with a CacheDir, reloaded from disk when it is needed again).
const maxCachedModules = 32

// compileFunc compiles a module's bytes.
type compileFunc func(ctx context.Context, hash string,
	bin []byte) (wazero.CompiledModule, error)

// moduleCache holds compiled modules by the hex SHA-256 of their bytes.
// Concurrent requests for a module that is not compiled yet wait for one
// compile. It is safe for concurrent use.
type moduleCache struct {
	max     int
	compile compileFunc

	mu      sync.Mutex
	entries map[string]*moduleEntry // guarded by mu
	tick    uint64                  // guarded by mu; orders uses
}

// moduleEntry is one compiled module, or one compile under way.
type moduleEntry struct {
	ready chan struct{} // closed once mod or err is set
	mod   wazero.CompiledModule
	err   error

	refs     int    // guarded by moduleCache.mu; tasks using mod
	lastUsed uint64 // guarded by moduleCache.mu
}

func newModuleCache(max int, compile compileFunc) *moduleCache {
	return &moduleCache{
		max:     max,
		compile: compile,
		entries: make(map[string]*moduleEntry),
	}
}

// acquire returns the compiled module for hash, compiling bin if it is
// not cached, and a release func the caller must call once the module's
// task is over. It blocks while the module compiles, until ctx is done.
func (c *moduleCache) acquire(ctx context.Context, hash string,
	bin []byte) (wazero.CompiledModule, func(), error) {
	c.mu.Lock()
	e, ok := c.entries[hash]
	if !ok {
		e = &moduleEntry{ready: make(chan struct{})}
		c.entries[hash] = e
	}
	e.refs++
	c.mu.Unlock()
	release := func() { c.release(hash, e) }

	if !ok {
		e.mod, e.err = c.compile(ctx, hash, bin)
		close(e.ready)
	}
	select {
	case <-e.ready:
	case <-ctx.Done():
		release()
		return nil, nil, ctx.Err()
	}
	if e.err != nil {
		release()
		return nil, nil, e.err
	}
	return e.mod, release, nil
}

// release drops a task's hold on e, forgets e if its compile failed, and
// evicts idle modules past the bound.
func (c *moduleCache) release(hash string, e *moduleEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.refs--
	c.tick++
	e.lastUsed = c.tick
	if e.refs == 0 && isReady(e) && e.err != nil &&
		c.entries[hash] == e {
		delete(c.entries, hash)
	}
	for len(c.entries) > c.max && c.evictOne() {
	}
}

// evictOne closes the least recently used idle module. It reports false
// when every module is in use. c.mu must be held.
func (c *moduleCache) evictOne() bool {
	var oldest string
	var found *moduleEntry
	for h, e := range c.entries {
		if e.refs > 0 || !isReady(e) {
			continue
		}
		if found == nil || e.lastUsed < found.lastUsed {
			oldest, found = h, e
		}
	}
	if found == nil {
		return false
	}
	delete(c.entries, oldest)
	if found.mod != nil {
		ctx, cancel := context.WithTimeout(context.Background(),
			5*time.Second)
		defer cancel()
		_ = found.mod.Close(ctx)
	}
	return true
}

// closeAll closes every compiled module. No task may be running.
func (c *moduleCache) closeAll(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, e := range c.entries {
		if isReady(e) && e.mod != nil {
			_ = e.mod.Close(ctx)
		}
		delete(c.entries, h)
	}
}

func isReady(e *moduleEntry) bool {
	select {
	case <-e.ready:
		return true
	default:
		return false
	}
}
