package scheduler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/blixard/blixard/store"
)

// Job returns the newest record of job id this peer can find: its own
// when it owns the job, else the owner's, else a local copy.
func (p *Peer) Job(ctx context.Context, id string) (*Job, error) {
	if !validJobID(id) {
		return nil, fmt.Errorf("job id %q: %w", truncate(id, 40), ErrNotFound)
	}
	return p.findJob(ctx, id)
}

func (p *Peer) findJob(ctx context.Context, id string) (*Job, error) {
	if j := p.committedJob(id); j != nil {
		return j, nil
	}
	local, err := p.loadJob(id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if local != nil && (local.Owner == p.id || local.State.Terminal()) {
		return local, nil
	}
	owner := ""
	if local != nil {
		owner = local.Owner
	} else if ev, err := p.summary(id); err == nil {
		owner = ev.Owner
	}
	if owner != "" && owner != p.id {
		if j, err := p.askJob(ctx, owner, id); err == nil {
			return j, nil
		}
	}
	if local != nil {
		return local, nil
	}
	// Nobody told us of the job: ask every member.
	for _, m := range p.tr.Members() {
		if j, err := p.askJob(ctx, m, id); err == nil {
			return j, nil
		}
	}
	return nil, fmt.Errorf("job %s: %w", id, ErrNotFound)
}

func (p *Peer) askJob(ctx context.Context, peer, id string) (*Job, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	b, err := p.tr.Request(ctx, peer, rpcJob, encode(jobReq{ID: id}))
	if err != nil {
		return nil, err
	}
	var j Job
	if err := decode(b, &j); err != nil {
		return nil, err
	}
	if j.ID != id {
		return nil, ErrNotFound
	}
	return &j, nil
}

func (p *Peer) handleJob(ctx context.Context, from string, b []byte) ([]byte, error) {
	var req jobReq
	if err := decode(b, &req); err != nil || !validJobID(req.ID) {
		return nil, p.bad(from, errors.New("job: bad request"))
	}
	j := p.committedJob(req.ID)
	if j == nil {
		var err error
		if j, err = p.loadJob(req.ID); err != nil {
			return nil, err
		}
	}
	return encode(j), nil
}

func (p *Peer) summary(id string) (Event, error) {
	b, err := p.db.Get(summaryKey(id))
	if err != nil {
		return Event{}, err
	}
	var ev Event
	return ev, decode(b, &ev)
}

// Jobs lists the jobs this peer knows of: those it owns or holds copies
// of, and those it heard of in events, newest first, at most limit (0
// means 1000).
func (p *Peer) Jobs(ctx context.Context, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 1000
	}
	byID := make(map[string]Event)
	err := p.db.Scan(prefixSummary, func(k, v []byte) error {
		var ev Event
		if decode(v, &ev) == nil {
			byID[ev.Job] = ev
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	for id, o := range p.owned {
		ev := eventOf(o.job, "")
		if old, ok := byID[id]; ok {
			ev.Kind = old.Kind
		}
		byID[id] = ev
	}
	p.mu.Unlock()
	out := make([]Event, 0, len(byID))
	for _, ev := range byID {
		out = append(out, ev)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Job > out[j].Job })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Wait blocks until job id reaches a terminal state or ctx ends.
func (p *Peer) Wait(ctx context.Context, id string) (*Job, error) {
	for {
		p.mu.Lock()
		ch := p.changed
		p.mu.Unlock()
		j, err := p.Job(ctx, id)
		if err != nil {
			return nil, err
		}
		if j.State.Terminal() {
			return j, nil
		}
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-ch:
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Streams of a job's output.
const (
	Stdout byte = 1
	Stderr byte = 2
)

// Logs returns output of attempt (0 means the latest) of job id from byte
// offset on, at most max bytes. done reports that the attempt has ended
// and the data reaches the end of its output.
func (p *Peer) Logs(ctx context.Context, id string, attempt int, stream byte,
	offset int64, max int) (data []byte, next int64, done bool, err error) {
	if stream != Stdout && stream != Stderr {
		return nil, 0, false, fmt.Errorf("stream %d: want 1 (stdout) or 2 (stderr)", stream)
	}
	j, err := p.Job(ctx, id)
	if err != nil {
		return nil, 0, false, err
	}
	req := logsReq{ID: id, Attempt: attempt, Stream: stream, Offset: offset, Max: max}
	if j.Owner != p.id {
		if resp, err := p.askLogs(ctx, j.Owner, req); err == nil {
			return resp.Data, resp.Next, resp.Done, nil
		}
	}
	resp, err := p.localLogs(j, req)
	if err != nil {
		return nil, 0, false, err
	}
	return resp.Data, resp.Next, resp.Done, nil
}

func (p *Peer) askLogs(ctx context.Context, peer string, req logsReq) (logsResp, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	b, err := p.tr.Request(ctx, peer, rpcLogs, encode(req))
	if err != nil {
		return logsResp{}, err
	}
	var resp logsResp
	return resp, decode(b, &resp)
}

func (p *Peer) handleLogs(ctx context.Context, from string, b []byte) ([]byte, error) {
	var req logsReq
	if err := decode(b, &req); err != nil || !validJobID(req.ID) || req.Offset < 0 ||
		(req.Stream != Stdout && req.Stream != Stderr) {
		return nil, p.bad(from, errors.New("logs: bad request"))
	}
	j := p.committedJob(req.ID)
	if j == nil {
		var err error
		if j, err = p.loadJob(req.ID); err != nil {
			return nil, err
		}
	}
	resp, err := p.localLogs(j, req)
	if err != nil {
		return nil, err
	}
	return encode(resp), nil
}

// committedJob returns the latest stored version of an owned job, or nil
// when the job is not owned here.
func (p *Peer) committedJob(id string) *Job {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.owned[id]
	if o == nil {
		return nil
	}
	if o.committed != nil {
		return o.committed.Clone()
	}
	return o.job.Clone()
}

// findLocal returns the job from memory or the store, asking no one.
func (p *Peer) findLocal(id string) (*Job, error) {
	p.mu.Lock()
	if o := p.owned[id]; o != nil {
		j := o.job.Clone()
		p.mu.Unlock()
		return j, nil
	}
	p.mu.Unlock()
	return p.loadJob(id)
}

// localLogs reads stored output of j.
func (p *Peer) localLogs(j *Job, req logsReq) (logsResp, error) {
	n := req.Attempt
	if n <= 0 {
		n = len(j.Attempts)
	}
	if n == 0 || n > len(j.Attempts) {
		return logsResp{Next: req.Offset, Done: j.State.Terminal()}, nil
	}
	limit := req.Max
	if limit <= 0 || limit > 1<<20 {
		limit = 1 << 20
	}
	resp := logsResp{Next: req.Offset}
	err := p.db.Scan(outputPrefix(j.ID, n, req.Stream), func(k, v []byte) error {
		off := int64(beUint64(k[len(k)-8:]))
		end := off + int64(len(v))
		if end <= resp.Next {
			return nil
		}
		if off > resp.Next || len(resp.Data) >= limit {
			return errStop
		}
		part := v[resp.Next-off:]
		part = part[:min(len(part), limit-len(resp.Data))]
		resp.Data = append(resp.Data, part...)
		resp.Next += int64(len(part))
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return logsResp{}, err
	}
	a := j.Attempts[n-1]
	if a.State != AttemptRunning && !j.Attempts[n-1].Ended.IsZero() {
		// Ended: done once everything stored has been read.
		length, lerr := p.outputLength(outKey{j.ID, n, req.Stream})
		resp.Done = lerr == nil && resp.Next >= length &&
			(j.State.Terminal() || n < len(j.Attempts) || a.ExitCode != nil)
	}
	return resp, nil
}

// Drain stops this peer from taking new work; running tasks finish.
func (p *Peer) Drain(on bool) {
	p.mu.Lock()
	p.draining = on
	p.mu.Unlock()
	p.announceSoon()
	p.wake()
}

// Stats returns counters of what the peer refused or dropped.
func (p *Peer) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

func (p *Peer) handleModule(ctx context.Context, from string, b []byte) ([]byte, error) {
	var req moduleReq
	if err := decode(b, &req); err != nil || !validModuleRef(modulePrefix+req.Hash) {
		return nil, p.bad(from, errors.New("module: bad request"))
	}
	return p.db.Get(moduleKey(req.Hash))
}

// moduleFile returns the path of a cached copy of module ref, fetching it
// from the owner when this peer does not have it.
func (p *Peer) moduleFile(ctx context.Context, ref, owner string) (string, error) {
	h := strings.TrimPrefix(ref, modulePrefix)
	path := filepath.Join(p.cfg.DataDir, "modules", h+".wasm")
	p.mu.Lock()
	mu := p.modules[h]
	if mu == nil {
		mu = new(sync.Mutex)
		p.modules[h] = mu
	}
	p.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	data, err := p.db.Get(moduleKey(h))
	if errors.Is(err, store.ErrNotFound) {
		data, err = p.call(ctx, owner, rpcModule, encode(moduleReq{Hash: h}))
	}
	if err != nil {
		return "", fmt.Errorf("fetch module %s: %w", ref, err)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != h {
		return "", fmt.Errorf("module %s: content does not match its hash", ref)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// recover loads the jobs this peer owns from the store and ends the
// workloads a crash left behind.
func (p *Peer) recover(ctx context.Context) error {
	now := time.Now()
	var mine []*Job
	err := p.db.Scan(prefixJob, func(k, v []byte) error {
		var j Job
		if err := decode(v, &j); err != nil {
			p.log.Warn("skip unreadable job record", "key", string(k), "err", err)
			return nil
		}
		switch {
		case j.State.Terminal():
		case j.Owner == p.id:
			mine = append(mine, &j)
		default:
			p.held[j.ID] = &heldJob{owner: j.Owner, replicas: j.Replicas}
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(mine, func(i, k int) bool { return mine[i].ID < mine[k].ID })
	p.mu.Lock()
	for _, j := range mine {
		// A runner that still runs an attempt renews within a lease; one
		// that does not is treated as lost then.
		p.owned[j.ID] = &owned{job: j, committed: j.Clone(), leaseUntil: now.Add(p.cfg.Lease)}
		p.queue = append(p.queue, j.ID)
	}
	p.mu.Unlock()
	if len(mine) > 0 {
		p.log.Info("resumed owned jobs", "count", len(mine))
	}
	return p.recoverTasks(ctx)
}
