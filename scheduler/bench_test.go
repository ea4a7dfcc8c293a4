package scheduler_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blixard/blixard/executor"
	"github.com/blixard/blixard/scheduler"
)

// The benchmarks run real peers: libp2p over QUIC on loopback and Badger
// stores on disk with synced writes, as a deployed peer has.

// benchListen is where benchmark peers listen: QUIC on a free loopback
// port.
const benchListen = "/ip4/127.0.0.1/udp/0/quic-v1"

// benchWait bounds every wait of a benchmark for the mesh or a job.
const benchWait = 30 * time.Second

// startRecorder is the noop executor, and it notes when each job first
// starts to run. It is safe for concurrent use.
type startRecorder struct {
	*executor.Noop

	mu      sync.Mutex
	starts  map[string]time.Time      // guarded by mu; first start per job
	waiters map[string]chan time.Time // guarded by mu
}

func newStartRecorder() *startRecorder {
	return &startRecorder{
		Noop:    executor.NewNoop(),
		starts:  make(map[string]time.Time),
		waiters: make(map[string]chan time.Time),
	}
}

// Run notes the start of t's job, then acts t out as noop does.
func (r *startRecorder) Run(ctx context.Context,
	t executor.Task) (executor.Result, error) {
	now := time.Now()
	r.mu.Lock()
	if _, seen := r.starts[t.JobID]; !seen {
		r.starts[t.JobID] = now
		if ch := r.waiters[t.JobID]; ch != nil {
			ch <- now
			delete(r.waiters, t.JobID)
		}
	}
	r.mu.Unlock()
	return r.Noop.Run(ctx, t)
}

// started blocks until job id has started here, and returns when it did.
func (r *startRecorder) started(ctx context.Context,
	id string) (time.Time, error) {
	r.mu.Lock()
	if at, ok := r.starts[id]; ok {
		r.mu.Unlock()
		return at, nil
	}
	ch := make(chan time.Time, 1)
	r.waiters[id] = ch
	r.mu.Unlock()
	select {
	case at := <-ch:
		return at, nil
	case <-ctx.Done():
		return time.Time{}, fmt.Errorf("start of job %s: %w", id, ctx.Err())
	}
}

// benchLogger sends warnings and errors of a peer to tb.Log until the
// benchmark's cleanup ends, and drops them after.
func benchLogger(tb testing.TB, name string) *slog.Logger {
	w := &benchLogWriter{tb: tb}
	tb.Cleanup(func() { w.done.Store(true) }) // runs after the peers close
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn})
	return slog.New(h).With("peer_name", name)
}

type benchLogWriter struct {
	tb   testing.TB
	done atomic.Bool
}

