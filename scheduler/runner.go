package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/blixard/blixard/executor"
	"github.com/blixard/blixard/store"
)

// Why a runner stops an attempt before its workload ends.
const (
	stopCancel   = "cancelled"
	stopStale    = "attempt no longer current"
	stopFence    = "lease lost: owner unreachable"
	stopShutdown = "peer shutting down"
)

// task is an attempt running on this peer.
type task struct {
	ref   attemptRef
	owner string
	job   *Job
	lease time.Duration
	dir   string

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	out    [3]*outbuf // 1 stdout, 2 stderr
	shipMu sync.Mutex // one sender of output at a time

	mu         sync.Mutex
	lastAck    time.Time // guarded by mu; when the last renewed heartbeat was sent
	stopReason string    // guarded by mu
}

// stop ends the workload for reason; the first reason given sticks.
func (t *task) stop(reason string) {
	t.mu.Lock()
	if t.stopReason == "" {
		t.stopReason = reason
	}
	t.mu.Unlock()
	t.cancel()
}

func (t *task) stopped() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stopReason
}

// freeSlotsLocked is how many more tasks this peer can start now.
func (p *Peer) freeSlotsLocked() int {
	if p.draining || p.closed {
		return 0
	}
	return p.cfg.Slots - len(p.tasks) - p.reserved
}

// freeResourcesLocked is the CPU and memory not reserved by tasks.
func (p *Peer) freeResourcesLocked() (float64, int64) {
	cpu, mem := float64(p.host.CPUs), p.host.Memory
	for _, t := range p.tasks {
		cpu -= t.job.Spec.Resources.CPU
		mem -= int64(t.job.Spec.Resources.Memory)
	}
	return cpu, mem
}

// startTask runs a granted attempt here. The grant is already durable at
// its owner.
func (p *Peer) startTask(g grant, owner string, now time.Time) {
	ref := attemptRef{Job: g.Job.ID, Attempt: g.Attempt, Epoch: g.Epoch}
	ctx, cancel := context.WithCancel(p.ctx)
	t := &task{
		ref: ref, owner: owner, job: g.Job, lease: g.Lease,
		dir:     filepath.Join(p.cfg.DataDir, "work", fmt.Sprintf("%s-%d", ref.Job, ref.Attempt)),
		ctx:     ctx,
		cancel:  cancel,
		done:    make(chan struct{}),
		lastAck: now,
	}
	t.out[1] = newOutbuf(ctx)
	t.out[2] = newOutbuf(ctx)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		cancel()
		return
	}
	if old := p.tasks[ref]; old != nil {
		p.mu.Unlock()
		cancel()
		return // the same grant twice: one copy runs
	}
	p.tasks[ref] = t
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.runTask(t)
	}()
}

// runTask runs one attempt to its end and reports the result.
func (p *Peer) runTask(t *task) {
	defer close(t.done)
	defer p.finishTask(t)
	res, err := p.execute(t)
	var req resultReq
	req.attemptRef = t.ref
	req.ExitCode = res.ExitCode
	req.Reason = res.Reason
	req.Cancelled = res.Cancelled
	if err != nil && req.Reason == "" {
		req.Reason = err.Error()
	}
	switch reason := t.stopped(); {
	case reason == stopCancel:
		req.Cancelled = true
		req.Reason = "cancelled"
	case reason == stopShutdown:
		// Never report an interrupted attempt as a result of its own.
		req.Lost, req.Reason = true, reason
	case reason != "":
		req.Lost, req.Reason = true, reason
	}
	p.log.Debug("attempt ended", "job_id", t.ref.Job, "attempt", t.ref.Attempt,
		"exit_code", req.ExitCode, "reason", req.Reason)
	p.shipAll(t)
	p.report(t, req)
}

