package scheduler

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/blixard/blixard/executor"
	"github.com/blixard/blixard/scheduler/constraint"
	"github.com/blixard/blixard/store"
)

// Submit validates spec, stores the job durably and returns its ID. This
// peer owns the job: it decides which runner gets each attempt. Submit
// blocks until the job is on disk, not until it runs.
func (p *Peer) Submit(ctx context.Context, spec Spec) (string, error) {
	if err := spec.Validate(); err != nil {
		return "", &SpecError{err}
	}
	if spec.Module != "" {
		if _, err := p.db.Get(moduleKey(strings.TrimPrefix(spec.Module, modulePrefix))); err != nil {
			return "", &SpecError{fmt.Errorf("module: %s is not stored on this peer; add it first", spec.Module)}
		}
	}
	if err := p.alive(); err != nil {
		return "", err
	}
	now := time.Now()
	j := &Job{
		ID:        NewJobID(now),
		Spec:      spec,
		Owner:     p.id,
		Epoch:     1,
		Version:   1,
		State:     Pending,
		Reason:    "waiting for a peer to take it",
		Submitted: now,
	}
	j.Replicas = p.pickReplicas(j.ID)
	ev := eventOf(j, "submitted")
	if err := p.saveJob(j, &ev); err != nil {
		return "", fmt.Errorf("store job: %w", err)
	}
	p.mu.Lock()
	p.owned[j.ID] = &owned{job: j, committed: j.Clone()}
	p.queue = append(p.queue, j.ID)
	p.notifyLocked()
	p.mu.Unlock()
	p.emit(ev)
	p.markReplicate(j.ID)
	p.wake()
	p.log.Debug("job submitted", "job_id", j.ID, "name", spec.Name)
	return j.ID, nil
}

func (p *Peer) alive() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	return nil
}

// AddModule stores a WASM module so that jobs can name it by the hash it
// returns ("sha256:<hex>"). Runners fetch it from this peer.
func (p *Peer) AddModule(data []byte) (string, error) {
	if len(data) == 0 {
		return "", errors.New("module: empty")
	}
	if len(data) > MaxModuleBytes {
		return "", fmt.Errorf("module: %d bytes, limit %d", len(data), MaxModuleBytes)
	}
	sum := sha256.Sum256(data)
	h := fmt.Sprintf("%x", sum)
	if err := p.db.Put(moduleKey(h), data); err != nil {
		return "", fmt.Errorf("store module: %w", err)
	}
	return modulePrefix + h, nil
}

// eventOf summarises j's latest change.
func eventOf(j *Job, kind string) Event {
	ev := Event{
		Job:      j.ID,
		Name:     j.Spec.Name,
		Owner:    j.Owner,
		Kind:     kind,
		State:    j.State,
		ExitCode: j.ExitCode,
		Reason:   truncate(j.Reason, maxReason),
		Executor: j.Spec.Executor,
		Require:  j.Spec.Require,
		Epoch:    j.Epoch,
		Version:  j.Version,
		Time:     time.Now(),
	}
	if cur := j.Current(); cur != nil {
		ev.Attempt = cur.N
		ev.Peer = cur.Peer
	}
	return ev
}

// commit stores a change the owner made to j and announces it. j must be
// a copy no other goroutine changes. A finished job is also copied to its
// replicas before anyone can read the outcome here, so that no survivor
// of this peer re-runs a job whose outcome a user has seen.
func (p *Peer) commit(j *Job, kind string) error {
	return p.commitAll([]*Job{j}, kind)
}

// commitAll is commit for several jobs, in one transaction.
func (p *Peer) commitAll(jobs []*Job, kind string) error {
	evs := make([]*Event, len(jobs))
	for i, j := range jobs {
		ev := eventOf(j, kind)
		evs[i] = &ev
	}
	if _, err := p.saveJobs(jobs, evs); err != nil {
		p.log.Error("store jobs", "count", len(jobs), "err", err)
		return err
	}
	for _, j := range jobs {
		if j.State.Terminal() && len(j.Replicas) > 0 {
			p.replicateWait(j.ID, 2*replicaTimeout)
		} else {
			p.markReplicate(j.ID)
		}
	}
	p.mu.Lock()
	for _, j := range jobs {
		if o := p.owned[j.ID]; o != nil {
			if o.committed == nil || !o.committed.Newer(j) {
				o.committed = j
			}
			if j.State.Terminal() {
				delete(p.owned, j.ID)
			}
		}
	}
	p.notifyLocked()
	p.mu.Unlock()
	for _, ev := range evs {
		p.emit(*ev)
	}
	return nil
}

