package scheduler

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/blixard/blixard/scheduler/constraint"
	"github.com/blixard/blixard/store"
)

func (p *Peer) registerHandlers() {
	p.handlers = map[string]func(context.Context, string, []byte) ([]byte, error){
		rpcSteal:     p.handleSteal,
		rpcHeartbeat: p.handleHeartbeat,
		rpcOutput:    p.handleOutput,
		rpcResult:    p.handleResult,
		rpcStop:      p.handleStop,
		rpcReplicate: p.handleReplicate,
		rpcJob:       p.handleJob,
		rpcLogs:      p.handleLogs,
		rpcInfo:      p.handleInfo,
		rpcSince:     p.handleSince,
		rpcModule:    p.handleModule,
		rpcCancel:    p.handleCancel,

		rpcReplicaOutput: p.handleReplicaOutput,
	}
	for name, h := range p.handlers {
		p.tr.Handle(name, h)
	}
}

// announcement describes this peer now.
func (p *Peer) announcement() Announce {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.annSeq++
	a := Announce{
		Peer:      p.id,
		Addrs:     p.addrs,
		Executors: p.executors,
		Labels:    p.labels,
		Slots:     p.cfg.Slots,
		Running:   len(p.tasks),
		CPU:       float64(p.host.CPUs),
		Memory:    p.host.Memory,
		Draining:  p.draining,
		Seq:       p.annSeq,
	}
	a.FreeCPU, a.FreeMem = p.freeResourcesLocked()
	now := time.Now()
	for _, o := range p.owned {
		if o.job.State == Pending && !now.Before(o.notBefore) {
			a.Pending++
		}
	}
	return a
}

// announceLoop gossips this peer's capabilities and load periodically and
// soon after they change.
func (p *Peer) announceLoop() {
	tick := time.NewTicker(p.cfg.AnnounceInterval)
	defer tick.Stop()
	lastProbe := time.Now()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-tick.C:
			// Executors come and go (a Docker daemon stops): look again.
			if time.Since(lastProbe) >= probeInterval {
				p.probeExecutors(p.ctx)
				lastProbe = time.Now()
			}
		case <-p.annKick:
			// Coalesce a burst of changes into one announcement.
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		a := p.announcement()
		if err := p.tr.Publish(p.ctx, topicAnnounce, encode(a)); err != nil && p.ctx.Err() == nil {
			p.log.Debug("publish announcement", "err", err)
		}
	}
}

// probeInterval is how often a peer asks its executors whether they can
// still run.
const probeInterval = 10 * time.Second

func (p *Peer) announceSoon() {
	select {
	case p.annKick <- struct{}{}:
	default:
	}
}

func (p *Peer) onAnnounce(from string, data []byte) {
	var a Announce
	if err := decode(data, &a); err != nil || a.Peer != from || validAnnounce(&a) != nil {
		p.bad(from, errors.New("bad announcement"))
		return
	}
	p.learn(a)
}

// validAnnounce checks what a remote peer says about itself.
func validAnnounce(a *Announce) error {
	if len(a.Labels) > maxLabels || len(a.Executors) > 64 || len(a.Addrs) > 64 ||
		a.Slots < 0 || a.Running < 0 || a.Pending < 0 {
		return errors.New("announcement out of bounds")
	}
	for k, v := range a.Labels {
		if constraint.ValidLabel(k, v) != nil {
			return errors.New("bad label")
		}
	}
	return nil
}

// learn records an announcement, keeping the newest.
func (p *Peer) learn(a Announce) {
	if a.Peer == p.id || !p.tr.IsMember(a.Peer) {
		return
	}
	p.mu.Lock()
	p.known[a.Peer] = time.Now()
	ps := p.peers[a.Peer]
	fresh := ps == nil || a.Seq > ps.ann.Seq || a.Seq < ps.ann.Seq/2 // a restart resets Seq
	if fresh {
		p.peers[a.Peer] = &peerState{ann: a, heard: time.Now()}
	}
	moved := fresh && len(a.Addrs) > 0 && !slices.Equal(p.savedAddrs[a.Peer], a.Addrs)
	if moved {
		p.savedAddrs[a.Peer] = a.Addrs
	}
	p.mu.Unlock()
	if moved {
		// Remembered so that a restarted peer can dial its mesh again.
		if err := p.db.Put(addrsKey(a.Peer), encode(a.Addrs)); err != nil {
			p.log.Debug("remember peer addresses", "peer", a.Peer, "err", err)
		}
	}
	if fresh && a.Pending > 0 {
		p.wakeSteal()
	}
}

// silentLocked reports whether member id has gone quiet: connected as far
// as the network knows, but no announcement for several intervals. A peer
// that died without closing its connections looks like this until the
// connection times out. A member not yet heard from is not silent.
func (p *Peer) silentLocked(id string, now time.Time) bool {
	ps := p.peers[id]
	window := max(5*p.cfg.AnnounceInterval, 3*time.Second)
	return ps != nil && now.Sub(ps.heard) > window
}

