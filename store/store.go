// Package store keeps durable records, bytes under keys, in a Badger
// database on the peer's data directory; it knows nothing of jobs.
package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Errors returned by the store. Callers test for them with errors.Is.
var (
	// ErrNotFound is returned, unwrapped, by Get when the key is absent.
	ErrNotFound = errors.New("key not found")

	// ErrClosed is returned by every method of a Store after Close.
	ErrClosed = errors.New("store is closed")

	// ErrLocked is returned by Open when another Store, in this process or
	// another, holds the data directory.
	ErrLocked = errors.New("directory is locked by another process")

	// ErrTxnTooBig is returned when a transaction holds more entries or
	// bytes than one commit can carry; the error says the limits.
	ErrTxnTooBig = errors.New("transaction too big")

	// ErrConflict is returned by Update when the transaction kept
	// conflicting with concurrent ones after every retry.
	ErrConflict = errors.New("transaction conflict")

	// ErrReadOnly is returned by a write on a Txn given by View.
	ErrReadOnly = errors.New("transaction is read-only")

	// ErrTxnDone is returned by a Txn used after its function returned.
	ErrTxnDone = errors.New("transaction used after its function returned")
)

// MaxKeySize is the longest key, in bytes, that the store accepts.
const MaxKeySize = 4096

// reservedPrefix starts badger's internal keys; user keys may not.
var reservedPrefix = []byte("!badger!")

const (
	lockFileName      = "blixard-store.lock"
	maxUpdateAttempts = 8
	maxBackoff        = 100 * time.Millisecond
	gcDiscardRatio    = 0.5
	maxGCRewrites     = 16 // bounds one GC run, and so how long Close waits
)

// Store is a durable key-value store. It is safe for concurrent use.
// Every write is fsynced before the call that made it returns.
type Store struct {
	db       *badger.DB
	lock     *dirLock // nil in memory
	log      *slog.Logger
	maxValue int

	mu     sync.Mutex
	closed bool // guarded by mu

	ops       sync.WaitGroup // calls in progress
	bg        sync.WaitGroup // the value-log GC goroutine
	done      chan struct{}  // closed by Close to stop bg
	closeOnce sync.Once
	closeErr  error

	updates    chan *updateReq // Update calls waiting for the committer
	committer  sync.WaitGroup
	stopCommit chan struct{} // closed once no Update call is in progress
}

// Open opens or creates the store that cfg describes, and starts its
// value-log garbage collection. It blocks while badger replays its logs.
// It fails with an error naming the directory when the directory cannot
// be created or written, and with ErrLocked when another Store holds it.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()

	var lock *dirLock
	if !cfg.InMemory {
		l, err := prepareDir(cfg.Dir)
		if err != nil {
			return nil, err
		}
		lock = l
	}

	db, err := badger.Open(cfg.badgerOptions())
	if err != nil {
		if lock != nil {
			lock.unlock()
		}
		return nil, fmt.Errorf("open store in %q: %w", cfg.Dir, err)
	}

	s := &Store{
		db:       db,
		lock:     lock,
		log:      newBadgerLogger(cfg.Logger).log,
		maxValue: int(cfg.ValueLogFileSize),
		done:     make(chan struct{}),

		updates:    make(chan *updateReq),
		stopCommit: make(chan struct{}),
	}
	s.committer.Add(1)
	go s.runCommitter(s.stopCommit)
	if cfg.InMemory {
		// Badger accepts a value of exactly the threshold in memory and
		// then panics looking for its value-log pointer.
		s.maxValue = int(cfg.valueThreshold()) - 1
	} else {
		s.bg.Add(1)
		go s.runGC(cfg.GCInterval)
	}
	s.log.Debug("store opened", "dir", cfg.Dir, "in_memory", cfg.InMemory)
	return s, nil
}

// prepareDir creates dir if needed, checks that files can be created in
// it and takes its lock.
func prepareDir(dir string) (*dirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: create directory %q: %w",
			dir, err)
	}
	if err := probeWritable(dir); err != nil {
		return nil, fmt.Errorf("open store: directory %q is not "+
			"writable: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open store in %q: %w", dir, err)
	}
	return lock, nil
}

func probeWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// Close stops garbage collection, waits for calls in progress and closes
// the database. It is idempotent: later calls wait for the first and
// return nil. It must not be called from inside a function passed to
// Update, View or Scan, which would wait for itself.
func (s *Store) Close() error {
	first := false
	s.closeOnce.Do(func() {
		first = true
		s.closeErr = s.close()
	})
	if !first {
		return nil
	}
	return s.closeErr
}

func (s *Store) close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()

	close(s.done)
	s.bg.Wait()
	s.ops.Wait()
	close(s.stopCommit)
	s.committer.Wait()

	err := s.db.Close()
	if s.lock != nil {
		err = errors.Join(err, s.lock.unlock())
	}
	if err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	s.log.Debug("store closed")
	return nil
}

// enter registers a call in progress, or reports false once the store is
// closed. Each true return must be paired with s.ops.Done.
func (s *Store) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.ops.Add(1)
	return true
}

// MaxValueSize returns the largest value, in bytes, that Set and Put
// accept: the value-log file size on disk, less in memory.
func (s *Store) MaxValueSize() int {
	return s.maxValue
}

