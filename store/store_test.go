package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// modes runs each storage test on disk and in memory.
var modes = []struct {
	name     string
	inMemory bool
}{
	{"disk", false},
	{"memory", true},
}

// testLogger sends warnings and errors to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	h := slog.NewTextHandler(t.Output(), &slog.HandlerOptions{
		Level: slog.LevelWarn,
	})
	return slog.New(h)
}

func testConfig(t testing.TB, inMemory bool) Config {
	t.Helper()
	if inMemory {
		return Config{InMemory: true, Logger: testLogger(t)}
	}
	cfg := DefaultConfig(t.TempDir())
	cfg.Logger = testLogger(t)
	return cfg
}

// openTest opens a store that is closed when the test ends.
func openTest(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func mustPut(t testing.TB, s *Store, key, value string) {
	t.Helper()
	if err := s.Put([]byte(key), []byte(value)); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

// wantValue fails unless key holds want.
func wantValue(t testing.TB, s *Store, key, want string) {
	t.Helper()
	got, err := s.Get([]byte(key))
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if string(got) != want {
		t.Fatalf("Get(%q) = %q, want %q", key, got, want)
	}
}

// wantAbsent fails unless key is absent.
func wantAbsent(t testing.TB, s *Store, key string) {
	t.Helper()
	got, err := s.Get([]byte(key))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", key, got, err)
	}
}

func TestPutGetDelete(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s := openTest(t, testConfig(t, m.inMemory))

			wantAbsent(t, s, "job/1")
			mustPut(t, s, "job/1", "queued")
			wantValue(t, s, "job/1", "queued")

			mustPut(t, s, "job/1", "running")
			wantValue(t, s, "job/1", "running")

			mustPut(t, s, "job/empty", "")
			wantValue(t, s, "job/empty", "")

			if err := s.Delete([]byte("job/1")); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			wantAbsent(t, s, "job/1")
			if err := s.Delete([]byte("job/never")); err != nil {
				t.Fatalf("Delete of an absent key: %v", err)
			}
		})
	}
}

func TestValuesAreCopies(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s := openTest(t, testConfig(t, m.inMemory))

			key, value := []byte("k"), []byte("original")
			if err := s.Put(key, value); err != nil {
				t.Fatalf("Put: %v", err)
			}
			copy(key, "x")
			copy(value, "XXXXXXXX")
			wantValue(t, s, "k", "original")

			got, err := s.Get([]byte("k"))
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			copy(got, "YYYYYYYY")
			wantValue(t, s, "k", "original")
		})
	}
}

func TestBadKeysAndValues(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s := openTest(t, testConfig(t, m.inMemory))
			tooBig := make([]byte, s.MaxValueSize()+1)
			tests := []struct {
				name       string
				key, value []byte
				want       string
			}{
				{"empty key", nil, []byte("v"), "key is empty"},
				{"long key", bytes.Repeat([]byte("k"), MaxKeySize+1),
					nil, "exceeds the limit of 4096"},
				{"reserved prefix", []byte("!badger!head"), nil,
					"reserved prefix"},
				{"big value", []byte("big"), tooBig,
					fmt.Sprintf("limit of %d", s.MaxValueSize())},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					err := s.Put(tt.key, tt.value)
					if err == nil || !strings.Contains(err.Error(), tt.want) {
						t.Fatalf("Put: got error %v, want one containing %q",
							err, tt.want)
					}
					if strings.Contains(err.Error(), "\n") {
						t.Errorf("error spans lines: %q", err)
					}
				})
			}
		})
	}
}

// collect scans and returns "key=value" strings in the order visited.
func collect(t *testing.T, s *Store, prefix, start string) []string {
	t.Helper()
	var got []string
	fn := func(k, v []byte) error {
		got = append(got, string(k)+"="+string(v))
		return nil
	}
	var err error
	if start == "" {
		err = s.Scan([]byte(prefix), fn)
	} else {
		err = s.ScanFrom([]byte(prefix), []byte(start), fn)
	}
	if err != nil {
		t.Fatalf("scan %q from %q: %v", prefix, start, err)
	}
	return got
}