// placeLoop is the owner's duty cycle: it expires leases, runs owned work
// on this peer while it has free slots, and explains why pending jobs
// wait.
func (p *Peer) placeLoop() {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastExplain time.Time
	for {
		ticked := false
		select {
		case <-p.ctx.Done():
			return
		case <-p.kick:
		case <-tick.C:
			ticked = true
		}
		now := time.Now()
		if ticked {
			p.expireLeases(now)
		}
		p.placeLocal(now)
		if now.Sub(lastExplain) >= time.Second {
			p.explainPending()
			lastExplain = now
		}
		// The steal loop waits on its own signal; pass the kick on.
		p.wakeSteal()
	}
}

// expireLeases returns to pending every running job whose runner has not
// renewed its lease in time.
func (p *Peer) expireLeases(now time.Time) {
	var lost []*Job
	p.mu.Lock()
	for _, o := range p.owned {
		j := o.job
		if j.State == Running && p.overdueLocked(o, now) {
			cur := j.Current()
			ref := attemptRef{Job: j.ID, Attempt: cur.N, Epoch: cur.Epoch}
			runner := cur.Peer
			j.applyResult(cur.N, cur.Epoch, outcome{ExitCode: 124,
				Reason: fmt.Sprintf("timeout after %s, enforced by the owner", j.Spec.Timeout.D())}, now)
			if j.State == Pending {
				o.notBefore = now.Add(j.backoff(j.failedAttempts(), jitter))
				p.queue = append(p.queue, j.ID)
			}
			lost = append(lost, j.Clone())
			defer p.tellStop(runner, ref) // after p.mu is released
			continue
		}
		if j.State != Running || now.Before(o.leaseUntil) {
			continue
		}
		cur := j.Current()
		j.loseAttempt(fmt.Sprintf("lease expired: no heartbeat from %s for %s",
			shortID(cur.Peer), p.cfg.Lease), now)
		if j.State == Pending {
			p.queue = append(p.queue, j.ID)
		}
		lost = append(lost, j.Clone())
	}
	p.mu.Unlock()
	for _, j := range lost {
		p.log.Info("lease expired", "job_id", j.ID, "attempt", len(j.Attempts))
		p.commit(j, "lost")
	}
}

// overdueLocked reports whether o's running attempt has outlived its
// timeout and grace by more than a lease: the runner failed to end it.
func (p *Peer) overdueLocked(o *owned, now time.Time) bool {
	t := o.job.Spec.Timeout.D()
	if t <= 0 || o.started.IsZero() {
		return false
	}
	grace := o.job.Spec.Grace.D()
	if grace == 0 {
		grace = executor.DefaultGrace
	}
	return now.Sub(o.started) > t+grace+p.cfg.Lease
}

// placeLocal grants owned pending jobs to this peer while it has room.
func (p *Peer) placeLocal(now time.Time) {
	for ; ; now = time.Now() {
		p.mu.Lock()
		free := p.freeSlotsLocked()
		if free <= 0 {
			p.mu.Unlock()
			return
		}
		self := p.selfOfferLocked()
		picked := p.pickLocked(self, min(free, maxBatch), now, p.id)
		p.mu.Unlock()
		if len(picked) == 0 {
			return
		}
		if err := p.commitAll(grantJobs(picked), "started"); err != nil {
			return // the leases expire and the jobs run again
		}
		for _, g := range picked {
			p.startTask(g, p.id, now)
		}
	}
}

// offer is what a would-be runner can take.
type offer struct {
	executors map[string]bool
	labels    map[string]string
	freeCPU   float64
	freeMem   int64
}

func (p *Peer) selfOfferLocked() offer {
	cpu, mem := p.freeResourcesLocked()
	o := offer{executors: map[string]bool{}, labels: p.labels, freeCPU: cpu, freeMem: mem}
	for name := range p.execs {
		o.executors[name] = true
	}
	return o
}