// execute prepares the attempt's directory and runs the executor.
func (p *Peer) execute(t *task) (executor.Result, error) {
	spec := t.job.Spec
	p.mu.Lock()
	ex := p.execs[spec.Executor]
	p.mu.Unlock()
	if ex == nil {
		return executor.Result{ExitCode: executor.ExitNotRun,
			Reason: "executor " + spec.Executor + " not available on this peer"}, nil
	}
	if err := os.MkdirAll(t.dir, 0o700); err != nil {
		return executor.Result{ExitCode: executor.ExitNotRun, Reason: "work dir: " + err.Error()}, nil
	}
	// A workload that can outlive this process is recorded before it
	// starts, so that a restart finds it.
	rec := runningRecord{Ref: t.ref, Owner: t.owner, Executor: spec.Executor, Dir: t.dir}
	_, reaps := ex.(executor.Reaper)
	if _, ok := ex.(attemptReaper); ok {
		reaps = true
	}
	if reaps {
		if err := p.db.Put(runningKey(t.ref.Job, t.ref.Attempt), encode(rec)); err != nil {
			return executor.Result{ExitCode: executor.ExitNotRun, Reason: "store: " + err.Error()}, nil
		}
	}
	task := executor.Task{
		JobID:     t.ref.Job,
		Attempt:   t.ref.Attempt,
		Command:   spec.Command,
		Env:       spec.Env,
		Dir:       t.dir,
		Workdir:   spec.Workdir,
		Image:     spec.Image,
		Resources: executor.Resources{CPU: spec.Resources.CPU, Memory: int64(spec.Resources.Memory)},
		Payload:   spec.Payload,
		Stdout:    t.out[1],
		Stderr:    t.out[2],
		Timeout:   spec.Timeout.D(),
		Grace:     spec.Grace.D(),
		Started: func(handle string) {
			if !reaps {
				return
			}
			rec.Handle = handle
			if err := p.db.Put(runningKey(t.ref.Job, t.ref.Attempt), encode(rec)); err != nil {
				p.log.Warn("record running attempt", "job_id", t.ref.Job, "err", err)
			}
		},
	}
	if spec.Stdin != "" {
		task.Stdin = strings.NewReader(spec.Stdin)
	}
	if spec.MountWorkdir != "" {
		task.Mounts = []executor.Mount{{Source: t.dir, Target: spec.MountWorkdir}}
	}
	if spec.Module != "" {
		path, err := p.moduleFile(t.ctx, spec.Module, t.owner)
		if err != nil {
			return executor.Result{ExitCode: executor.ExitNotRun, Reason: err.Error()}, nil
		}
		task.Module = path
		task.ModuleHash = strings.TrimPrefix(spec.Module, modulePrefix)
	}
	go p.ship(t)
	return ex.Run(t.ctx, task)
}

// finishTask frees the slot and forgets the attempt.
func (p *Peer) finishTask(t *task) {
	t.cancel()
	t.out[1].close()
	t.out[2].close()
	if err := os.RemoveAll(t.dir); err != nil {
		p.log.Warn("remove work dir", "dir", t.dir, "err", err)
	}
	if err := p.forgetRunning(t); err != nil && !errors.Is(err, store.ErrClosed) {
		p.log.Warn("forget running attempt", "job_id", t.ref.Job, "err", err)
	}
	p.mu.Lock()
	delete(p.tasks, t.ref)
	p.mu.Unlock()
	p.wake()
	p.announceSoon()
}

// forgetRunning deletes the running record of t, if execute wrote one.
func (p *Peer) forgetRunning(t *task) error {
	key := runningKey(t.ref.Job, t.ref.Attempt)
	if _, err := p.db.Get(key); errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return p.db.Delete(key)
}

// call sends a request to peer to, or serves it here when to is this
// peer, so that local and remote work take one path.
func (p *Peer) call(ctx context.Context, to, name string, req []byte) ([]byte, error) {
	if to == p.id {
		h := p.handlers[name]
		if h == nil {
			return nil, fmt.Errorf("no handler %s", name)
		}
		return h(ctx, p.id, req)
	}
	return p.tr.Request(ctx, to, name, req)
}

// report delivers the result to the owner, retrying until it answers or
// the attempt's lease is long gone (the owner has then re-run the job).
func (p *Peer) report(t *task, req resultReq) {
	deadline := time.Now().Add(3 * t.lease)
	backoff := 100 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 3*replicaTimeout)
		b, err := p.call(ctx, t.owner, rpcResult, encode(req))
		cancel()
		if err == nil {
			var resp resultResp
			if decode(b, &resp) == nil {
				p.log.Debug("result delivered", "job_id", t.ref.Job,
					"applied", resp.Applied, "stale", resp.Stale)
			}
			return
		}
		if p.ctx.Err() != nil || time.Now().After(deadline) {
			p.log.Warn("result not delivered", "job_id", t.ref.Job,
				"owner", t.owner, "err", err)
			return
		}
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(backoff + jitter(backoff)):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// stopTask stops a running attempt, if it runs here.
func (p *Peer) stopTask(ref attemptRef, reason string) bool {
	p.mu.Lock()
	t := p.tasks[ref]
	p.mu.Unlock()
	if t == nil {
		return false
	}
	t.stop(reason)
	return true
}

func (p *Peer) handleStop(ctx context.Context, from string, b []byte) ([]byte, error) {
	var ref attemptRef
	if err := decode(b, &ref); err != nil || checkRef(ref) != nil {
		return nil, p.bad(from, fmt.Errorf("stop: bad request"))
	}
	p.mu.Lock()
	t := p.tasks[ref]
	p.mu.Unlock()
	if t == nil || t.owner != from {
		return []byte(`{"stopped":false}`), nil
	}
	t.stop(stopCancel)
	return []byte(`{"stopped":true}`), nil
}