func TestScan(t *testing.T) {
	tests := []struct {
		name, prefix, start string
		want                []string
	}{
		{"prefix", "job/", "",
			[]string{"job/1=a", "job/10=b", "job/2=c"}},
		{"all", "", "",
			[]string{"job=x", "job/1=a", "job/10=b", "job/2=c", "lease/1=d"}},
		{"no match", "peer/", "", nil},
		{"from inclusive", "job/", "job/10",
			[]string{"job/10=b", "job/2=c"}},
		{"from between keys", "job/", "job/11", []string{"job/2=c"}},
		{"from before prefix", "job/", "a",
			[]string{"job/1=a", "job/10=b", "job/2=c"}},
		{"from past prefix", "job/", "job/3", nil},
		{"from beyond prefix", "job/", "lease/", nil},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s := openTest(t, testConfig(t, m.inMemory))
			for _, kv := range [][2]string{{"job/2", "c"}, {"lease/1", "d"},
				{"job/1", "a"}, {"job", "x"}, {"job/10", "b"}} {
				mustPut(t, s, kv[0], kv[1])
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					got := collect(t, s, tt.prefix, tt.start)
					if fmt.Sprint(got) != fmt.Sprint(tt.want) {
						t.Errorf("got %q, want %q", got, tt.want)
					}
				})
			}
		})
	}
}

func TestScanStopsOnError(t *testing.T) {
	s := openTest(t, testConfig(t, true))
	for i := range 5 {
		mustPut(t, s, fmt.Sprintf("k%d", i), "v")
	}
	errStop := errors.New("stop")
	visited := 0
	err := s.Scan([]byte("k"), func(k, v []byte) error {
		visited++
		if string(k) == "k2" {
			return errStop
		}
		return nil
	})
	if err != errStop {
		t.Errorf("Scan error = %v, want the error fn returned", err)
	}
	if visited != 3 {
		t.Errorf("visited %d keys, want 3", visited)
	}
}

func TestUpdateIsAtomic(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s := openTest(t, testConfig(t, m.inMemory))
			mustPut(t, s, "a", "old")

			errAbort := errors.New("abort")
			err := s.Update(func(tx *Txn) error {
				for _, k := range []string{"a", "b", "c"} {
					if err := tx.Set([]byte(k), []byte("new")); err != nil {
						return err
					}
				}
				if err := tx.Delete([]byte("a")); err != nil {
					return err
				}
				return errAbort
			})
			if err != errAbort {
				t.Fatalf("Update = %v, want the error fn returned", err)
			}
			wantValue(t, s, "a", "old")
			wantAbsent(t, s, "b")
			wantAbsent(t, s, "c")

			err = s.Update(func(tx *Txn) error {
				if err := tx.Set([]byte("b"), []byte("new")); err != nil {
					return err
				}
				return tx.Set([]byte("c"), []byte("new"))
			})
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			wantValue(t, s, "b", "new")
			wantValue(t, s, "c", "new")
		})
	}
}

