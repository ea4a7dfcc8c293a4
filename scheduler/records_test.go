package scheduler

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/blixard/blixard/store"
)

const (
	bugSeqRace = "BUG: concurrent saveJob calls each write meta/seq, and " +
		"the commit that lands last may hold a lower number, so a restart " +
		"reuses sequence numbers (records.go saveJob)"
	bugTerminalOverwritten = "BUG: saveJob replaces a finished record " +
		"with an unfinished copy of a higher epoch, so a replica loses the " +
		"job's outcome (records.go saveJob)"
)

// openTestStore opens an in-memory store that t closes.
func openTestStore(t testing.TB) *store.Store {
	t.Helper()
	db, err := store.Open(store.Config{InMemory: true})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newRecordPeer returns the least of a Peer that saveJob, loadJob and
// handleSince use: a store, an ID, a change feed and a logger.
func newRecordPeer(t testing.TB) *Peer {
	t.Helper()
	return &Peer{db: openTestStore(t), id: "me", log: slog.New(slog.DiscardHandler)}
}

// jobAt returns a job record with the given owner, epoch and version.
func jobAt(id, owner string, epoch, version uint64) *Job {
	return &Job{ID: id, Owner: owner, Epoch: epoch, Version: version,
		State: Pending, Spec: Spec{Name: "n", Executor: "noop"}, Submitted: t0}
}

// testIDs returns n distinct job IDs in increasing order.
func testIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%028x", i+1)
	}
	return ids
}

func mustGet(t *testing.T, db *store.Store, key []byte) []byte {
	t.Helper()
	v, err := db.Get(key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return v
}

func wantAbsent(t *testing.T, db *store.Store, key []byte) {
	t.Helper()
	if v, err := db.Get(key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get %q = %q, %v; want not found", key, v, err)
	}
}

func TestSaveJobVersions(t *testing.T) {
	id := testIDs(1)[0]
	for _, tc := range []struct {
		name        string
		stored      *Job
		save        *Job
		wantErr     error
		wantVersion [2]uint64 // epoch and version stored afterwards
	}{
		{"new record", nil, jobAt(id, "me", 1, 1), nil, [2]uint64{1, 1}},
		{"newer version", jobAt(id, "me", 1, 1), jobAt(id, "me", 1, 2), nil,
			[2]uint64{1, 2}},
		{"older version", jobAt(id, "me", 1, 3), jobAt(id, "me", 1, 2),
			errStaleRecord, [2]uint64{1, 3}},
		{"older epoch, higher version", jobAt(id, "me", 2, 1),
			jobAt(id, "me", 1, 9), errStaleRecord, [2]uint64{2, 1}},
		{"newer epoch, lower version", jobAt(id, "me", 1, 9),
			jobAt(id, "other", 2, 1), nil, [2]uint64{2, 1}},
		{"same version again", jobAt(id, "me", 1, 4), jobAt(id, "me", 1, 4), nil,
			[2]uint64{1, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newRecordPeer(t)
			if tc.stored != nil {
				if err := p.saveJob(tc.stored, nil); err != nil {
					t.Fatalf("save stored copy: %v", err)
				}
			}
			err := p.saveJob(tc.save, nil)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("saveJob = %v, want %v", err, tc.wantErr)
			}
			got, err := p.loadJob(id)
			if err != nil {
				t.Fatalf("loadJob: %v", err)
			}
			if v := [2]uint64{got.Epoch, got.Version}; v != tc.wantVersion {
				t.Errorf("stored (epoch, version) = %v, want %v", v, tc.wantVersion)
			}
		})
	}
	t.Run("unreadable record replaced", func(t *testing.T) {
		p := newRecordPeer(t)
		if err := p.db.Put(jobKey(id), []byte("{not json")); err != nil {
			t.Fatal(err)
		}
		if _, err := p.loadJob(id); err == nil || !strings.Contains(err.Error(), id) {
			t.Errorf("loadJob of a corrupt record = %v, want an error naming the job", err)
		}
		if err := p.saveJob(jobAt(id, "me", 1, 1), nil); err != nil {
			t.Fatalf("saveJob over a corrupt record: %v", err)
		}
		if _, err := p.loadJob(id); err != nil {
			t.Errorf("loadJob after save: %v", err)
		}
	})
	t.Run("round trip", func(t *testing.T) {
		p := newRecordPeer(t)
		j := jobAt(id, "me", 3, 7)
		j.Replicas = []string{"a", "b"}
		j.Spec.Payload = []byte(`{"k":[1,2]}`)
		mustStart(t, j, "r", t0)
		j.applyResult(1, 3, outcome{ExitCode: 2, Reason: "x"}, t0)
		if err := p.saveJob(j, nil); err != nil {
			t.Fatal(err)
		}
		got, err := p.loadJob(id)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := mustJSON(got), mustJSON(j); !bytes.Equal(a, b) {
			t.Errorf("loadJob =\n%s\nwant\n%s", a, b)
		}
	})
	t.Run("missing", func(t *testing.T) {
		p := newRecordPeer(t)
		if _, err := p.loadJob(id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("loadJob of a missing job = %v, want store.ErrNotFound", err)
		}
	})
}