// heartbeatLoop renews the leases of running attempts with their owners,
// and stops attempts whose lease this peer can no longer be sure of.
func (p *Peer) heartbeatLoop() {
	tick := time.NewTicker(p.cfg.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-tick.C:
		}
		byOwner := make(map[string][]*task)
		p.mu.Lock()
		for _, t := range p.tasks {
			byOwner[t.owner] = append(byOwner[t.owner], t)
		}
		p.mu.Unlock()
		var wg sync.WaitGroup
		for owner, ts := range byOwner {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.heartbeat(owner, ts)
			}()
		}
		wg.Wait()
		p.fence(time.Now())
	}
}

// heartbeat renews ts's leases with owner and acts on its verdicts.
func (p *Peer) heartbeat(owner string, ts []*task) {
	req := heartbeatReq{Attempts: make([]attemptRef, len(ts))}
	for i, t := range ts {
		req.Attempts[i] = t.ref
	}
	sent := time.Now()
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.Heartbeat)
	defer cancel()
	b, err := p.call(ctx, owner, rpcHeartbeat, encode(req))
	if err != nil {
		p.log.Debug("heartbeat failed", "owner", owner, "err", err)
		return
	}
	var resp heartbeatResp
	if err := decode(b, &resp); err != nil || len(resp.Verdicts) != len(ts) {
		p.log.Debug("bad heartbeat answer", "owner", owner)
		return
	}
	for i, t := range ts {
		switch resp.Verdicts[i] {
		case verdictOK:
			t.mu.Lock()
			t.lastAck = sent
			t.mu.Unlock()
		case verdictCancel:
			t.stop(stopCancel)
		default:
			t.stop(stopStale)
		}
	}
}

// fence stops attempts whose lease may have expired at the owner: the
// last renewal was sent more than a lease ago, less a safety margin, on
// this peer's own monotonic clock.
func (p *Peer) fence(now time.Time) {
	p.mu.Lock()
	var late []*task
	for _, t := range p.tasks {
		t.mu.Lock()
		margin := max(t.lease/10, 100*time.Millisecond)
		if t.stopReason == "" && now.Sub(t.lastAck) > t.lease-margin {
			late = append(late, t)
		}
		t.mu.Unlock()
	}
	p.mu.Unlock()
	for _, t := range late {
		p.log.Info("lease lost, stopping attempt", "job_id", t.ref.Job,
			"attempt", t.ref.Attempt, "owner", t.owner)
		t.stop(stopFence)
	}
}

// stealLoop looks for work on other peers while this one has free slots.
func (p *Peer) stealLoop() {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.stealKick:
		case <-tick.C:
		}
		for p.stealOnce() {
		}
	}
}

func (p *Peer) wakeSteal() {
	select {
	case p.stealKick <- struct{}{}:
	default:
	}
}

// stealOnce asks one victim for work and reports whether it got any.
func (p *Peer) stealOnce() bool {
	now := time.Now()
	p.mu.Lock()
	free := p.freeSlotsLocked()
	victim := p.pickVictimLocked(now)
	if free <= 0 || victim == "" || p.localWorkLocked(now) {
		p.mu.Unlock()
		return false
	}
	p.reserved += free
	req := stealReq{Free: free, Labels: p.labels}
	req.FreeCPU, req.FreeMem = p.freeResourcesLocked()
	for name := range p.execs {
		req.Executors = append(req.Executors, name)
	}
	p.stats.Steals++
	p.mu.Unlock()

	sent := time.Now()
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	b, err := p.tr.Request(ctx, victim, rpcSteal, encode(req))
	cancel()
	var resp stealResp
	if err == nil {
		err = decode(b, &resp)
	}
	p.mu.Lock()
	p.reserved -= free
	if err != nil || len(resp.Grants) == 0 {
		p.backoffVictimLocked(victim, now)
	} else {
		delete(p.victims, victim)
	}
	p.mu.Unlock()
	if err != nil {
		p.log.Debug("steal failed", "peer", victim, "err", err)
		return false
	}
	for i, g := range resp.Grants {
		if i >= free || g.Job == nil || checkRef(attemptRef{Job: g.Job.ID, Attempt: g.Attempt}) != nil {
			break
		}
		if g.Lease <= 0 || g.Lease > time.Hour {
			g.Lease = p.cfg.Lease
		}
		p.startTask(g, victim, sent)
	}
	if len(resp.Grants) > 0 {
		p.announceSoon()
	}
	return len(resp.Grants) > 0
}

