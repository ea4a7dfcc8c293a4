package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Replication: the owner sends each changed job record to the job's
// replicas over acknowledged requests, with the output of a finished
// attempt. A replica keeps the copy; if the owner stays unreachable past
// Config.OwnerTimeout, the first live replica in the job's replica list
// takes the job over under a higher epoch.

// markReplicate queues job id for sending to its replicas.
func (p *Peer) markReplicate(id string) {
	p.mu.Lock()
	if _, ok := p.repl[id]; !ok {
		p.repl[id] = nil
	}
	p.mu.Unlock()
	p.kickReplicate()
}

func (p *Peer) kickReplicate() {
	select {
	case p.replKick <- struct{}{}:
	default:
	}
}

// replicateWait queues job id and blocks until every live replica holds
// its current record, or the timeout passes. The owner calls it before it
// acknowledges a terminal result, so that a takeover never re-runs a job
// whose outcome was already decided.
func (p *Peer) replicateWait(id string, timeout time.Duration) {
	done := make(chan struct{})
	p.mu.Lock()
	p.repl[id] = append(p.repl[id], done)
	p.mu.Unlock()
	p.kickReplicate()
	select {
	case <-done:
	case <-time.After(timeout):
	case <-p.ctx.Done():
	}
}

// replicateLoop sends queued job records to their replicas, retrying
// until each replica has them.
func (p *Peer) replicateLoop() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-tick.C:
		case <-p.replKick:
		}
		p.replicateOnce()
	}
}

