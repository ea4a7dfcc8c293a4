package wasm

import (
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

// allocator backs one task's linear memories and refuses to grow them past
// limit. The module sees a refused grow as memory.grow returning -1; most
// runtimes then fail with "out of memory", and refused tells Run why.
type allocator struct {
	limit   uint64        // bytes, a whole number of pages
	refused atomic.Uint64 // largest size refused, 0 if none
}

// Allocate implements experimental.MemoryAllocator.
func (a *allocator) Allocate(capacity, _ uint64) experimental.LinearMemory {
	return &linearMemory{a: a, buf: make([]byte, 0, min(capacity, a.limit))}
}

// linearMemory is one linear memory bounded by its allocator's limit.
type linearMemory struct {
	a  *allocator
	mu sync.Mutex
	// buf is the memory; guarded by mu. Bytes between len and cap were
	// never handed out and are still zero.
	buf []byte
	// sized is set once wazero has given the memory its initial size;
	// guarded by mu.
	sized bool
}

// Reallocate implements experimental.LinearMemory. It returns nil, which
// fails the grow, when size is past the limit.
func (m *linearMemory) Reallocate(size uint64) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	first := !m.sized
	m.sized = true
	if size > m.a.limit {
		m.refuse(size)
		if !first {
			return nil
		}
		// wazero cannot fail the initial size. Run checks exported
		// memories before it starts a module, so only a memory that
		// is neither exported nor usable by WASI gets here.
		m.buf = make([]byte, size)
		return m.buf
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	grown := make([]byte, size, min(max(size, 2*uint64(cap(m.buf))),
		m.a.limit))
	copy(grown, m.buf)
	m.buf = grown
	return m.buf
}

func (m *linearMemory) refuse(size uint64) {
	for {
		old := m.a.refused.Load()
		if size <= old || m.a.refused.CompareAndSwap(old, size) {
			return
		}
	}
}

// Free implements experimental.LinearMemory.
func (m *linearMemory) Free() {
	m.mu.Lock()
	m.buf = nil
	m.mu.Unlock()
}