func (w *benchLogWriter) Write(b []byte) (int, error) {
	if !w.done.Load() {
		w.tb.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

// startBenchMesh starts one libp2p peer per config on loopback, the later
// ones joining the first with its token, and waits until every peer sees
// all the others. DataDir, Listen, Join and Logger are filled in. The
// peers close when the benchmark ends.
func startBenchMesh(b *testing.B, cfgs ...scheduler.Config) []*scheduler.Peer {
	b.Helper()
	base := b.TempDir()
	var peers []*scheduler.Peer
	for i, cfg := range cfgs {
		name := fmt.Sprintf("p%d", i)
		cfg.DataDir = filepath.Join(base, name)
		cfg.Listen = []string{benchListen}
		cfg.Logger = benchLogger(b, name)
		if i > 0 {
			cfg.Join = peers[0].Token()
		}
		ctx, cancel := context.WithTimeout(context.Background(), benchWait)
		p, err := scheduler.New(ctx, cfg)
		cancel()
		if err != nil {
			b.Fatalf("start peer %s: %v", name, err)
		}
		b.Cleanup(func() {
			if err := p.Close(); err != nil {
				b.Errorf("close peer %s: %v", name, err)
			}
		})
		peers = append(peers, p)
	}
	benchPoll(b, "every peer to see the others", func() bool {
		for _, p := range peers {
			if len(p.Peers()) != len(peers) {
				return false
			}
		}
		return true
	})
	return peers
}

// benchPoll polls cond until it holds, and fails b after benchWait.
func benchPoll(b *testing.B, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(benchWait)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %s waiting for %s", benchWait, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// advertises reports whether p knows a member other than itself with the
// label key=value.
func advertises(p *scheduler.Peer, key, value string) bool {
	for _, a := range p.Peers()[1:] {
		if a.Labels[key] == value {
			return true
		}
	}
	return false
}

// BenchmarkSubmitToStartRemote measures the time from Submit returning on
// peer A to the job's start on peer B, the only peer that meets the job's
// requirement. Jobs go one at a time. ns/op is the mean.
func BenchmarkSubmitToStartRemote(b *testing.B) {
	rec := newStartRecorder()
	peers := startBenchMesh(b,
		scheduler.Config{},
		scheduler.Config{
			Labels:    map[string]string{"bench": "remote"},
			Executors: []executor.Executor{rec},
		})
	a := peers[0]
	benchPoll(b, "peer A to hear of peer B's label", func() bool {
		return advertises(a, "bench", "remote")
	})
	spec := scheduler.Spec{
		Name:     "remote",
		Executor: "noop",
		Require:  []string{"bench=remote"},
	}
	ctx := context.Background()
	submitAndStart := func() time.Duration {
		id, err := a.Submit(ctx, spec)
		if err != nil {
			b.Fatalf("submit: %v", err)
		}
		submitted := time.Now()
		wctx, cancel := context.WithTimeout(ctx, benchWait)
		defer cancel()
		at, err := rec.started(wctx, id)
		if err != nil {
			b.Fatal(err)
		}
		return at.Sub(submitted)
	}
	// A first job proves the whole path, gossip included, before timing.
	submitAndStart()

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		lat = append(lat, submitAndStart())
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// reportLatency reports the mean of lat as ns/op, and its median and
// 90th percentile in milliseconds.
func reportLatency(b *testing.B, lat []time.Duration) {
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	slices.Sort(lat)
	b.ReportMetric(float64(sum.Nanoseconds())/float64(len(lat)), "ns/op")
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 90)), "p90-ms")
}

// percentile returns the nearest-rank q-th percentile of sorted.
func percentile(sorted []time.Duration, q int) time.Duration {
	i := (len(sorted)*q + 99) / 100 // ceil(n*q/100)
	return sorted[max(i-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkThroughputNoop submits b.N noop jobs to a three-peer mesh from
// several goroutines, spread over the three owners, and waits until every
// job has succeeded. It reports jobs/s end to end.
func BenchmarkThroughputNoop(b *testing.B) {
	cfg := scheduler.Config{Slots: 8}
	peers := startBenchMesh(b, cfg, cfg, cfg)
	spec := scheduler.Spec{Name: "throughput", Executor: "noop"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	const perOwner = 2
	workers := perOwner * len(peers)
	var failed atomic.Int64
	var firstErr sync.Once
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		owner := peers[w%len(peers)]
		n := b.N / workers
		if w < b.N%workers {
			n++
		}
		wg.Go(func() {
			if err := submitAndWait(ctx, owner, spec, n); err != nil {
				failed.Add(1)
				firstErr.Do(func() { b.Error(err) })
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.FailNow()
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
}

// submitAndWait submits n jobs to owner, then waits for each to succeed.
func submitAndWait(ctx context.Context, owner *scheduler.Peer,
	spec scheduler.Spec, n int) error {
	ids := make([]string, 0, n)
	for range n {
		id, err := owner.Submit(ctx, spec)
		if err != nil {
			return fmt.Errorf("submit: %w", err)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		j, err := owner.Wait(ctx, id)
		if err != nil {
			return fmt.Errorf("wait for job %s: %w", id, err)
		}
		if j.State != scheduler.Succeeded {
			return fmt.Errorf("job %s: %s (%s), want succeeded",
				id, j.State, j.Reason)
		}
	}
	return nil
}

// BenchmarkSubmitLocal measures Submit alone on a single peer: validation
// and the synced write of the job record. The peer is drained, so the jobs
// stay pending and running them does not compete with the submissions.
func BenchmarkSubmitLocal(b *testing.B) {
	p := startBenchMesh(b, scheduler.Config{})[0]
	p.Drain(true)
	spec := scheduler.Spec{Name: "local", Executor: "noop"}
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if _, err := p.Submit(ctx, spec); err != nil {
			b.Fatalf("submit: %v", err)
		}
	}
}

// TestPercentile checks the nearest-rank percentile the benchmarks report.
func TestPercentile(t *testing.T) {
	ten := make([]time.Duration, 10)
	for i := range ten {
		ten[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		q      int
		want   time.Duration
	}{
		{"one value", ten[:1], 50, time.Millisecond},
		{"median of ten", ten, 50, 5 * time.Millisecond},
		{"p90 of ten", ten, 90, 9 * time.Millisecond},
		{"p100 of ten", ten, 100, 10 * time.Millisecond},
		{"p50 of three", ten[:3], 50, 2 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.q); got != tt.want {
				t.Errorf("percentile(%v, %d) = %v, want %v",
					tt.sorted, tt.q, got, tt.want)
			}
		})
	}
}
