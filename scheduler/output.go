package scheduler

import (
	"context"
	"sync"
	"time"
)

// maxUnshipped bounds the output a runner holds for an owner that has not
// acknowledged it yet; a task that writes faster than the owner takes it
// waits.
const maxUnshipped = 4 << 20

// outbuf collects one stream of a task's output until the owner has
// acknowledged it.
type outbuf struct {
	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte // guarded by mu; bytes from base on, not yet acknowledged
	base    int64  // guarded by mu
	dropped bool   // guarded by mu; set when the task gave up on shipping
	ending  bool   // guarded by mu; the task is being stopped: never wait
	ready   chan struct{}
}

// newOutbuf returns a buffer whose writers stop waiting once ctx ends, so
// a stopped task's last output never blocks its end.
func newOutbuf(ctx context.Context) *outbuf {
	b := &outbuf{ready: make(chan struct{}, 1)}
	b.cond = sync.NewCond(&b.mu)
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		b.ending = true
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	return b
}

// Write appends data, waiting while too much is unshipped.
func (b *outbuf) Write(data []byte) (int, error) {
	b.mu.Lock()
	for len(b.buf) >= maxUnshipped && !b.dropped && !b.ending {
		b.cond.Wait()
	}
	if !b.dropped {
		b.buf = append(b.buf, data...)
	}
	b.mu.Unlock()
	select {
	case b.ready <- struct{}{}:
	default:
	}
	return len(data), nil
}

// pending returns up to n unshipped bytes and their offset.
func (b *outbuf) pending(n int) (int64, []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.base, append([]byte(nil), b.buf[:min(n, len(b.buf))]...)
}

// ack drops the bytes before offset length, which the owner holds.
func (b *outbuf) ack(length int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := length - b.base; n > 0 {
		n = min(n, int64(len(b.buf)))
		b.buf = b.buf[n:]
		b.base += n
		b.cond.Broadcast()
	}
}

// close stops waiting writers; unshipped and later output is discarded.
func (b *outbuf) close() {
	b.mu.Lock()
	b.dropped = true
	b.buf = nil
	b.cond.Broadcast()
	b.mu.Unlock()
}

// ship sends a task's output to its owner as it comes, until the task's
// context ends. shipAll sends the rest afterwards.
func (p *Peer) ship(t *task) {
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.done:
			return
		case <-t.out[1].ready:
		case <-t.out[2].ready:
		}
		// Let a burst of writes collect into one chunk.
		select {
		case <-t.ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
		for s := byte(1); s <= 2; s++ {
			if err := p.shipStream(t.ctx, t, s); err != nil {
				p.log.Debug("ship output", "job_id", t.ref.Job, "err", err)
			}
		}
	}
}

// shipAll sends what is left of a finished task's output, giving up once
// the owner has been unreachable for a lease.
func (p *Peer) shipAll(t *task) {
	deadline := time.Now().Add(t.lease)
	backoff := 50 * time.Millisecond
	for s := byte(1); s <= 2; s++ {
		for {
			ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
			err := p.shipStream(ctx, t, s)
			cancel()
			if err == nil {
				break
			}
			if p.ctx.Err() != nil || time.Now().After(deadline) {
				p.log.Warn("output not delivered", "job_id", t.ref.Job, "err", err)
				return
			}
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
		}
	}
}

// shipStream sends stream s until nothing is unshipped.
func (p *Peer) shipStream(ctx context.Context, t *task, s byte) error {
	t.shipMu.Lock()
	defer t.shipMu.Unlock()
	for {
		off, data := t.out[s].pending(maxChunkBytes)
		if len(data) == 0 {
			return nil
		}
		req := outputReq{attemptRef: t.ref, Stream: s, Offset: off, Data: data}
		b, err := p.call(ctx, t.owner, rpcOutput, encode(req))
		if err != nil {
			return err
		}
		var resp outputResp
		if err := decode(b, &resp); err != nil {
			return err
		}
		if resp.Stale {
			t.out[s].close()
			return nil // the owner does not want it; nothing to retry
		}
		t.out[s].ack(resp.Length)
	}
}