func (p *Peer) replicateOnce() {
	p.mu.Lock()
	queued := p.repl
	p.repl = make(map[string][]chan struct{})
	p.mu.Unlock()
	if len(queued) == 0 {
		return
	}
	batches := make(map[string][]*Job)
	now := time.Now()
	for id := range queued {
		j, err := p.findLocal(id)
		if err != nil || j.Owner != p.id {
			continue
		}
		for _, r := range j.Replicas {
			p.mu.Lock()
			ok := p.reachableLocked(r, now)
			p.mu.Unlock()
			if ok {
				batches[r] = append(batches[r], j)
			}
		}
	}
	var mu sync.Mutex
	failed := make(map[string]bool)
	var wg sync.WaitGroup
	for replica, jobs := range batches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < len(jobs); i += maxBatch {
				batch := jobs[i:min(i+maxBatch, len(jobs))]
				err := p.sendReplicas(replica, batch)
				if err == nil {
					err = p.sendReplicaOutput(replica, batch)
				}
				if err != nil {
					p.log.Debug("replicate", "peer", replica, "err", err)
					mu.Lock()
					for _, j := range batch {
						failed[j.ID] = true
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	p.mu.Lock()
	for id, waiters := range queued {
		if failed[id] {
			p.repl[id] = append(p.repl[id], waiters...)
			continue
		}
		for _, w := range waiters {
			close(w)
		}
	}
	p.mu.Unlock()
}

func (p *Peer) sendReplicas(replica string, jobs []*Job) error {
	ctx, cancel := context.WithTimeout(p.ctx, replicaTimeout)
	defer cancel()
	b, err := p.tr.Request(ctx, replica, rpcReplicate, encode(replicateReq{Jobs: jobs}))
	if err != nil {
		return err
	}
	var resp replicateResp
	if err := decode(b, &resp); err != nil || len(resp.Finished) > len(jobs) {
		return nil // an old or odd answer: the copies are stored all the same
	}
	for _, f := range resp.Finished {
		// Not here: committing waits for this very replication loop.
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.adoptOutcome(f)
		}()
	}
	return nil
}

// adoptOutcome ends an owned job with the outcome a replica holds: the
// job finished under an earlier owner whose last word reached the
// replica but not this peer. A terminal state never moves back.
func (p *Peer) adoptOutcome(f *Job) {
	if f == nil || !f.State.Terminal() {
		return
	}
	p.mu.Lock()
	o := p.owned[f.ID]
	if o == nil || o.job.State.Terminal() {
		p.mu.Unlock()
		return
	}
	j := o.job
	var stop *Attempt
	if cur := j.Current(); j.State == Running && cur != nil {
		c := *cur
		stop = &c
	}
	j.State, j.ExitCode, j.Reason, j.Finished = f.State, cloneInt(f.ExitCode), f.Reason, f.Finished
	j.Attempts = append([]Attempt(nil), f.Attempts...)
	j.Duplicates += f.Duplicates
	j.Version++
	c := j.Clone()
	p.mu.Unlock()
	p.log.Info("job had finished under its previous owner; keeping that outcome", "job_id", f.ID)
	p.commit(c, "finished")
	if stop != nil {
		p.tellStop(stop.Peer, attemptRef{Job: f.ID, Attempt: stop.N, Epoch: stop.Epoch})
	}
}

// replicateResp answers a replicate request with the finished records
// the replica holds for jobs the sender sent as unfinished.
type replicateResp struct {
	Finished []*Job `json:"finished,omitempty"`
}

// sendReplicaOutput copies the output of finished jobs' last attempts.
func (p *Peer) sendReplicaOutput(replica string, jobs []*Job) error {
	for _, j := range jobs {
		if !j.State.Terminal() || len(j.Attempts) == 0 {
			continue
		}
		n := len(j.Attempts)
		for _, s := range []byte{Stdout, Stderr} {
			if length, err := p.outputLength(outKey{j.ID, n, s}); err != nil || length == 0 {
				continue
			}
			var off int64
			for off < maxReplicatedOutput {
				resp, err := p.localLogs(j, logsReq{ID: j.ID, Attempt: n, Stream: s, Offset: off, Max: maxChunkBytes})
				if err != nil {
					return err
				}
				if len(resp.Data) == 0 {
					break
				}
				req := outputReq{attemptRef: attemptRef{Job: j.ID, Attempt: n, Epoch: j.Epoch},
					Stream: s, Offset: off, Data: resp.Data}
				ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
				_, err = p.tr.Request(ctx, replica, rpcReplicaOutput, encode(req))
				cancel()
				if err != nil {
					return err
				}
				off = resp.Next
			}
		}
	}
	return nil
}

// replicaTimeout bounds one replication request. It is shorter than the
// time a runner waits for its result to be acknowledged, so that a replica
// that died unnoticed delays a result rather than failing it.
const replicaTimeout = 2 * time.Second

// maxReplicatedOutput bounds how much of one stream a replica gets.
const maxReplicatedOutput = 16 << 20

type replicateReq struct {
	Jobs []*Job `json:"jobs"`
}

// handleReplicate stores copies of jobs their owner sent. The answer
// means they are on disk. A copy with a higher epoch than a job this peer
// owns means the job was taken over: this peer steps down.
func (p *Peer) handleReplicate(ctx context.Context, from string, b []byte) ([]byte, error) {
	var req replicateReq
	if err := decode(b, &req); err != nil || len(req.Jobs) > maxBatch {
		return nil, p.bad(from, errors.New("replicate: bad request"))
	}
	evs := make([]*Event, len(req.Jobs))
	for i, j := range req.Jobs {
		if j == nil || !validJobID(j.ID) || j.Owner != from {
			return nil, p.bad(from, errors.New("replicate: bad job"))
		}
		p.stepDown(j)
		ev := eventOf(j, "replica")
		evs[i] = &ev
	}
	stale, err := p.saveJobs(req.Jobs, evs)
	if err != nil {
		return nil, err
	}
	var resp replicateResp
	for i, j := range req.Jobs {
		if !stale[i] {
			p.holdReplica(j)
			continue
		}
		if j.State.Terminal() {
			continue
		}
		if mine, err := p.loadJob(j.ID); err == nil && mine.State.Terminal() {
			resp.Finished = append(resp.Finished, mine)
		}
	}
	p.mu.Lock()
	p.notifyLocked()
	p.mu.Unlock()
	return encode(resp), nil
}

// handleReplicaOutput stores output of a job this peer holds a copy of.
func (p *Peer) handleReplicaOutput(ctx context.Context, from string, b []byte) ([]byte, error) {
	var req outputReq
	if err := decode(b, &req); err != nil || checkRef(req.attemptRef) != nil ||
		(req.Stream != Stdout && req.Stream != Stderr) || req.Offset < 0 || len(req.Data) > maxChunkBytes {
		return nil, p.bad(from, errors.New("replica output: bad request"))
	}
	j, err := p.loadJob(req.Job)
	if err != nil || j.Owner != from {
		return nil, fmt.Errorf("replica output: job %s is not held from %s", req.Job, shortID(from))
	}
	key := outKey{req.Job, req.Attempt, req.Stream}
	length, err := p.outputLength(key)
	if err != nil {
		return nil, err
	}
	if end := req.Offset + int64(len(req.Data)); req.Offset <= length && end > length {
		chunk := outputKey(req.Job, req.Attempt, req.Stream, length)
		if err := p.db.Put(chunk, req.Data[length-req.Offset:]); err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.outLen[key] = end
		p.mu.Unlock()
	}
	return []byte("{}"), nil
}

// heldJob is a job this peer keeps a copy of for another owner.
type heldJob struct {
	owner    string
	replicas []string
}

// holdReplica tracks (or forgets, once finished) a replica copy.
func (p *Peer) holdReplica(j *Job) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if j.State.Terminal() || j.Owner == p.id {
		delete(p.held, j.ID)
		return
	}
	p.held[j.ID] = &heldJob{owner: j.Owner, replicas: j.Replicas}
}

// stepDown gives up a job this peer owns when another peer holds it
// under a higher epoch: the job was taken over while this peer was gone.
func (p *Peer) stepDown(newer *Job) {
	p.mu.Lock()
	o := p.owned[newer.ID]
	if o == nil || newer.Owner == p.id || newer.Epoch <= o.job.Epoch {
		p.mu.Unlock()
		return
	}
	delete(p.owned, newer.ID)
	var stop []*task
	for ref, t := range p.tasks {
		if ref.Job == newer.ID && t.owner == p.id {
			stop = append(stop, t)
		}
	}
	p.mu.Unlock()
	p.log.Info("job taken over by another peer; stepping down",
		"job_id", newer.ID, "owner", newer.Owner, "epoch", newer.Epoch)
	for _, t := range stop {
		t.stop(stopStale)
	}
}

// takeoverLoop watches the owners of the jobs this peer holds copies of,
// and takes over the jobs whose owner has been gone too long when this
// peer is the first live replica.
func (p *Peer) takeoverLoop() {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	absent := make(map[string]time.Time) // owner -> when first seen gone
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		var due []string
		p.mu.Lock()
		if !p.majorityLocked(now) {
			// Cut off from most of the mesh, this peer cannot tell a dead
			// owner from its own isolation: judge again from scratch once
			// it is back with the others.
			p.mu.Unlock()
			clear(absent)
			continue
		}
		seen := make(map[string]bool)
		for id, h := range p.held {
			seen[h.owner] = true
			if p.reachableLocked(h.owner, now) {
				delete(absent, h.owner)
				continue
			}
			since, ok := absent[h.owner]
			if !ok {
				absent[h.owner] = now
				continue
			}
			if now.Sub(since) >= p.cfg.OwnerTimeout && p.successorLocked(h) == p.id {
				due = append(due, id)
			}
		}
		p.mu.Unlock()
		for o := range absent {
			if !seen[o] {
				delete(absent, o)
			}
		}
		for _, id := range due {
			if err := p.takeOver(id, now); err != nil {
				p.log.Warn("take over job", "job_id", id, "err", err)
			}
		}
	}
}

