package scheduler

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/blixard/blixard/store"
)

// Keys in the store. Every record is JSON but output chunks, which are
// raw bytes.
//
//	j/<job>                               job record (owned, or a replica)
//	s/<job>                               latest event heard of the job
//	c/<seq 8 bytes>                       this peer's change feed, for anti-entropy
//	o/<job>/<attempt 4>/<stream 1>/<off 8> output chunk
//	r/<job>/<attempt 4>                   attempt running here, to reap after a crash
//	m/<sha256 hex>                        WASM module bytes
//	a/<peer>                              a member's last announced addresses
//	meta/seq                              last change-feed sequence number
var (
	prefixJob     = []byte("j/")
	prefixSummary = []byte("s/")
	prefixChange  = []byte("c/")
	prefixOutput  = []byte("o/")
	prefixRunning = []byte("r/")
	prefixModule  = []byte("m/")
	prefixAddrs   = []byte("a/")
	keySeq        = []byte("meta/seq")
)

func jobKey(id string) []byte     { return append(append([]byte{}, prefixJob...), id...) }
func summaryKey(id string) []byte { return append(append([]byte{}, prefixSummary...), id...) }
func moduleKey(h string) []byte   { return append(append([]byte{}, prefixModule...), h...) }
func addrsKey(id string) []byte   { return append(append([]byte{}, prefixAddrs...), id...) }

func changeKey(seq uint64) []byte {
	k := append([]byte{}, prefixChange...)
	return binary.BigEndian.AppendUint64(k, seq)
}

func outputPrefix(id string, attempt int, stream byte) []byte {
	k := append(append([]byte{}, prefixOutput...), id...)
	k = append(k, '/')
	k = binary.BigEndian.AppendUint32(k, uint32(attempt))
	return append(k, '/', stream, '/')
}

func outputKey(id string, attempt int, stream byte, off int64) []byte {
	return binary.BigEndian.AppendUint64(outputPrefix(id, attempt, stream), uint64(off))
}

func runningKey(id string, attempt int) []byte {
	k := append(append([]byte{}, prefixRunning...), id...)
	k = append(k, '/')
	return binary.BigEndian.AppendUint32(k, uint32(attempt))
}

// runningRecord marks an attempt this peer runs, so that a restart finds
// the workload the crash left behind.
type runningRecord struct {
	Ref      attemptRef `json:"ref"`
	Owner    string     `json:"owner"`
	Executor string     `json:"executor"`
	Handle   string     `json:"handle,omitempty"`
	Dir      string     `json:"dir"`
}

// saveJob writes j unless the store already holds a newer copy, and
// appends ev to the change feed when j is owned here. It is durable when
// it returns.
func (p *Peer) saveJob(j *Job, ev *Event) error {
	var evs []*Event
	if ev != nil {
		evs = []*Event{ev}
	}
	stale, err := p.saveJobs([]*Job{j}, evs)
	if err == nil && stale[0] {
		return errStaleRecord
	}
	return err
}

// saveJobs writes jobs[i] (with event evs[i], when evs is not nil) in one
// durable transaction, skipping each job the store holds a newer copy
// of; stale[i] reports those.
func (p *Peer) saveJobs(jobs []*Job, evs []*Event) (stale []bool, err error) {
	seqs := make([]uint64, len(jobs))
	for i, j := range jobs {
		if evs != nil && evs[i] != nil && j.Owner == p.id {
			seqs[i] = p.feed.begin()
			defer p.feed.end(seqs[i])
		}
	}
	err = p.db.Update(func(tx *store.Txn) error {
		stale = make([]bool, len(jobs))
		var top uint64
		for i, j := range jobs {
			old, err := tx.Get(jobKey(j.ID))
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return err
			default:
				var o Job
				if decode(old, &o) == nil && (o.Newer(j) || o.State.Terminal() && !j.State.Terminal()) {
					// A terminal state never moves back, whatever the epoch.
					stale[i] = true
					continue
				}
			}
			if err := tx.Set(jobKey(j.ID), encode(j)); err != nil {
				return err
			}
			if evs == nil || evs[i] == nil {
				continue
			}
			ev := encode(evs[i])
			if err := tx.Set(summaryKey(j.ID), ev); err != nil {
				return err
			}
			if seqs[i] == 0 {
				continue
			}
			if err := tx.Set(changeKey(seqs[i]), ev); err != nil {
				return err
			}
			top = max(top, seqs[i])
		}
		if top == 0 {
			return nil
		}
		// Saves commit out of order, so the stored number may fall behind
		// the highest change; loadSeq looks past it.
		return tx.Set(keySeq, binary.BigEndian.AppendUint64(nil, top))
	})
	return stale, err
}

// changeFeed numbers this peer's changes. Writes commit out of order, so
// readers of the feed are served only up to the highest number below
// which every write has finished.
type changeFeed struct {
	mu       sync.Mutex
	last     uint64              // guarded by mu
	inflight map[uint64]struct{} // guarded by mu
}

func (f *changeFeed) begin() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inflight == nil {
		f.inflight = make(map[uint64]struct{})
	}
	f.last++
	f.inflight[f.last] = struct{}{}
	return f.last
}

func (f *changeFeed) end(seq uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.inflight, seq)
}

// safe returns the highest number up to which every change is stored.
func (f *changeFeed) safe() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.last
	for q := range f.inflight {
		if q <= s {
			s = q - 1
		}
	}
	return s
}

var errStaleRecord = errors.New("a newer copy of the job is stored")

// loadJob reads the stored record of job id.
func (p *Peer) loadJob(id string) (*Job, error) {
	b, err := p.db.Get(jobKey(id))
	if err != nil {
		return nil, err
	}
	var j Job
	if err := decode(b, &j); err != nil {
		return nil, fmt.Errorf("job %s: %w", id, err)
	}
	return &j, nil
}

// loadSeq reads the change-feed sequence number.
func (p *Peer) loadSeq() (uint64, error) {
	b, err := p.db.Get(keySeq)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(b) != 8 {
		return 0, errors.New("meta/seq: corrupt")
	}
	seq := binary.BigEndian.Uint64(b)
	// Changes that committed after the one that wrote meta/seq last.
	err = p.db.ScanFrom(prefixChange, changeKey(seq+1), func(k, _ []byte) error {
		if n := binary.BigEndian.Uint64(k[len(prefixChange):]); n > seq {
			seq = n
		}
		return nil
	})
	return seq, err
}