// knownWindow is how long a peer that left still counts as part of the
// mesh when deciding whether this peer is on the larger side of a split.
const knownWindow = 10 * time.Minute

// majorityLocked reports whether this peer reaches more than half of the
// peers it has heard from lately, itself included: whether it may be on
// the larger side of a split. A peer cut off alone never takes jobs over.
func (p *Peer) majorityLocked(now time.Time) bool {
	known, live := 1, 1
	for id, seen := range p.known {
		if now.Sub(seen) > knownWindow {
			delete(p.known, id)
			continue
		}
		known++
		if p.reachableLocked(id, now) {
			live++
		}
	}
	return 2*live > known
}

// reachableLocked reports whether id is a member that has not gone quiet.
func (p *Peer) reachableLocked(id string, now time.Time) bool {
	return p.tr.IsMember(id) && !p.silentLocked(id, now)
}

// onMember reacts to peers joining and leaving the mesh.
func (p *Peer) onMember(id string, up bool) {
	if !up {
		p.mu.Lock()
		delete(p.peers, id)
		p.mu.Unlock()
		p.log.Info("peer left", "peer", id)
		return
	}
	p.log.Info("peer joined", "peer", id)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		defer cancel()
		if b, err := p.tr.Request(ctx, id, rpcInfo, nil); err == nil {
			var a Announce
			if decode(b, &a) == nil && a.Peer == id && validAnnounce(&a) == nil {
				p.learn(a)
			}
		}
		p.syncWith(ctx, id)
		p.announceSoon()
	}()
}

func (p *Peer) handleInfo(ctx context.Context, from string, b []byte) ([]byte, error) {
	return encode(p.announcement()), nil
}

// emit queues an event for gossip; when the queue is full the event is
// dropped and anti-entropy delivers it later.
func (p *Peer) emit(ev Event) {
	select {
	case p.pub <- ev:
	default:
	}
}

// publishLoop gossips queued events in batches.
func (p *Peer) publishLoop() {
	for {
		var batch []Event
		select {
		case <-p.ctx.Done():
			return
		case ev := <-p.pub:
			batch = append(batch, ev)
		}
		// Take what else is queued now, without waiting: an idle peer
		// sends at once, a busy one sends batches.
	collect:
		for len(batch) < 256 {
			select {
			case ev := <-p.pub:
				batch = append(batch, ev)
			default:
				break collect
			}
		}
		if err := p.tr.Publish(p.ctx, topicEvents, encode(batch)); err != nil && p.ctx.Err() == nil {
			p.log.Debug("publish events", "err", err)
		}
	}
}

func (p *Peer) onEvents(from string, data []byte) {
	var evs []Event
	if err := decode(data, &evs); err != nil || len(evs) > 1024 {
		p.bad(from, errors.New("bad events"))
		return
	}
	select {
	case p.heard <- evs:
	default: // too much at once: anti-entropy brings the rest
	}
	p.checkEpochs(evs)
	woke := false
	for _, ev := range evs {
		if ev.Kind == "submitted" || ev.Kind == "retrying" || ev.Kind == "lost" || ev.Kind == "takeover" {
			woke = p.markOwnerPending(ev) || woke
		}
	}
	if woke {
		p.wakeSteal()
	}
}

// markOwnerPending notes that an event's owner has work this peer can run,
// before the owner's next announcement says so, and lifts the steal
// backoff on that owner, so that an idle peer asks at once.
func (p *Peer) markOwnerPending(ev Event) bool {
	cs, err := constraint.ParseAll(ev.Require)
	if err != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := p.peers[ev.Owner]
	if ps == nil || p.execs[ev.Executor] == nil {
		return false
	}
	if ok, _ := constraint.MatchAll(cs, p.labels); !ok {
		return false
	}
	if ps.ann.Pending == 0 {
		ps.ann.Pending = 1
	}
	delete(p.victims, ev.Owner)
	return true
}