// pickLocked chooses up to n pending owned jobs that runner can run with
// offer, starts an attempt of each and returns the grants. The caller
// holds p.mu and must commit each grant before it hands it out.
func (p *Peer) pickLocked(of offer, n int, now time.Time, runner string) []grant {
	var grants []grant
	keep := p.queue[:0]
	for i, id := range p.queue {
		o := p.owned[id]
		if o == nil || o.job.State != Pending {
			continue // dropped from the queue
		}
		if len(grants) >= n || now.Before(o.notBefore) || !of.fits(o.job) {
			keep = append(keep, id)
			continue
		}
		a, err := o.job.startAttempt(runner, now)
		if err != nil {
			keep = append(keep, id)
			continue
		}
		of.freeCPU -= o.job.Spec.Resources.CPU
		of.freeMem -= int64(o.job.Spec.Resources.Memory)
		o.leaseUntil = now.Add(p.cfg.Lease)
		o.started = now
		grants = append(grants, grant{Job: o.job.Clone(), Attempt: a.N, Epoch: a.Epoch, Lease: p.cfg.Lease})
		if len(grants) >= n {
			keep = append(keep, p.queue[i+1:]...)
			break
		}
	}
	p.queue = dedupe(keep)
	return grants
}

// grantJobs returns copies of the granted jobs, to commit.
func grantJobs(gs []grant) []*Job {
	out := make([]*Job, len(gs))
	for i, g := range gs {
		out[i] = g.Job.Clone()
	}
	return out
}

func dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// fits reports whether a runner with this offer can run j now.
func (of offer) fits(j *Job) bool {
	if !of.executors[j.Spec.Executor] {
		return false
	}
	cs, err := constraint.ParseAll(j.Spec.Require)
	if err != nil {
		return false
	}
	if ok, _ := constraint.MatchAll(cs, of.labels); !ok {
		return false
	}
	r := j.Spec.Resources
	return r.CPU <= of.freeCPU+1e-9 && int64(r.Memory) <= of.freeMem
}

// explainPending sets the reason of each pending owned job from what the
// live peers advertise.
func (p *Peer) explainPending() {
	p.mu.Lock()
	defer p.mu.Unlock()
	cands := p.candidatesLocked()
	changed := false
	for _, o := range p.owned {
		if o.job.State != Pending {
			continue
		}
		r := explain(o.job, cands)
		if time.Now().Before(o.notBefore) {
			r = o.job.Reason
		}
		if r != o.job.Reason {
			o.job.Reason = r
			changed = true
		}
		// The reason is shown, not stored: it changes with the mesh.
		if c := o.committed; c != nil && c.State == Pending && c.Reason != r {
			c.Reason = r
			changed = true
		}
	}
	if changed {
		p.notifyLocked()
	}
}

// candidate is a peer as placement sees it.
type candidate struct {
	id        string
	executors map[string]bool
	labels    map[string]string
	cpu       float64
	mem       int64
	draining  bool
}

func (p *Peer) candidatesLocked() []candidate {
	self := candidate{id: p.id, executors: map[string]bool{}, labels: p.labels,
		cpu: float64(p.host.CPUs), mem: p.host.Memory, draining: p.draining}
	for name := range p.execs {
		self.executors[name] = true
	}
	out := []candidate{self}
	for id, ps := range p.peers {
		c := candidate{id: id, executors: map[string]bool{}, labels: ps.ann.Labels,
			cpu: ps.ann.CPU, mem: ps.ann.Memory, draining: ps.ann.Draining}
		for _, e := range ps.ann.Executors {
			c.executors[e.Name] = true
		}
		out = append(out, c)
	}
	return out
}

// explain says why j waits, naming the first requirement no live peer
// meets.
func explain(j *Job, cands []candidate) string {
	var withExec []candidate
	for _, c := range cands {
		if c.executors[j.Spec.Executor] {
			withExec = append(withExec, c)
		}
	}
	if len(withExec) == 0 {
		return "no peer advertises executor " + j.Spec.Executor
	}
	cs, _ := constraint.ParseAll(j.Spec.Require)
	var matching []candidate
	for _, c := range withExec {
		if ok, _ := constraint.MatchAll(cs, c.labels); ok {
			matching = append(matching, c)
		}
	}
	if len(matching) == 0 {
		for _, cst := range cs {
			met := false
			for _, c := range withExec {
				if cst.Match(c.labels) {
					met = true
					break
				}
			}
			if !met {
				return "no peer meets requirement " + cst.String()
			}
		}
		return "no single peer meets all of: " + strings.Join(j.Spec.Require, ", ")
	}
	r := j.Spec.Resources
	big := false
	for _, c := range matching {
		if r.CPU <= c.cpu+1e-9 && int64(r.Memory) <= c.mem {
			big = true
			if !c.draining {
				return "waiting for a free slot"
			}
		}
	}
	if !big {
		return fmt.Sprintf("no peer has resources cpu=%g memory=%s", r.CPU, r.Memory)
	}
	return "waiting: every matching peer is draining"
}

