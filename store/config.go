package store

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Sizing defaults, chosen for a small peer such as an edge device. A peer
// with memory to spare raises them through the matching [Config] field.
const (
	DefaultMemTableSize     = 8 << 20
	DefaultNumMemtables     = 2
	DefaultValueLogFileSize = 16 << 20
	DefaultBlockCacheSize   = 8 << 20
	DefaultIndexCacheSize   = 4 << 20
	DefaultNumCompactors    = 2
	DefaultGCInterval       = 5 * time.Minute
)

// Bounds that [Config.Validate] enforces.
const (
	minMemTableSize     = 1 << 20
	maxMemTableSize     = 1 << 30
	minValueLogFileSize = 1 << 20
	maxValueLogFileSize = 2<<30 - 1 // badger maps two files' worth in 32 bits
	minBlockCacheSize   = 1 << 20
	maxCacheSize        = 64 << 30
	maxNumMemtables     = 64
	minNumCompactors    = 2 // badger refuses one and stalls with none
	maxNumCompactors    = 64
	minGCInterval       = time.Millisecond
)

// Config sizes and places a [Store]. A zero size, count or interval field
// takes its default, so Config{Dir: dir} is a valid configuration; negative
// values are rejected by [Config.Validate].
type Config struct {
	// Dir is the data directory for badger's files. It is created with mode
	// 0700 if missing. It is required unless InMemory is set, and must be
	// empty when InMemory is set.
	Dir string

	// InMemory keeps everything in memory and writes no files; data is
	// lost on Close. It is meant for tests.
	InMemory bool

	// MemTableSize is the size of one memtable in bytes (default 8 MiB).
	// Writes collect in a memtable before they are flushed to a table on
	// disk. It also bounds a transaction: one transaction may hold about
	// 15% of a memtable. A big peer that writes large batches raises it to
	// 64 MiB, badger's own default.
	MemTableSize int64

	// NumMemtables is how many memtables may be in memory at once (default
	// 2), counting the one being written. Writes stall while all of them
	// wait to be flushed. A big peer with bursty writes raises it to 5.
	NumMemtables int

	// ValueLogFileSize is the size of one value-log file in bytes (default
	// 16 MiB, at most 2 GiB - 1). Large values live in the value log, and
	// garbage collection reclaims space a file at a time, so smaller files
	// reclaim sooner. A big peer raises it to 1 GiB to have fewer files.
	ValueLogFileSize int64

	// BlockCacheSize is the memory in bytes for cached, decompressed table
	// blocks (default 8 MiB). A big peer with a read-heavy load raises it
	// to 256 MiB.
	BlockCacheSize int64

	// IndexCacheSize is the memory in bytes for cached table indexes and
	// bloom filters (default 4 MiB). Indexes beyond it are evicted and read
	// again from disk when needed. A big peer raises it to 64 MiB or more.
	IndexCacheSize int64

	// NumCompactors is how many compaction workers run (default 2, the
	// least badger allows). A big peer with many cores raises it to 4.
	NumCompactors int

	// GCInterval is how often value-log garbage collection runs (default
	// 5 minutes). It does not run in memory.
	GCInterval time.Duration

	// Logger receives badger's messages: its errors at Error, its warnings
	// at Warn, and everything else at Debug. Nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration for a small peer that keeps its
// data in dir, with every default spelled out.
func DefaultConfig(dir string) Config {
	return Config{
		Dir:              dir,
		MemTableSize:     DefaultMemTableSize,
		NumMemtables:     DefaultNumMemtables,
		ValueLogFileSize: DefaultValueLogFileSize,
		BlockCacheSize:   DefaultBlockCacheSize,
		IndexCacheSize:   DefaultIndexCacheSize,
		NumCompactors:    DefaultNumCompactors,
		GCInterval:       DefaultGCInterval,
	}
}

// Validate reports the first field that is out of bounds, naming the field
// and its limit. Zero fields are valid: they mean the default.
func (c Config) Validate() error {
	switch {
	case c.InMemory && c.Dir != "":
		return fmt.Errorf("store config: dir %q must be empty when "+
			"in_memory is set", c.Dir)
	case !c.InMemory && c.Dir == "":
		return errors.New("store config: dir is required unless " +
			"in_memory is set")
	}
	checks := []error{
		checkSize("mem_table_size", c.MemTableSize,
			minMemTableSize, maxMemTableSize),
		checkSize("value_log_file_size", c.ValueLogFileSize,
			minValueLogFileSize, maxValueLogFileSize),
		checkSize("block_cache_size", c.BlockCacheSize,
			minBlockCacheSize, maxCacheSize),
		checkSize("index_cache_size", c.IndexCacheSize, 1, maxCacheSize),
		checkSize("num_memtables", int64(c.NumMemtables),
			1, maxNumMemtables),
		checkSize("num_compactors", int64(c.NumCompactors),
			minNumCompactors, maxNumCompactors),
	}
	if c.GCInterval != 0 && c.GCInterval < minGCInterval {
		checks = append(checks, fmt.Errorf(
			"store config: gc_interval %v is below the minimum of %v",
			c.GCInterval, minGCInterval))
	}
	return firstError(checks)
}

// checkSize reports whether v, unless zero, lies within [lo, hi].
func checkSize(field string, v, lo, hi int64) error {
	switch {
	case v == 0:
		return nil
	case v < lo:
		return fmt.Errorf("store config: %s %d is below the minimum of %d",
			field, v, lo)
	case v > hi:
		return fmt.Errorf("store config: %s %d is above the maximum of %d",
			field, v, hi)
	}
	return nil
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig(c.Dir)
	if c.MemTableSize == 0 {
		c.MemTableSize = d.MemTableSize
	}
	if c.NumMemtables == 0 {
		c.NumMemtables = d.NumMemtables
	}
	if c.ValueLogFileSize == 0 {
		c.ValueLogFileSize = d.ValueLogFileSize
	}
	if c.BlockCacheSize == 0 {
		c.BlockCacheSize = d.BlockCacheSize
	}
	if c.IndexCacheSize == 0 {
		c.IndexCacheSize = d.IndexCacheSize
	}
	if c.NumCompactors == 0 {
		c.NumCompactors = d.NumCompactors
	}
	if c.GCInterval == 0 {
		c.GCInterval = d.GCInterval
	}
	return c
}

// maxBatchSize is the most bytes badger accepts in one transaction, which
// it derives from the memtable size.
func (c Config) maxBatchSize() int64 {
	return c.MemTableSize * 15 / 100
}

// valueThreshold is the value size from which badger moves a value out of
// the tree into the value log. A quarter of a transaction keeps several
// values of that size per transaction possible. In memory there is no value
// log, so the threshold is also the largest value accepted, and it is set
// higher.
func (c Config) valueThreshold() int64 {
	if c.InMemory {
		return min(1<<20, c.maxBatchSize()/2)
	}
	return min(64<<10, c.maxBatchSize()/4)
}

// badgerOptions translates a validated c, with defaults applied, into
// badger's options.
func (c Config) badgerOptions() badger.Options {
	opts := badger.DefaultOptions(c.Dir).
		WithInMemory(c.InMemory).
		WithSyncWrites(true).
		WithMemTableSize(c.MemTableSize).
		WithNumMemtables(c.NumMemtables).
		WithValueLogFileSize(c.ValueLogFileSize).
		WithBlockCacheSize(c.BlockCacheSize).
		WithIndexCacheSize(c.IndexCacheSize).
		WithNumCompactors(c.NumCompactors).
		WithValueThreshold(c.valueThreshold()).
		WithLogger(newBadgerLogger(c.Logger))
	if c.InMemory {
		opts = opts.WithDir("").WithValueDir("")
	}
	return opts
}