// successorLocked is the peer that takes a job over from its lost owner:
// the first replica in the job's list that is this peer or a live member.
// Every peer that holds the list computes the same answer.
func (p *Peer) successorLocked(h *heldJob) string {
	for _, r := range h.replicas {
		if r == p.id || p.reachableLocked(r, time.Now()) {
			return r
		}
	}
	return ""
}

// takeOver makes this peer the owner of job id under a higher epoch. A
// running attempt is lost with its owner (its runner fenced itself), so
// the job goes back to pending.
func (p *Peer) takeOver(id string, now time.Time) error {
	j, err := p.loadJob(id)
	if err != nil {
		return err
	}
	p.mu.Lock()
	delete(p.held, id)
	p.mu.Unlock()
	if j.State.Terminal() || j.Owner == p.id {
		return nil
	}
	old := j.Owner
	j.Epoch++
	j.Version++
	j.Owner = p.id
	if j.State == Running {
		j.loseAttempt(fmt.Sprintf("owner %s lost; job taken over by %s", shortID(old), shortID(p.id)), now)
	}
	var others []string
	for _, m := range p.tr.Members() {
		if m != old {
			others = append(others, m)
		}
	}
	j.Replicas = rankPeers(j.ID, others, p.cfg.Replicas)
	p.mu.Lock()
	p.owned[id] = &owned{job: j, committed: j.Clone()}
	p.queue = append(p.queue, id)
	c := j.Clone()
	p.mu.Unlock()
	p.log.Info("took over job from lost owner", "job_id", id, "old_owner", old, "epoch", j.Epoch)
	if err := p.commit(c, "takeover"); err != nil {
		return err
	}
	p.wake()
	return nil
}