// handleSteal grants a thief up to the number of jobs it has room for.
func (p *Peer) handleSteal(ctx context.Context, from string, b []byte) ([]byte, error) {
	var req stealReq
	if err := decode(b, &req); err != nil {
		return nil, p.bad(from, err)
	}
	if req.Free < 1 || len(req.Labels) > maxLabels || len(req.Executors) > maxLabels {
		return nil, p.bad(from, fmt.Errorf("steal: free %d, %d labels", req.Free, len(req.Labels)))
	}
	of := offer{executors: map[string]bool{}, labels: req.Labels, freeCPU: req.FreeCPU, freeMem: req.FreeMem}
	for _, e := range req.Executors {
		of.executors[e] = true
	}
	now := time.Now()
	p.mu.Lock()
	grants := p.pickLocked(of, min(req.Free, maxBatch), now, from)
	p.stats.Granted += uint64(len(grants))
	p.mu.Unlock()
	if len(grants) > 0 {
		if err := p.commitAll(grantJobs(grants), "started"); err != nil {
			return nil, err
		}
	}
	return encode(stealResp{Grants: grants}), nil
}

// handleHeartbeat renews the leases of a runner's attempts.
func (p *Peer) handleHeartbeat(ctx context.Context, from string, b []byte) ([]byte, error) {
	var req heartbeatReq
	if err := decode(b, &req); err != nil {
		return nil, p.bad(from, err)
	}
	if len(req.Attempts) > 4096 {
		return nil, p.bad(from, fmt.Errorf("heartbeat: %d attempts", len(req.Attempts)))
	}
	now := time.Now()
	resp := heartbeatResp{Verdicts: make([]string, len(req.Attempts))}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range req.Attempts {
		resp.Verdicts[i] = verdictStale
		o := p.owned[r.Job]
		if o == nil {
			continue // terminal or not ours: the attempt is not current
		}
		cur := o.job.Current()
		if cur == nil || cur.N != r.Attempt || cur.Peer != from || r.Epoch != o.job.Epoch {
			continue
		}
		if o.job.State == Running {
			o.leaseUntil = now.Add(p.cfg.Lease)
			resp.Verdicts[i] = verdictOK
		}
	}
	return encode(resp), nil
}

// handleOutput stores a chunk of an attempt's output.
func (p *Peer) handleOutput(ctx context.Context, from string, b []byte) ([]byte, error) {
	var req outputReq
	if err := decode(b, &req); err != nil {
		return nil, p.bad(from, err)
	}
	if err := checkRef(req.attemptRef); err != nil || (req.Stream != 1 && req.Stream != 2) ||
		req.Offset < 0 || len(req.Data) > maxChunkBytes {
		return nil, p.bad(from, fmt.Errorf("output: bad chunk"))
	}
	j, err := p.jobForAttempt(req.attemptRef, from)
	if err != nil {
		return encode(outputResp{Stale: true, Error: err.Error()}), nil
	}
	key := outKey{j.ID, req.Attempt, req.Stream}
	length, err := p.outputLength(key)
	if err != nil {
		return nil, err
	}
	end := req.Offset + int64(len(req.Data))
	if req.Offset <= length && end > length {
		data := req.Data[length-req.Offset:]
		if length < MaxOutputBytes {
			if err := p.db.Put(outputKey(j.ID, req.Attempt, req.Stream, length), data); err != nil {
				return nil, fmt.Errorf("store output: %w", err)
			}
		}
		length = end
		p.mu.Lock()
		p.outLen[key] = length
		p.notifyLocked()
		p.mu.Unlock()
	}
	return encode(outputResp{Length: length}), nil
}

// MaxOutputBytes bounds the stored output of one stream of one attempt;
// output past it is acknowledged and dropped.
const MaxOutputBytes = 256 << 20