// Get returns a copy of the value stored under key, or ErrNotFound.
// It is safe for concurrent use.
func (s *Store) Get(key []byte) ([]byte, error) {
	var value []byte
	err := s.View(func(tx *Txn) error {
		v, err := tx.Get(key)
		value = v
		return err
	})
	return value, err
}

// Put stores value under key, replacing any value there. The write is on
// disk when Put returns. Put keeps no reference to key or value.
func (s *Store) Put(key, value []byte) error {
	return s.Update(func(tx *Txn) error {
		return tx.Set(key, value)
	})
}

// Delete removes key; deleting an absent key is not an error. The delete
// is on disk when Delete returns.
func (s *Store) Delete(key []byte) error {
	return s.Update(func(tx *Txn) error {
		return tx.Delete(key)
	})
}

// Update runs fn in a read-write transaction and commits it if fn returns
// nil; if fn returns an error, nothing is written and that error is
// returned as is. The commit is on disk when Update returns. When the
// commit conflicts with a concurrent transaction that wrote what fn read,
// Update runs fn again on fresh data, a few times at most, so fn must
// have no effects outside tx.
//
// Badger writes the value log of concurrent commits with one sync, but it
// syncs the memtable's write-ahead log once per commit, so many writes go
// faster in one Update than in many concurrent ones.
func (s *Store) Update(fn func(tx *Txn) error) error {
	if !s.enter() {
		return ErrClosed
	}
	defer s.ops.Done()
	r := &updateReq{fn: fn, done: make(chan error, 1)}
	s.updates <- r
	return <-r.done
}

// updateAlone runs fn in a transaction of its own, retrying conflicts.
func (s *Store) updateAlone(fn func(tx *Txn) error) error {
	for attempt := 1; ; attempt++ {
		conflict, err := s.updateOnce(fn)
		if !conflict {
			return err
		}
		if attempt == maxUpdateAttempts {
			return fmt.Errorf("update: %w after %d attempts",
				ErrConflict, attempt)
		}
		// A random pause, growing with each loss, lets the winners of
		// the conflict move on.
		time.Sleep(rand.N(min(time.Millisecond<<attempt, maxBackoff)))
	}
}

// updateOnce runs one attempt of Update and reports whether its commit
// lost a conflict.
func (s *Store) updateOnce(fn func(tx *Txn) error) (bool, error) {
	btx := s.db.NewTransaction(true)
	defer btx.Discard()

	tx := &Txn{tx: btx, s: s}
	err := fn(tx)
	tx.done = true
	if err != nil {
		return false, err
	}

	switch err := btx.Commit(); {
	case err == nil:
		return false, nil
	case errors.Is(err, badger.ErrConflict):
		return true, err
	case errors.Is(err, badger.ErrTxnTooBig):
		return false, fmt.Errorf("commit: %w", s.tooBig())
	default:
		return false, fmt.Errorf("commit: %w", err)
	}
}

// View runs fn in a read-only transaction that sees one consistent
// snapshot, and returns fn's error as is.
func (s *Store) View(fn func(tx *Txn) error) error {
	if !s.enter() {
		return ErrClosed
	}
	defer s.ops.Done()

	btx := s.db.NewTransaction(false)
	defer btx.Discard()

	tx := &Txn{tx: btx, s: s}
	err := fn(tx)
	tx.done = true
	return err
}

// Scan calls fn for every key that starts with prefix, in key order, on
// one snapshot. An empty prefix scans every key. The key and value passed
// to fn are valid only during the call; fn copies what it keeps. An error
// from fn stops the scan and is returned as is.
func (s *Store) Scan(prefix []byte,
	fn func(key, value []byte) error) error {
	return s.View(func(tx *Txn) error {
		return tx.Scan(prefix, fn)
	})
}

// ScanFrom is Scan that starts at start (inclusive) instead of at the
// first key with prefix. A start before prefix starts at prefix; a start
// past every key with prefix visits nothing.
func (s *Store) ScanFrom(prefix, start []byte,
	fn func(key, value []byte) error) error {
	return s.View(func(tx *Txn) error {
		return tx.ScanFrom(prefix, start, fn)
	})
}

// tooBig returns ErrTxnTooBig with the limits of this store.
func (s *Store) tooBig() error {
	return fmt.Errorf("%w: limit is %d entries or %d bytes per "+
		"transaction (raise mem_table_size)", ErrTxnTooBig,
		s.db.MaxBatchCount(), s.db.MaxBatchSize())
}

// checkKey validates a key to be written or read.
func checkKey(key []byte) error {
	switch {
	case len(key) == 0:
		return errors.New("key is empty")
	case len(key) > MaxKeySize:
		return fmt.Errorf("key %s of %d bytes exceeds the limit of %d",
			quoteKey(key), len(key), MaxKeySize)
	case bytes.HasPrefix(key, reservedPrefix):
		return fmt.Errorf("key %s uses the reserved prefix %q",
			quoteKey(key), reservedPrefix)
	}
	return nil
}

// quoteKey quotes a key for an error message, cut to a readable length.
func quoteKey(key []byte) string {
	const show = 64
	if len(key) <= show {
		return strconv.Quote(string(key))
	}
	return strconv.Quote(string(key[:show])) + "..."
}
