package store

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// recorder is a slog.Handler that keeps every record.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}

func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// count returns how many records have message msg.
func (r *recorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.records {
		if rec.Message == msg {
			n++
		}
	}
	return n
}

// badgerRecords returns how many records came from badger, by level.
func (r *recorder) badgerRecords() map[slog.Level]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	levels := map[slog.Level]int{}
	for _, rec := range r.records {
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "library" && a.Value.String() == "badger" {
				levels[rec.Level]++
			}
			return true
		})
	}
	return levels
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBadgerLogsAtDebug(t *testing.T) {
	rec := &recorder{}
	cfg := DefaultConfig(t.TempDir())
	cfg.Logger = slog.New(rec)
	s := openTest(t, cfg)
	mustPut(t, s, "k", "v")

	levels := rec.badgerRecords()
	if levels[slog.LevelDebug] == 0 {
		t.Errorf("no badger records at debug level; got %v", levels)
	}
	if levels[slog.LevelInfo] != 0 {
		t.Errorf("%d badger records at info level, want none",
			levels[slog.LevelInfo])
	}
}

func TestGarbageCollectionStopsOnClose(t *testing.T) {
	rec := &recorder{}
	cfg := DefaultConfig(t.TempDir())
	cfg.Logger = slog.New(rec)
	cfg.GCInterval = 5 * time.Millisecond
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	waitFor(t, "two value log gc runs", func() bool {
		return rec.count("value log gc") >= 2
	})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	after := rec.count("value log gc")
	time.Sleep(10 * cfg.GCInterval)
	if got := rec.count("value log gc"); got != after {
		t.Errorf("%d gc runs after Close, want none", got-after)
	}
}