// jobForAttempt returns the owned job of ref if from runs that attempt.
func (p *Peer) jobForAttempt(ref attemptRef, from string) (*Job, error) {
	p.mu.Lock()
	o := p.owned[ref.Job]
	var j *Job
	if o != nil {
		j = o.job.Clone()
	}
	p.mu.Unlock()
	if j == nil {
		var err error
		if j, err = p.loadJob(ref.Job); err != nil {
			return nil, fmt.Errorf("job %s: %w", ref.Job, err)
		}
		if j.Owner != p.id {
			return nil, fmt.Errorf("job %s is owned by %s", ref.Job, shortID(j.Owner))
		}
	}
	if ref.Attempt > len(j.Attempts) || j.Attempts[ref.Attempt-1].Peer != from ||
		j.Attempts[ref.Attempt-1].Epoch != ref.Epoch {
		return nil, fmt.Errorf("attempt %d of job %s is not %s's", ref.Attempt, ref.Job, shortID(from))
	}
	return j, nil
}

// outputLength returns how many bytes of a stream are stored.
func (p *Peer) outputLength(key outKey) (int64, error) {
	p.mu.Lock()
	n, ok := p.outLen[key]
	p.mu.Unlock()
	if ok {
		return n, nil
	}
	err := p.db.Scan(outputPrefix(key.job, key.attempt, key.stream), func(k, v []byte) error {
		off := int64(beUint64(k[len(k)-8:]))
		n = off + int64(len(v))
		return nil
	})
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	p.outLen[key] = n
	p.mu.Unlock()
	return n, nil
}

// handleResult records how an attempt ended.
func (p *Peer) handleResult(ctx context.Context, from string, b []byte) ([]byte, error) {
	var req resultReq
	if err := decode(b, &req); err != nil {
		return nil, p.bad(from, err)
	}
	if err := checkRef(req.attemptRef); err != nil {
		return nil, p.bad(from, err)
	}
	req.Reason = truncate(req.Reason, maxReason)
	now := time.Now()
	p.mu.Lock()
	o := p.owned[req.Job]
	if o == nil {
		p.mu.Unlock()
		return p.lateResult(req, from)
	}
	j := o.job
	var applied, retry bool
	kind := "finished"
	if req.Lost {
		cur := j.Current()
		if j.State == Running && cur != nil && cur.N == req.Attempt && cur.Peer == from &&
			req.Epoch == j.Epoch {
			j.loseAttempt(req.Reason, now)
			applied, retry, kind = true, j.State == Pending, "lost"
		} else {
			j.Duplicates++
			j.Version++
		}
	} else if a := attemptOf(j, req.Attempt); a == nil || a.Peer != from {
		// Only the runner of an attempt may report its end.
		p.mu.Unlock()
		return encode(resultResp{Stale: true}), nil
	} else {
		applied, retry = j.applyResult(req.Attempt, req.Epoch,
			outcome{ExitCode: req.ExitCode, Reason: req.Reason, Cancelled: req.Cancelled}, now)
	}
	if retry {
		if kind != "lost" {
			o.notBefore = now.Add(j.backoff(j.failedAttempts(), jitter))
			kind = "retrying"
		}
		p.queue = append(p.queue, j.ID)
	}
	if !applied {
		p.stats.Duplicates++
	}
	c := j.Clone()
	p.mu.Unlock()
	if err := p.commit(c, kind); err != nil {
		return nil, err
	}
	p.wake()
	return encode(resultResp{Applied: applied}), nil
}

// attemptOf returns attempt n of j, or nil.
func attemptOf(j *Job, n int) *Attempt {
	if n < 1 || n > len(j.Attempts) {
		return nil
	}
	return &j.Attempts[n-1]
}

// lateResult handles a result for a job no longer live here: finished, or
// owned elsewhere. A finished job counts it as a duplicate.
func (p *Peer) lateResult(req resultReq, from string) ([]byte, error) {
	j, err := p.loadJob(req.Job)
	if errors.Is(err, store.ErrNotFound) {
		return encode(resultResp{Stale: true}), nil
	}
	if err != nil {
		return nil, err
	}
	if j.Owner != p.id {
		return encode(resultResp{Stale: true}), nil
	}
	if _, retry := j.applyResult(req.Attempt, req.Epoch,
		outcome{ExitCode: req.ExitCode, Reason: req.Reason, Cancelled: req.Cancelled},
		time.Now()); retry {
		return nil, errors.New("late result changed a finished job")
	}
	p.mu.Lock()
	p.stats.Duplicates++
	p.mu.Unlock()
	if err := p.commit(j, "duplicate"); err != nil {
		return nil, err
	}
	return encode(resultResp{Applied: false}), nil
}

