package p2p

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
)

// The mesh handshake. Each side of a new connection challenges the other
// on authProtocol with a random nonce; the prover answers with
//
//	HMAC-SHA256(secret, authLabel || prover ID || verifier ID || nonce)
//
// The IDs are the binary multihashes that the secure channel has already
// authenticated, and a multihash is self-delimiting, so the MAC binds the
// proof to both ends and it cannot be replayed on another connection pair.
// The verifier then sends a one-byte verdict, so that a prover of another
// mesh learns it was refused even if its own challenge has not run yet.
const (
	authProtocol   = protocol.ID("/blixard/auth/1")
	authLabel      = "blixard-auth-v1"
	nonceSize      = 32
	proofSize      = sha256.Size
	verdictMember  = 0
	verdictRefused = 1
	verdictWait    = time.Second
	memberTag      = "blixard-member"
)

// refusedCode is the QUIC application error code with which a node
// closes the connections of a peer it refuses. The refused side reads it
// as a failed handshake too: the two sides of a handshake between
// different meshes fail at nearly the same time, and the slower side
// would otherwise take the close for a peer that merely went away.
const refusedCode network.ConnErrorCode = 0xb1a0

// errBadProof marks a handshake answered with a wrong proof.
var errBadProof = errors.New("wrong proof of the mesh secret")

// errRefusedByPeer marks a handshake cut short because the remote peer
// refused this node.
var errRefusedByPeer = errors.New("refused by the peer")

// handshakeFailed reports whether a handshake error proves that the peer
// is not a member, rather than that the connection was lost.
func handshakeFailed(err error, stillConnected bool) bool {
	if errors.Is(err, errBadProof) || errors.Is(err, errRefusedByPeer) {
		return true
	}
	return stillConnected
}

// refusedByPeer reports whether err comes from the remote peer closing
// the connection with refusedCode.
func refusedByPeer(err error) bool {
	var ce *network.ConnError
	return errors.As(err, &ce) && ce.Remote && ce.ErrorCode == refusedCode
}

// authAttempt is a handshake in progress with one peer.
type authAttempt struct {
	done   chan struct{} // closed when the attempt ends
	cancel context.CancelFunc
}

// refusal is an entry of the refusal list.
type refusal struct {
	until time.Time
}

func (r refusal) active() bool { return time.Now().Before(r.until) }

// memberEvent is a membership change waiting to be delivered to watchers.
type memberEvent struct {
	peer peer.ID
	up   bool
}

// Members returns the peers that proved the secret and are connected, not
// counting the node itself, sorted by peer ID. It does not block.
func (n *Node) Members() []peer.ID {
	n.mu.RLock()
	out := make([]peer.ID, 0, len(n.members))
	for p := range n.members {
		out = append(out, p)
	}
	n.mu.RUnlock()
	slices.Sort(out)
	return out
}

// IsMember reports whether p proved the secret and is connected. It does
// not block.
func (n *Node) IsMember(p peer.ID) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	_, ok := n.members[p]
	return ok
}

// Notify registers f to be called for every later membership change: up
// when a peer becomes a member, not up when it stops being one. Calls come
// in order from one goroutine, so f must return quickly; changes before
// Notify are not replayed, so read Members after registering. Notify on a
// closed node does nothing.
func (n *Node) Notify(f func(p peer.ID, up bool)) {
	if f == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.closed {
		n.watchers = append(n.watchers, f)
	}
}

// emitLocked queues a membership change. n.mu must be held for writing.
func (n *Node) emitLocked(p peer.ID, up bool) {
	n.events = append(n.events, memberEvent{peer: p, up: up})
	select {
	case n.eventsReady <- struct{}{}:
	default:
	}
}

// deliverEvents calls the watchers for queued membership changes until the
// node closes.
func (n *Node) deliverEvents() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.eventsReady:
		}
		n.mu.Lock()
		events, watchers := n.events, slices.Clone(n.watchers)
		n.events = nil
		n.mu.Unlock()
		for _, e := range events {
			for _, f := range watchers {
				f(e.peer, e.up)
			}
		}
	}
}

// peerConnected starts a handshake with p unless p is already a member or
// one is running.
func (n *Node) peerConnected(p peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || p == n.id {
		return
	}
	if _, ok := n.members[p]; ok {
		return
	}
	if _, ok := n.pending[p]; ok {
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.AuthTimeout)
	a := &authAttempt{done: make(chan struct{}), cancel: cancel}
	n.pending[p] = a
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		err := n.challenge(ctx, p)
		cancel()
		n.finishAuth(p, a, err)
	}()
}