// TestSaveJobKeepsOutcome checks that a finished record is not replaced
// by a copy that has not finished, whatever its epoch: a terminal state
// never moves back.
func TestSaveJobKeepsOutcome(t *testing.T) {
	p := newRecordPeer(t)
	id := testIDs(1)[0]
	done := jobAt(id, "other", 1, 5)
	mustStart(t, done, "r", t0)
	done.applyResult(1, 1, outcome{ExitCode: 0}, t0)
	if err := p.saveJob(done, nil); err != nil {
		t.Fatal(err)
	}
	takeover := jobAt(id, "third", 2, 6)
	_ = p.saveJob(takeover, nil)
	got, err := p.loadJob(id)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != Succeeded {
		t.Errorf("stored state = %s, want %s", got.State, Succeeded)
	}
}

func TestSaveJobFeed(t *testing.T) {
	p := newRecordPeer(t)
	ids := testIDs(3)
	evOf := func(j *Job, kind string) *Event { ev := eventOf(j, kind); return &ev }

	mine := jobAt(ids[0], "me", 1, 1)
	ev1 := evOf(mine, "submitted")
	if err := p.saveJob(mine, ev1); err != nil {
		t.Fatal(err)
	}
	mine.Version = 2
	ev2 := evOf(mine, "started")
	if err := p.saveJob(mine, ev2); err != nil {
		t.Fatal(err)
	}
	theirs := jobAt(ids[1], "other", 1, 1)
	if err := p.saveJob(theirs, evOf(theirs, "replica")); err != nil {
		t.Fatal(err)
	}
	quiet := jobAt(ids[2], "me", 1, 1)
	if err := p.saveJob(quiet, nil); err != nil {
		t.Fatal(err)
	}
	old := jobAt(ids[0], "me", 1, 1)
	if err := p.saveJob(old, evOf(old, "stale")); !errors.Is(err, errStaleRecord) {
		t.Fatalf("saveJob of an old copy = %v, want errStaleRecord", err)
	}

	if got := mustGet(t, p.db, summaryKey(ids[0])); !bytes.Equal(got, encode(ev2)) {
		t.Errorf("summary of the owned job = %s, want %s", got, encode(ev2))
	}
	got := mustGet(t, p.db, summaryKey(ids[1]))
	if !strings.Contains(string(got), `"replica"`) {
		t.Errorf("summary of the held job = %s, want its replica event", got)
	}
	wantAbsent(t, p.db, summaryKey(ids[2]))
	var feed [][]byte
	err := p.db.Scan(prefixChange, func(k, v []byte) error {
		feed = append(feed, append([]byte(nil), v...))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{encode(ev1), encode(ev2)}
	if !slices.EqualFunc(feed, want, bytes.Equal) {
		t.Errorf("change feed = %q, want %q", feed, want)
	}
	if seq, err := p.loadSeq(); err != nil || seq != 2 {
		t.Errorf("loadSeq = %d, %v; want 2", seq, err)
	}
	// The refused save took a number; it must not hold the feed back.
	if got, want := p.feed.safe(), p.feed.last; got != want {
		t.Errorf("safe = %d after every write ended, want %d", got, want)
	}
}

// TestSaveJobSeqOutOfOrder commits the change numbered 6 before the one
// numbered 5, as two concurrent saves may, and checks that the stored
// sequence number stays at the highest.
func TestSaveJobSeqOutOfOrder(t *testing.T) {
	p := newRecordPeer(t)
	ids := testIDs(2)
	for i, last := range []uint64{5, 4} {
		p.feed.last = last // the next save takes last+1
		j := jobAt(ids[i], "me", 1, 1)
		ev := eventOf(j, "submitted")
		if err := p.saveJob(j, &ev); err != nil {
			t.Fatal(err)
		}
	}
	if seq, err := p.loadSeq(); err != nil || seq != 6 {
		t.Errorf("loadSeq = %d, %v; want 6, the highest change stored", seq, err)
	}
}

// TestSaveJobSeqConcurrent saves owned jobs from several goroutines and
// checks that the stored sequence number is the last one handed out.
func TestSaveJobSeqConcurrent(t *testing.T) {
	const workers, each = 8, 40
	p := newRecordPeer(t)
	ids := testIDs(workers * each)
	var wg sync.WaitGroup
	errs := make(chan error, len(ids))
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, id := range ids[w*each : (w+1)*each] {
				j := jobAt(id, "me", 1, 1)
				ev := eventOf(j, "submitted")
				errs <- p.saveJob(j, &ev)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("saveJob: %v", err)
		}
	}
	seq, err := p.loadSeq()
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(len(ids)); seq != want {
		t.Errorf("stored sequence = %d, want %d", seq, want)
	}
}

func TestLoadSeq(t *testing.T) {
	p := newRecordPeer(t)
	if seq, err := p.loadSeq(); err != nil || seq != 0 {
		t.Errorf("loadSeq of an empty store = %d, %v; want 0, nil", seq, err)
	}
	if err := p.db.Put(keySeq, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.loadSeq(); err == nil || !strings.Contains(err.Error(), "meta/seq") {
		t.Errorf("loadSeq of a short value = %v, want an error naming meta/seq", err)
	}
}

func TestChangeFeedSafe(t *testing.T) {
	type step struct {
		end      uint64 // 0 begins a change
		wantSafe uint64
	}
	for _, tc := range []struct {
		name  string
		last  uint64
		steps []step
	}{
		{"empty", 0, nil},
		{"in order", 0, []step{{0, 0}, {1, 1}, {0, 1}, {2, 2}}},
		{"out of order", 0, []step{
			{0, 0}, {0, 0}, {0, 0}, {2, 0}, {3, 0}, {1, 3}}},
		{"middle first", 0, []step{
			{0, 0}, {0, 0}, {0, 0}, {2, 0}, {1, 2}, {0, 2}, {4, 2}, {3, 4}}},
		{"after a restart", 10, []step{{0, 10}, {0, 10}, {12, 10}, {11, 12}}},
		{"end twice", 0, []step{{0, 0}, {1, 1}, {1, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := changeFeed{last: tc.last}
			if got := f.safe(); got != tc.last {
				t.Fatalf("safe at start = %d, want %d", got, tc.last)
			}
			for i, s := range tc.steps {
				if s.end == 0 {
					f.begin()
				} else {
					f.end(s.end)
				}
				if got := f.safe(); got != s.wantSafe {
					t.Fatalf("step %d: safe = %d, want %d", i, got, s.wantSafe)
				}
			}
		})
	}
	t.Run("random order", func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for range 100 {
			var f changeFeed
			n := 1 + r.IntN(40)
			for i := range n {
				if got := f.begin(); got != uint64(i+1) {
					t.Fatalf("begin = %d, want %d", got, i+1)
				}
			}
			open := make(map[uint64]bool)
			for i := 1; i <= n; i++ {
				open[uint64(i)] = true
			}
			for _, i := range r.Perm(n) {
				f.end(uint64(i + 1))
				delete(open, uint64(i+1))
				want := uint64(n)
				for q := range open {
					want = min(want, q-1)
				}
				if got := f.safe(); got != want {
					t.Fatalf("safe = %d with %v open, want %d", got, open, want)
				}
			}
		}
	})
}

func TestKeys(t *testing.T) {
	id := testIDs(1)[0]
	for _, tc := range []struct {
		name   string
		key    []byte
		prefix []byte
	}{
		{"job", jobKey(id), prefixJob},
		{"summary", summaryKey(id), prefixSummary},
		{"module", moduleKey("ab12"), prefixModule},
		{"change", changeKey(7), prefixChange},
		{"output", outputKey(id, 1, Stdout, 0), prefixOutput},
		{"running", runningKey(id, 1), prefixRunning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.HasPrefix(tc.key, tc.prefix) {
				t.Errorf("key %q lacks prefix %q", tc.key, tc.prefix)
			}
		})
	}
	t.Run("ids round trip", func(t *testing.T) {
		for _, k := range [][]byte{jobKey(id), summaryKey(id)} {
			if got := string(k[2:]); got != id {
				t.Errorf("id from %q = %q, want %q", k, got, id)
			}
		}
	})
	t.Run("change keys sort by number", func(t *testing.T) {
		seqs := []uint64{0, 1, 255, 256, 1 << 32, math.MaxUint64}
		var keys [][]byte
		for _, s := range seqs {
			k := changeKey(s)
			if got := binary.BigEndian.Uint64(k[len(prefixChange):]); got != s {
				t.Errorf("sequence from %x = %d, want %d", k, got, s)
			}
			keys = append(keys, k)
		}
		if !slices.IsSortedFunc(keys, bytes.Compare) {
			t.Errorf("change keys %x do not sort by sequence", keys)
		}
	})
	t.Run("output keys sort by offset", func(t *testing.T) {
		offs := []int64{0, 1, 255, 256, 65535, 65536, 1 << 32, 1 << 40, math.MaxInt64}
		pre := outputPrefix(id, 3, Stderr)
		var keys [][]byte
		for _, off := range offs {
			k := outputKey(id, 3, Stderr, off)
			if !bytes.HasPrefix(k, pre) || len(k) != len(pre)+8 {
				t.Errorf("output key %x is not its prefix %x and 8 bytes", k, pre)
			}
			if got := int64(beUint64(k[len(k)-8:])); got != off {
				t.Errorf("offset from %x = %d, want %d", k, got, off)
			}
			keys = append(keys, k)
		}
		if !slices.IsSortedFunc(keys, bytes.Compare) {
			t.Errorf("output keys %x do not sort by offset", keys)
		}
	})
	t.Run("output prefixes apart", func(t *testing.T) {
		ps := [][]byte{outputPrefix(id, 1, Stdout), outputPrefix(id, 1, Stderr),
			outputPrefix(id, 2, Stdout), outputPrefix(id, 256, Stdout),
			outputPrefix(testIDs(2)[1], 1, Stdout)}
		for i, a := range ps {
			for j, b := range ps {
				if i != j && bytes.HasPrefix(a, b) {
					t.Errorf("prefix %x starts with prefix %x", a, b)
				}
			}
		}
	})
	t.Run("running keys apart", func(t *testing.T) {
		if bytes.Equal(runningKey(id, 1), runningKey(id, 2)) {
			t.Error("running keys of two attempts are equal")
		}
	})
	t.Run("fresh slices", func(t *testing.T) {
		k := jobKey(id)
		k[0] = 'X'
		if prefixJob[0] != 'j' {
			t.Fatalf("changing a key changed prefixJob to %q", prefixJob)
		}
		a := outputKey(id, 1, Stdout, 1)
		keep := slices.Clone(a)
		_ = outputKey(id, 1, Stdout, 2)
		if !bytes.Equal(a, keep) {
			t.Errorf("a second output key changed the first: %x, was %x", a, keep)
		}
	})
}

// TestOutputKeysInStore stores chunks of several streams out of order and
// reads one stream back in offset order, as handleLogs does.
func TestOutputKeysInStore(t *testing.T) {
	db := openTestStore(t)
	ids := testIDs(2)
	offs := []int64{0, 5, 300, 70000, 1 << 33}
	r := rand.New(rand.NewPCG(3, 4))
	for _, i := range r.Perm(len(offs)) {
		off := offs[i]
		for _, k := range [][]byte{
			outputKey(ids[0], 1, Stdout, off),
			outputKey(ids[0], 1, Stderr, off),
			outputKey(ids[0], 2, Stdout, off),
			outputKey(ids[1], 1, Stdout, off),
		} {
			if err := db.Put(k, fmt.Appendf(nil, "%x@%d", k[2:3], off)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var got []int64
	err := db.Scan(outputPrefix(ids[0], 1, Stdout), func(k, v []byte) error {
		got = append(got, int64(beUint64(k[len(k)-8:])))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, offs) {
		t.Errorf("scanned offsets = %v, want %v", got, offs)
	}
}

// TestHandleSince reads the change feed as another peer's anti-entropy
// does: in pages, never past a change still being written.
func TestHandleSince(t *testing.T) {
	p := newRecordPeer(t)
	ids := testIDs(7)
	for _, id := range ids[:5] {
		j := jobAt(id, "me", 1, 1)
		ev := eventOf(j, "submitted")
		if err := p.saveJob(j, &ev); err != nil {
			t.Fatal(err)
		}
	}
	since := func(seq uint64, max int) sinceResp {
		t.Helper()
		b, err := p.handleSince(context.Background(), "other",
			encode(sinceReq{Seq: seq, Max: max}))
		if err != nil {
			t.Fatalf("handleSince(%d, %d): %v", seq, max, err)
		}
		var resp sinceResp
		if err := decode(b, &resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	jobsOf := func(r sinceResp) []string {
		var out []string
		for _, ev := range r.Events {
			out = append(out, ev.Job)
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		seq      uint64
		max      int
		wantJobs []string
		wantSeq  uint64
		wantMore bool
	}{
		{"first page", 0, 2, ids[:2], 2, true},
		{"rest", 2, 512, ids[2:5], 5, false},
		{"nothing new", 5, 10, nil, 5, false},
		{"max below one", 0, -3, ids[:1], 1, true},
		{"ahead of the feed", 99, 10, nil, 5, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := since(tc.seq, tc.max)
			if got := jobsOf(r); !slices.Equal(got, tc.wantJobs) ||
				r.Seq != tc.wantSeq || r.More != tc.wantMore {
				t.Errorf("since(%d, %d) = %v seq %d more %v; want %v seq %d more %v",
					tc.seq, tc.max, got, r.Seq, r.More,
					tc.wantJobs, tc.wantSeq, tc.wantMore)
			}
		})
	}
	t.Run("change in flight", func(t *testing.T) {
		held := p.feed.begin() // a write of seq 6 that has not committed
		j := jobAt(ids[6], "me", 1, 1)
		ev := eventOf(j, "submitted")
		if err := p.saveJob(j, &ev); err != nil { // seq 7
			t.Fatal(err)
		}
		if r := since(5, 10); len(r.Events) != 0 || r.Seq != 5 {
			t.Errorf("since(5) with 6 in flight = %v seq %d; want nothing, seq 5",
				jobsOf(r), r.Seq)
		}
		p.feed.end(held)
		if r := since(5, 10); !slices.Equal(jobsOf(r), ids[6:]) || r.Seq != 7 {
			t.Errorf("since(5) = %v seq %d; want %v seq 7", jobsOf(r), r.Seq, ids[6:])
		}
	})
	t.Run("bad request", func(t *testing.T) {
		if _, err := p.handleSince(context.Background(), "x", []byte("{")); err == nil {
			t.Error("handleSince of bad JSON = nil error, want one")
		}
	})
}