// record stores events heard from other peers as job summaries, keeping
// the newest per job.
func (p *Peer) record(evs []Event) {
	var keep []Event
	for _, ev := range evs {
		if validJobID(ev.Job) && ev.Owner != "" && len(ev.Owner) < 128 &&
			ev.Owner != p.id && len(ev.Name) <= MaxNameLen {
			ev.Reason = truncate(ev.Reason, maxReason)
			keep = append(keep, ev)
		}
	}
	if len(keep) == 0 {
		return
	}
	err := p.db.Update(func(tx *store.Txn) error {
		for _, ev := range keep {
			old, err := tx.Get(summaryKey(ev.Job))
			if err == nil {
				var o Event
				if decode(old, &o) == nil && !eventNewer(ev, o) {
					continue
				}
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err := tx.Set(summaryKey(ev.Job), encode(ev)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		p.log.Debug("record events", "err", err)
		return
	}
	p.mu.Lock()
	p.notifyLocked()
	p.mu.Unlock()
}

// recordLoop stores heard events in batches: one durable write for all
// that arrived within a few milliseconds.
func (p *Peer) recordLoop() {
	for {
		var batch []Event
		select {
		case <-p.ctx.Done():
			return
		case evs := <-p.heard:
			batch = append(batch, evs...)
		}
		timer := time.NewTimer(5 * time.Millisecond)
	collect:
		for len(batch) < 2048 {
			select {
			case evs := <-p.heard:
				batch = append(batch, evs...)
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		p.record(batch)
	}
}

func eventNewer(a, b Event) bool {
	return newerVersion(a.Epoch, a.Version, b.Epoch, b.Version)
}

// antiEntropyLoop asks a random member, now and then, for the changes it
// made since we last asked, so that events lost in gossip still arrive.
func (p *Peer) antiEntropyLoop() {
	tick := time.NewTicker(3 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-tick.C:
		}
		ms := p.tr.Members()
		if len(ms) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		p.syncWith(ctx, ms[rand.IntN(len(ms))])
		cancel()
	}
}

// syncWith pulls peer's change feed from where we left off.
func (p *Peer) syncWith(ctx context.Context, peer string) {
	for range 20 {
		p.mu.Lock()
		cur := p.cursors[peer]
		p.mu.Unlock()
		b, err := p.tr.Request(ctx, peer, rpcSince, encode(sinceReq{Seq: cur, Max: 512}))
		if err != nil {
			return
		}
		var resp sinceResp
		if decode(b, &resp) != nil || len(resp.Events) > 512 {
			return
		}
		var mine []Event
		for _, ev := range resp.Events {
			if ev.Owner == peer {
				mine = append(mine, ev)
			}
		}
		p.record(mine)
		p.checkEpochs(mine)
		p.mu.Lock()
		if resp.Seq < cur {
			resp.Seq = 0 // the peer lost its feed; start over next time
		}
		p.cursors[peer] = resp.Seq
		p.mu.Unlock()
		if !resp.More {
			return
		}
	}
}

func (p *Peer) handleSince(ctx context.Context, from string, b []byte) ([]byte, error) {
	var req sinceReq
	if err := decode(b, &req); err != nil {
		return nil, p.bad(from, err)
	}
	n := min(max(req.Max, 1), 512)
	safe := p.feed.safe()
	resp := sinceResp{Seq: req.Seq}
	if req.Seq > safe {
		resp.Seq = safe
		return encode(resp), nil
	}
	start := changeKey(req.Seq + 1)
	err := p.db.ScanFrom(prefixChange, start, func(k, v []byte) error {
		seq := binary.BigEndian.Uint64(k[len(prefixChange):])
		if seq > safe {
			return errStop
		}
		if len(resp.Events) >= n {
			resp.More = true
			return errStop
		}
		var ev Event
		if decode(v, &ev) == nil {
			resp.Events = append(resp.Events, ev)
		}
		resp.Seq = seq
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	return encode(resp), nil
}

var errStop = errors.New("stop")

// Peers returns what this peer knows of every member, itself first.
func (p *Peer) Peers() []Announce {
	self := p.announcement()
	p.mu.Lock()
	out := []Announce{self}
	for _, ps := range p.peers {
		out = append(out, ps.ann)
	}
	p.mu.Unlock()
	sort.Slice(out[1:], func(i, j int) bool { return out[1+i].Peer < out[1+j].Peer })
	return out
}

// checkEpochs looks for jobs this peer owns that another peer announces
// under a higher epoch (taken over while this peer was gone or cut off)
// and for held copies whose job has finished.
func (p *Peer) checkEpochs(evs []Event) {
	var newer []Event
	p.mu.Lock()
	for _, ev := range evs {
		if o := p.owned[ev.Job]; o != nil && ev.Owner != p.id && ev.Epoch > o.job.Epoch {
			newer = append(newer, ev)
		}
		if h := p.held[ev.Job]; h != nil && ev.State.Terminal() {
			delete(p.held, ev.Job)
		}
	}
	p.mu.Unlock()
	for _, ev := range newer {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
			defer cancel()
			j, err := p.askJob(ctx, ev.Owner, ev.Job)
			if err != nil || j.Epoch <= ev.Epoch-1 || j.Owner == p.id {
				return
			}
			p.stepDown(j)
			je := eventOf(j, "replica")
			if err := p.saveJob(j, &je); err != nil && !errors.Is(err, errStaleRecord) {
				p.log.Warn("store taken-over job", "job_id", j.ID, "err", err)
			}
		}()
	}
}