func TestTxnSeesOwnWrites(t *testing.T) {
	s := openTest(t, testConfig(t, true))
	mustPut(t, s, "p/1", "one")
	err := s.Update(func(tx *Txn) error {
		if err := tx.Set([]byte("p/2"), []byte("two")); err != nil {
			return err
		}
		if err := tx.Delete([]byte("p/1")); err != nil {
			return err
		}
		got, err := tx.Get([]byte("p/2"))
		if err != nil || string(got) != "two" {
			t.Errorf("tx.Get(p/2) = %q, %v; want \"two\"", got, err)
		}
		if _, err := tx.Get([]byte("p/1")); !errors.Is(err, ErrNotFound) {
			t.Errorf("tx.Get(p/1) error = %v, want ErrNotFound", err)
		}
		var keys []string
		err = tx.Scan([]byte("p/"), func(k, v []byte) error {
			keys = append(keys, string(k))
			return nil
		})
		if fmt.Sprint(keys) != "[p/2]" {
			t.Errorf("tx.Scan keys = %q, want [p/2]", keys)
		}
		return err
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func TestViewIsReadOnly(t *testing.T) {
	s := openTest(t, testConfig(t, true))
	err := s.View(func(tx *Txn) error {
		return tx.Set([]byte("k"), []byte("v"))
	})
	if !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Set in View = %v, want ErrReadOnly", err)
	}
	wantAbsent(t, s, "k")
}

// TestUpdateRetriesConflicts runs read-modify-write increments of one
// counter from many goroutines: conflicts are retried, and no successful
// increment is lost.
func TestUpdateRetriesConflicts(t *testing.T) {
	s := openTest(t, testConfig(t, false))
	const workers, each = 8, 25
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		succeeded int
	)
	for range workers {
		wg.Go(func() {
			for range each {
				err := s.Update(func(tx *Txn) error {
					return increment(tx, []byte("counter"))
				})
				switch {
				case err == nil:
					mu.Lock()
					succeeded++
					mu.Unlock()
				case !errors.Is(err, ErrConflict):
					t.Errorf("Update: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()

	if succeeded == 0 {
		t.Fatal("no increment succeeded")
	}
	wantValue(t, s, "counter", fmt.Sprint(succeeded))
	t.Logf("%d of %d increments committed", succeeded, workers*each)
}

func increment(tx *Txn, key []byte) error {
	n := 0
	v, err := tx.Get(key)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return err
	default:
		if _, err := fmt.Sscan(string(v), &n); err != nil {
			return err
		}
	}
	return tx.Set(key, []byte(fmt.Sprint(n+1)))
}

func TestTxnTooBig(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			cfg := testConfig(t, m.inMemory)
			cfg.MemTableSize = 1 << 20
			s := openTest(t, cfg)

			value := bytes.Repeat([]byte("v"), 1000)
			var setErr error
			err := s.Update(func(tx *Txn) error {
				for i := range 100000 {
					key := fmt.Appendf(nil, "bulk/%06d", i)
					if setErr = tx.Set(key, value); setErr != nil {
						return setErr
					}
				}
				return nil
			})
			if !errors.Is(err, ErrTxnTooBig) {
				t.Fatalf("Update = %v, want ErrTxnTooBig", err)
			}
			t.Logf("Update: %v", err)
			if !strings.Contains(err.Error(), "mem_table_size") {
				t.Errorf("error %q does not say what to raise", err)
			}
			n := 0
			s.Scan([]byte("bulk/"), func(k, v []byte) error {
				n++
				return nil
			})
			if n != 0 {
				t.Errorf("%d keys written by a failed transaction", n)
			}
		})
	}
}

func TestReopenKeepsData(t *testing.T) {
	cfg := testConfig(t, false)
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	// Values on both sides of the value-log threshold.
	big := strings.Repeat("b", int(cfg.withDefaults().valueThreshold())*2)
	for i := range 100 {
		mustPut(t, s, fmt.Sprintf("job/%03d", i), fmt.Sprint(i))
	}
	mustPut(t, s, "big", big)
	if err := s.Delete([]byte("job/050")); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openTest(t, cfg)
	for i := range 100 {
		key := fmt.Sprintf("job/%03d", i)
		if i == 50 {
			wantAbsent(t, s, key)
			continue
		}
		wantValue(t, s, key, fmt.Sprint(i))
	}
	wantValue(t, s, "big", big)
}

func TestOpenLockedInProcess(t *testing.T) {
	cfg := testConfig(t, false)
	openTest(t, cfg)

	_, err := Open(cfg)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	t.Logf("second Open: %v", err)
	if !strings.Contains(err.Error(), cfg.Dir) {
		t.Errorf("error %q does not name the directory %q", err, cfg.Dir)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			s, err := Open(testConfig(t, m.inMemory))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			var wg sync.WaitGroup
			for range 3 {
				wg.Go(func() {
					if err := s.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
				})
			}
			wg.Wait()
			if err := s.Close(); err != nil {
				t.Errorf("Close after Close: %v", err)
			}
		})
	}
}

func TestUseAfterClose(t *testing.T) {
	s, err := Open(testConfig(t, false))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	mustPut(t, s, "k", "v")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	noop := func(*Txn) error { return nil }
	visit := func(k, v []byte) error { return nil }
	calls := map[string]func() error{
		"Get": func() error {
			_, err := s.Get([]byte("k"))
			return err
		},
		"Put":      func() error { return s.Put([]byte("k"), []byte("v")) },
		"Delete":   func() error { return s.Delete([]byte("k")) },
		"Update":   func() error { return s.Update(noop) },
		"View":     func() error { return s.View(noop) },
		"Scan":     func() error { return s.Scan(nil, visit) },
		"ScanFrom": func() error { return s.ScanFrom(nil, []byte("a"), visit) },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, ErrClosed) {
				t.Errorf("%s after Close = %v, want ErrClosed", name, err)
			}
		})
	}
}

func TestTxnAfterItsFunction(t *testing.T) {
	s := openTest(t, testConfig(t, true))
	var kept *Txn
	if err := s.Update(func(tx *Txn) error { kept = tx; return nil }); err != nil {
		t.Fatalf("Update: %v", err)
	}
	visit := func(k, v []byte) error { return nil }
	calls := map[string]func() error{
		"Get": func() error {
			_, err := kept.Get([]byte("k"))
			return err
		},
		"Set":    func() error { return kept.Set([]byte("k"), nil) },
		"Delete": func() error { return kept.Delete([]byte("k")) },
		"Scan":   func() error { return kept.Scan(nil, visit) },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, ErrTxnDone) {
				t.Errorf("%s = %v, want ErrTxnDone", name, err)
			}
		})
	}
}
