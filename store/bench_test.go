package store

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkPut measures one writer: every Put waits for its own fsync.
func BenchmarkPut(b *testing.B) {
	s := openTest(b, testConfig(b, false))
	value := make([]byte, 256)
	i := 0
	for b.Loop() {
		key := fmt.Appendf(nil, "job/%09d", i)
		i++
		if err := s.Put(key, value); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutParallel measures many concurrent writers. Badger gathers
// the commits that arrive while one write runs into the next and syncs
// their value log once, so the time per Put falls below BenchmarkPut's;
// it still syncs the memtable's write-ahead log once per commit, which
// bounds the gain.
func BenchmarkPutParallel(b *testing.B) {
	for _, writers := range []int{4, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := openTest(b, testConfig(b, false))
			value := make([]byte, 256)
			var next atomic.Int64
			// RunParallel starts parallelism*GOMAXPROCS goroutines.
			b.SetParallelism(max(1, writers/runtimeProcs()))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := fmt.Appendf(nil, "job/%09d", next.Add(1))
					if err := s.Put(key, value); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkUpdateBatch measures 100 writes in one Update, for comparison
// with as many separate Puts: ns/op is per Update, ns/write per write.
func BenchmarkUpdateBatch(b *testing.B) {
	const batch = 100
	s := openTest(b, testConfig(b, false))
	value := make([]byte, 256)
	i := 0
	for b.Loop() {
		err := s.Update(func(tx *Txn) error {
			for j := range batch {
				key := fmt.Appendf(nil, "job/%09d/%03d", i, j)
				if err := tx.Set(key, value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch),
		"ns/write")
}
