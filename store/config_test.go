package store

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	valid := DefaultConfig("/var/lib/blixard")
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // part of the error; empty for valid
	}{
		{"default", func(*Config) {}, ""},
		{"zero sizes mean defaults", func(c *Config) {
			*c = Config{Dir: "/d"}
		}, ""},
		{"in memory", func(c *Config) { *c = Config{InMemory: true} }, ""},
		{"no dir", func(c *Config) { c.Dir = "" }, "dir is required"},
		{"dir in memory", func(c *Config) { c.InMemory = true },
			`dir "/var/lib/blixard" must be empty`},
		{"small memtable", func(c *Config) { c.MemTableSize = 1000 },
			"mem_table_size 1000 is below the minimum of 1048576"},
		{"negative memtable", func(c *Config) { c.MemTableSize = -1 },
			"mem_table_size -1 is below"},
		{"huge memtable", func(c *Config) { c.MemTableSize = 2 << 30 },
			"mem_table_size 2147483648 is above the maximum of 1073741824"},
		{"value log file 2 GiB", func(c *Config) {
			c.ValueLogFileSize = 2 << 30
		}, "value_log_file_size 2147483648 is above the maximum"},
		{"small value log file", func(c *Config) {
			c.ValueLogFileSize = 4096
		}, "value_log_file_size 4096 is below"},
		{"small block cache", func(c *Config) { c.BlockCacheSize = 10 },
			"block_cache_size 10 is below"},
		{"negative index cache", func(c *Config) { c.IndexCacheSize = -5 },
			"index_cache_size -5 is below"},
		{"no memtables", func(c *Config) { c.NumMemtables = -1 },
			"num_memtables -1 is below the minimum of 1"},
		{"one compactor", func(c *Config) { c.NumCompactors = 1 },
			"num_compactors 1 is below the minimum of 2"},
		{"many compactors", func(c *Config) { c.NumCompactors = 100 },
			"num_compactors 100 is above the maximum of 64"},
		{"tiny gc interval", func(c *Config) {
			c.GCInterval = time.Microsecond
		}, "gc_interval 1µs is below the minimum of 1ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.modify(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Fatalf("Validate() = nil, want error containing %q",
					tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("Validate() = %q, want it to contain %q",
					err, tt.want)
			}
		})
	}
}

// TestOpenValidates checks that Open refuses a bad config before it
// touches the disk.
func TestOpenValidates(t *testing.T) {
	dir := t.TempDir() + "/never"
	cfg := DefaultConfig(dir)
	cfg.NumCompactors = 1
	if _, err := Open(cfg); err == nil ||
		!strings.Contains(err.Error(), "num_compactors") {
		t.Fatalf("Open = %v, want the num_compactors error", err)
	}
}

// TestSmallestConfigWorks opens a store at every lower bound and writes
// a value as large as it accepts.
func TestSmallestConfigWorks(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			cfg := testConfig(t, m.inMemory)
			cfg.MemTableSize = minMemTableSize
			cfg.ValueLogFileSize = minValueLogFileSize
			cfg.BlockCacheSize = minBlockCacheSize
			cfg.IndexCacheSize = 1
			cfg.NumMemtables = 1
			cfg.NumCompactors = minNumCompactors
			s := openTest(t, cfg)
			big := strings.Repeat("v", s.MaxValueSize())
			mustPut(t, s, "big", big)
			wantValue(t, s, "big", big)
		})
	}
}