// ensureHandshake starts a handshake with p if it is connected and none
// has started, for callers that may run before the connection event.
func (n *Node) ensureHandshake(p peer.ID) {
	if isConnected(n.host.Network().Connectedness(p)) {
		n.peerConnected(p)
	}
}

// peerDisconnected ends the membership of p, and any handshake with it,
// once its last connection is gone. The check runs under n.mu so that it
// orders with peerConnected: a connection that appears after the check
// starts a new handshake.
func (n *Node) peerDisconnected(p peer.ID) {
	n.mu.Lock()
	if isConnected(n.host.Network().Connectedness(p)) {
		n.mu.Unlock()
		return
	}
	if a, ok := n.pending[p]; ok {
		a.cancel()
	}
	_, wasMember := n.members[p]
	if wasMember {
		delete(n.members, p)
		n.emitLocked(p, false)
	}
	n.mu.Unlock()
	if wasMember {
		n.host.ConnManager().UntagPeer(p, memberTag)
		n.log.Info("peer left the mesh", "peer", p.String())
	}
}

// challenge asks p to prove the secret and checks the answer.
func (n *Node) challenge(ctx context.Context, p peer.ID) error {
	ctx = network.WithNoDial(ctx, "mesh handshake")
	ctx = network.WithAllowLimitedConn(ctx, "mesh handshake")
	s, err := n.host.NewStream(ctx, p, authProtocol)
	if err != nil {
		if refusedByPeer(err) {
			err = fmt.Errorf("%w: %w", errRefusedByPeer, err)
		}
		return fmt.Errorf("open handshake stream: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	err = n.exchangeProof(s, p)
	switch {
	case err == nil:
		_, _ = s.Write([]byte{verdictMember})
		_ = s.Close() // the proof is in; how the stream ends does not matter
		return nil
	case errors.Is(err, errBadProof):
		tellRefused(s)
		return err
	case refusedByPeer(err):
		_ = s.Reset()
		return fmt.Errorf("%w: %w", errRefusedByPeer, err)
	default:
		_ = s.Reset()
		return err
	}
}

// tellRefused sends the refusal verdict and waits briefly for the prover
// to close its side, so that the verdict is not lost with the connection.
func tellRefused(s network.Stream) {
	_, _ = s.Write([]byte{verdictRefused})
	_ = s.CloseWrite()
	_ = s.SetReadDeadline(time.Now().Add(verdictWait))
	_, _ = io.Copy(io.Discard, io.LimitReader(s, 64))
	_ = s.Reset()
}

// exchangeProof sends a nonce on s and checks the proof that comes back.
func (n *Node) exchangeProof(s network.Stream, p peer.ID) error {
	nonce := make([]byte, nonceSize)
	_, _ = rand.Read(nonce) // never fails
	if _, err := s.Write(nonce); err != nil {
		return fmt.Errorf("send nonce: %w", err)
	}
	proof := make([]byte, proofSize)
	if _, err := io.ReadFull(s, proof); err != nil {
		return fmt.Errorf("read proof: %w", err)
	}
	if !hmac.Equal(proof, n.proof(p, n.id, nonce)) {
		return errBadProof
	}
	return nil
}

// serveAuth answers a challenge from the remote peer.
func (n *Node) serveAuth(s network.Stream) {
	if !n.enter() {
		_ = s.Reset()
		return
	}
	defer n.wg.Done()
	_ = s.SetDeadline(time.Now().Add(n.cfg.AuthTimeout))
	nonce := make([]byte, nonceSize)
	if _, err := io.ReadFull(s, nonce); err != nil {
		_ = s.Reset()
		return
	}
	p := s.Conn().RemotePeer()
	if _, err := s.Write(n.proof(n.id, p, nonce)); err != nil {
		_ = s.Reset()
		return
	}
	verdict := make([]byte, 1)
	_, err := io.ReadFull(s, verdict)
	_ = s.Close()
	if err == nil && verdict[0] == verdictRefused {
		n.refuse(p, errRefusedByPeer)
	}
}

// proof computes the handshake MAC of prover towards verifier.
func (n *Node) proof(prover, verifier peer.ID, nonce []byte) []byte {
	mac := hmac.New(sha256.New, n.cfg.Secret)
	mac.Write([]byte(authLabel))
	mac.Write([]byte(prover))
	mac.Write([]byte(verifier))
	mac.Write(nonce)
	return mac.Sum(nil)
}

// finishAuth records the outcome of a handshake with p. A peer that left
// during the handshake is forgotten; one that stayed connected without a
// valid proof is refused.
func (n *Node) finishAuth(p peer.ID, a *authAttempt, err error) {
	n.mu.Lock()
	if n.pending[p] == a {
		delete(n.pending, p)
	}
	connected := isConnected(n.host.Network().Connectedness(p))
	closing := n.closed
	r, refused := n.refused[p]
	joined := err == nil && connected && !closing && !(refused && r.active())
	if joined {
		n.members[p] = struct{}{}
		n.emitLocked(p, true)
	}
	close(a.done)
	n.mu.Unlock()

	switch {
	case joined:
		n.host.ConnManager().TagPeer(p, memberTag, 100)
		n.log.Info("peer joined the mesh", "peer", p.String())
		n.kickDiscovery()
	case err == nil || closing:
	case handshakeFailed(err, connected):
		n.refuse(p, err)
	default:
		n.log.Debug("peer left during the handshake",
			"peer", p.String(), "err", err)
	}
}

// refuse puts p on the refusal list, ends its membership and closes its
// connections. A peer found out twice, by both handshakes, is counted and
// logged once.
func (n *Node) refuse(p peer.ID, reason error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	r, again := n.refused[p]
	again = again && r.active()
	n.refused[p] = refusal{until: time.Now().Add(n.cfg.RefuseFor)}
	n.pruneRefusedLocked()
	_, wasMember := n.members[p]
	if wasMember {
		delete(n.members, p)
		n.emitLocked(p, false)
	}
	n.mu.Unlock()

	if !again {
		n.stats.failedAuths.Add(1)
		n.log.Info("peer refused: failed the mesh handshake",
			"peer", p.String(), "err", reason)
	}
	n.dropPeer(p)
}

// dropPeer closes every connection to a refused peer and forgets it in the
// DHT. The gater keeps it out from now on.
func (n *Node) dropPeer(p peer.ID) {
	for _, c := range n.host.Network().ConnsToPeer(p) {
		if err := c.CloseWithError(refusedCode); err != nil {
			n.log.Debug("close refused peer", "peer", p.String(), "err", err)
		}
	}
	n.dht.RoutingTable().RemovePeer(p)
}

// awaitMember returns nil if p is a member, waiting for a handshake in
// progress to end. It returns ErrNotMember otherwise, or ctx's error.
func (n *Node) awaitMember(ctx context.Context, p peer.ID) error {
	n.mu.RLock()
	_, member := n.members[p]
	a := n.pending[p]
	n.mu.RUnlock()
	if member {
		return nil
	}
	if a == nil {
		return ErrNotMember
	}
	select {
	case <-a.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if n.IsMember(p) {
		return nil
	}
	return ErrNotMember
}

// isRefused reports whether p is on the refusal list.
func (n *Node) isRefused(p peer.ID) bool {
	n.mu.RLock()
	r, ok := n.refused[p]
	n.mu.RUnlock()
	return ok && r.active()
}

// pruneRefusedLocked drops expired refusals once the list grows, so that a
// stream of short-lived identities cannot grow it without bound. n.mu must
// be held for writing.
func (n *Node) pruneRefusedLocked() {
	if len(n.refused) < 1024 {
		return
	}
	for p, r := range n.refused {
		if !r.active() {
			delete(n.refused, p)
		}
	}
}

// notifiee turns connection events into handshakes and membership ends.
type notifiee struct{ n *Node }

func (f notifiee) Listen(network.Network, multiaddr.Multiaddr)      {}
func (f notifiee) ListenClose(network.Network, multiaddr.Multiaddr) {}

func (f notifiee) Connected(_ network.Network, c network.Conn) {
	f.n.peerConnected(c.RemotePeer())
}

func (f notifiee) Disconnected(_ network.Network, c network.Conn) {
	f.n.peerDisconnected(c.RemotePeer())
}

// gater keeps refused peers out, in both directions.
type gater struct{ n *Node }

func (g gater) allow(p peer.ID) bool {
	if g.n.isRefused(p) {
		g.n.stats.refusedConns.Add(1)
		return false
	}
	return true
}

func (g gater) InterceptPeerDial(p peer.ID) bool { return g.allow(p) }

func (g gater) InterceptAddrDial(peer.ID, multiaddr.Multiaddr) bool {
	return true
}

func (g gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g gater) InterceptSecured(
	_ network.Direction, p peer.ID, _ network.ConnMultiaddrs,
) bool {
	return g.allow(p)
}

func (g gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