// Cancel ends job id wherever it runs. The job is cancelled at once; its
// runner stops the workload within a heartbeat.
func (p *Peer) Cancel(ctx context.Context, id string) error {
	if !validJobID(id) {
		return fmt.Errorf("job id %q: %w", truncate(id, 40), ErrNotFound)
	}
	p.mu.Lock()
	o := p.owned[id]
	p.mu.Unlock()
	if o == nil {
		j, err := p.findJob(ctx, id)
		if err != nil {
			return err
		}
		if j.State.Terminal() {
			return fmt.Errorf("job %s already %s", id, j.State)
		}
		if j.Owner == p.id {
			return fmt.Errorf("job %s: not loaded; retry", id)
		}
		_, err = p.tr.Request(ctx, j.Owner, rpcCancel, encode(jobReq{ID: id}))
		return err
	}
	return p.cancelOwned(ctx, id)
}

func (p *Peer) cancelOwned(ctx context.Context, id string) error {
	p.mu.Lock()
	o := p.owned[id]
	if o == nil {
		p.mu.Unlock()
		return fmt.Errorf("job %s is not running here", id)
	}
	cur := o.job.Current()
	if !o.job.cancel(time.Now()) {
		p.mu.Unlock()
		return fmt.Errorf("job %s already %s", id, o.job.State)
	}
	c := o.job.Clone()
	p.mu.Unlock()
	if err := p.commit(c, "cancelled"); err != nil {
		return err
	}
	if cur != nil && cur.State == AttemptCancelled {
		ref := attemptRef{Job: id, Attempt: cur.N, Epoch: cur.Epoch}
		p.tellStop(cur.Peer, ref)
	}
	return nil
}

func (p *Peer) handleCancel(ctx context.Context, from string, b []byte) ([]byte, error) {
	var req jobReq
	if err := decode(b, &req); err != nil || !validJobID(req.ID) {
		return nil, p.bad(from, fmt.Errorf("cancel: bad request"))
	}
	if err := p.cancelOwned(ctx, req.ID); err != nil {
		return nil, err
	}
	return []byte("{}"), nil
}

// tellStop asks runner to stop an attempt now rather than at its next
// heartbeat. It does not wait.
func (p *Peer) tellStop(runner string, ref attemptRef) {
	if runner == p.id {
		p.stopTask(ref, stopCancel)
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		defer cancel()
		if _, err := p.tr.Request(ctx, runner, rpcStop, encode(ref)); err != nil {
			p.log.Debug("tell runner to stop", "job_id", ref.Job, "peer", runner, "err", err)
		}
	}()
}

// pickReplicas chooses the peers that keep copies of job id: the members
// that rank highest for it by rendezvous hashing, so any peer computes
// the same order.
func (p *Peer) pickReplicas(id string) []string {
	ms := p.tr.Members()
	return rankPeers(id, ms, p.cfg.Replicas)
}

// rankPeers orders peers by a hash of (job, peer) and returns the first n.
func rankPeers(job string, peers []string, n int) []string {
	type ranked struct {
		id   string
		rank [32]byte
	}
	rs := make([]ranked, len(peers))
	for i, id := range peers {
		rs[i] = ranked{id, sha256.Sum256([]byte(job + "/" + id))}
	}
	sort.Slice(rs, func(i, j int) bool {
		return string(rs[i].rank[:]) < string(rs[j].rank[:])
	})
	out := make([]string, 0, n)
	for i := 0; i < len(rs) && i < n; i++ {
		out = append(out, rs[i].id)
	}
	return out
}

// bad counts and reports a malformed message from a peer.
func (p *Peer) bad(from string, err error) error {
	p.mu.Lock()
	p.stats.BadMessages++
	p.mu.Unlock()
	p.log.Debug("bad message", "peer", from, "err", err)
	return fmt.Errorf("bad request: %w", err)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[len(id)-12:]
	}
	return id
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}