// pickVictimLocked chooses a peer to steal from: two random candidates
// among those advertising pending work, and the busier of them.
func (p *Peer) pickVictimLocked(now time.Time) string {
	var cands []string
	for id, ps := range p.peers {
		if ps.ann.Pending > 0 && !now.Before(p.victims[id].until) {
			cands = append(cands, id)
		}
	}
	switch len(cands) {
	case 0:
		return ""
	case 1:
		return cands[0]
	}
	a := cands[rand.IntN(len(cands))]
	b := cands[rand.IntN(len(cands))]
	if p.peers[b].ann.Pending > p.peers[a].ann.Pending {
		return b
	}
	return a
}

// victimBackoff keeps the steal loop away from a peer that had nothing
// for this one.
type victimBackoff struct {
	until time.Time
	step  time.Duration
}

// backoffVictimLocked leaves a victim alone for a while after it had
// nothing for us, doubling up to two seconds.
func (p *Peer) backoffVictimLocked(victim string, now time.Time) {
	v := p.victims[victim]
	v.step = min(max(2*v.step, 100*time.Millisecond), 2*time.Second)
	v.until = now.Add(v.step)
	p.victims[victim] = v
}

// localWorkLocked reports whether an owned pending job could run here
// now; owned work goes first.
func (p *Peer) localWorkLocked(now time.Time) bool {
	self := p.selfOfferLocked()
	for _, id := range p.queue {
		o := p.owned[id]
		if o != nil && o.job.State == Pending && !now.Before(o.notBefore) && self.fits(o.job) {
			return true
		}
	}
	return false
}

// recoverTasks deals with attempts that ran here before a crash: each
// workload still alive is ended, and its owner hears the attempt was lost,
// so no second copy ever runs beside a first.
func (p *Peer) recoverTasks(ctx context.Context) error {
	var recs []runningRecord
	err := p.db.Scan(prefixRunning, func(k, v []byte) error {
		var r runningRecord
		if decode(v, &r) == nil {
			recs = append(recs, r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	p.sweep(ctx)
	for _, r := range recs {
		p.mu.Lock()
		ex := p.execs[r.Executor]
		p.mu.Unlock()
		if err := reapRecord(ctx, ex, r); err != nil {
			return fmt.Errorf("reap %s attempt %d: %w", r.Ref.Job, r.Ref.Attempt, err)
		}
		p.log.Info("ended workload left from before restart",
			"job_id", r.Ref.Job, "attempt", r.Ref.Attempt)
		os.RemoveAll(r.Dir)
		if err := p.db.Delete(runningKey(r.Ref.Job, r.Ref.Attempt)); err != nil {
			return err
		}
		req := resultReq{attemptRef: r.Ref, Lost: true, ExitCode: -1,
			Reason: "runner restarted; the workload was ended"}
		owner := r.Owner
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.report(&task{ref: r.Ref, owner: owner, lease: p.cfg.Lease}, req)
		}()
	}
	return nil
}

// sweeper is implemented by executors that can find every workload this
// peer started, recorded or not (containers labelled with the peer's ID).
type sweeper interface {
	Sweep(ctx context.Context, keep func(handle string) bool) (int, error)
}

// sweep ends every workload of this peer's that an executor still holds:
// after a restart nothing of ours runs until we start it again.
func (p *Peer) sweep(ctx context.Context) {
	p.mu.Lock()
	var sws []sweeper
	for _, e := range p.execs {
		if sw, ok := e.(sweeper); ok {
			sws = append(sws, sw)
		}
	}
	p.mu.Unlock()
	for _, sw := range sws {
		n, err := sw.Sweep(ctx, func(string) bool { return false })
		if err != nil {
			p.log.Warn("sweep workloads left from before restart", "err", err)
		} else if n > 0 {
			p.log.Info("removed workloads left from before restart", "count", n)
		}
	}
}

// attemptReaper is implemented by executors that can find an attempt's
// workload without a handle, for a crash between its start and the
// moment the handle was recorded.
type attemptReaper interface {
	ReapAttempt(ctx context.Context, jobID string, attempt int) error
}

// reapRecord ends the workload of an attempt recorded as running here.
func reapRecord(ctx context.Context, ex executor.Executor, r runningRecord) error {
	if r.Handle != "" {
		if rp, ok := ex.(executor.Reaper); ok {
			return rp.Reap(ctx, r.Handle)
		}
	}
	if rp, ok := ex.(attemptReaper); ok {
		return rp.ReapAttempt(ctx, r.Ref.Job, r.Ref.Attempt)
	}
	return nil
}
