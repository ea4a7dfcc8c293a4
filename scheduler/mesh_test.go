package scheduler_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blixard/blixard/scheduler"
	"github.com/blixard/blixard/scheduler/memnet"
	"github.com/blixard/blixard/store"
)

// mesh is a set of peers on an in-memory network.
type mesh struct {
	t     *testing.T
	net   *memnet.Network
	peers map[string]*scheduler.Peer
	dirs  map[string]string
	base  string
}

// testLogger sends a peer's logs to t.Log.
func testLogger(t *testing.T, name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: testLogLevel})).
		With("peer_name", name)
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func newMesh(t *testing.T) *mesh {
	t.Helper()
	m := &mesh{t: t, net: memnet.New(), peers: map[string]*scheduler.Peer{}, dirs: map[string]string{}}
	m.base = t.TempDir() // removed after the peers close
	t.Cleanup(func() {
		for _, p := range m.peers {
			p.Close()
		}
	})
	return m
}

// add starts a peer named name; cfg's DataDir and Transport are filled in.
func (m *mesh) add(name string, cfg scheduler.Config) *scheduler.Peer {
	m.t.Helper()
	if m.dirs[name] == "" {
		m.dirs[name] = filepath.Join(m.base, name)
	}
	cfg.DataDir = m.dirs[name]
	cfg.Transport = m.net.Add(name)
	if cfg.Lease == 0 {
		cfg.Lease = 2 * time.Second
	}
	if cfg.AnnounceInterval == 0 {
		cfg.AnnounceInterval = 100 * time.Millisecond
	}
	if cfg.Slots == 0 {
		cfg.Slots = 2
	}
	sc := store.DefaultConfig("")
	cfg.Store = &sc
	cfg.Logger = testLogger(m.t, name)
	p, err := scheduler.New(context.Background(), cfg)
	if err != nil {
		m.t.Fatalf("start peer %s: %v", name, err)
	}
	m.peers[name] = p
	return p
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (m *mesh) waitConverged() {
	m.t.Helper()
	waitFor(m.t, 10*time.Second, "peers to see each other", func() bool {
		for _, p := range m.peers {
			if len(p.Peers()) != len(m.peers) {
				return false
			}
		}
		return true
	})
}

func waitJob(t *testing.T, p *scheduler.Peer, id string) *scheduler.Job {
	t.Helper()
	return waitJobFor(t, p, id, 30*time.Second)
}

func waitJobFor(t *testing.T, p *scheduler.Peer, id string, d time.Duration) *scheduler.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	j, err := p.Wait(ctx, id)
	if err != nil {
		t.Fatalf("wait for job %s: %v", id, err)
	}
	return j
}

func readAll(t *testing.T, p *scheduler.Peer, id string, stream byte) string {
	t.Helper()
	var out []byte
	var off int64
	for {
		data, next, done, err := p.Logs(context.Background(), id, 0, stream, off, 0)
		if err != nil {
			t.Fatalf("logs of %s: %v", id, err)
		}
		out = append(out, data...)
		off = next
		if done || len(data) == 0 {
			return string(out)
		}
	}
}

func TestJobRunsOnThePeerWithTheLabel(t *testing.T) {
	m := newMesh(t)
	a := m.add("a", scheduler.Config{Labels: map[string]string{"zone": "a"}})
	m.add("b", scheduler.Config{Labels: map[string]string{"zone": "b"}})
	c := m.add("c", scheduler.Config{Labels: map[string]string{"zone": "c", "gpu": "true"}})
	m.waitConverged()

	id, err := a.Submit(context.Background(), scheduler.Spec{
		Command: []string{"sh", "-c", "printf 'out\\000put'; printf err >&2; exit 3"},
		Require: []string{"gpu=true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, a, id)
	if j.State != scheduler.Failed {
		t.Fatalf("state = %s (%s), want failed", j.State, j.Reason)
	}
	if got := j.Current().Peer; got != c.ID() {
		t.Errorf("ran on %s, want c", got)
	}
	if j.ExitCode == nil || *j.ExitCode != 3 {
		t.Errorf("exit code = %v, want 3", j.ExitCode)
	}
	if got := readAll(t, a, id, scheduler.Stdout); got != "out\x00put" {
		t.Errorf("stdout = %q, want %q", got, "out\x00put")
	}
	if got := readAll(t, a, id, scheduler.Stderr); got != "err" {
		t.Errorf("stderr = %q, want %q", got, "err")
	}
}

func TestUnmatchedJobStaysPendingWithReason(t *testing.T) {
	m := newMesh(t)
	a := m.add("a", scheduler.Config{})
	m.add("b", scheduler.Config{})
	m.waitConverged()
	ctx := context.Background()
	for _, tc := range []struct {
		spec scheduler.Spec
		want string
	}{
		{scheduler.Spec{Executor: "docker", Image: "x:1"}, "no peer advertises executor docker"},
		{scheduler.Spec{Command: []string{"true"}, Require: []string{"gpu=true"}}, "no peer meets requirement gpu=true"},
	} {
		id, err := a.Submit(ctx, tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "reason "+tc.want, func() bool {
			j, err := a.Job(ctx, id)
			return err == nil && j.State == scheduler.Pending && j.Reason == tc.want
		})
	}
}

func TestManyJobsSpreadAndFinishOnce(t *testing.T) {
	m := newMesh(t)
	var ps []*scheduler.Peer
	for i := range 3 {
		ps = append(ps, m.add(fmt.Sprint("p", i), scheduler.Config{Slots: 4}))
	}
	m.waitConverged()
	ctx := context.Background()
	var ids []string
	for i := range 60 {
		id, err := ps[0].Submit(ctx, scheduler.Spec{Executor: "noop", Command: []string{"sleep=20ms"}, Name: fmt.Sprint("n", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	ran := map[string]int{}
	for _, id := range ids {
		j := waitJob(t, ps[0], id)
		if j.State != scheduler.Succeeded || len(j.Attempts) != 1 || j.Duplicates != 0 {
			t.Errorf("job %s: state %s, %d attempts, %d duplicates", id, j.State, len(j.Attempts), j.Duplicates)
		}
		ran[j.Current().Peer]++
	}
	if len(ran) < 2 {
		t.Errorf("all jobs ran on one peer: %v; want work stolen", ran)
	}
}

var testLogLevel = func() slog.Level {
	if os.Getenv("BLIXARD_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}()
