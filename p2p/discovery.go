package p2p

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

// Discovery tuning.
const (
	// firstRound is the delay before the first rendezvous; the delay then
	// doubles up to Config.DiscoveryInterval.
	firstRound = time.Second
	// roundTimeout bounds one rendezvous round.
	roundTimeout = 30 * time.Second
	// dialTimeout bounds one dial to a discovered or bootstrap peer.
	dialTimeout = 10 * time.Second
	// maxFound caps the peers taken from one rendezvous lookup.
	maxFound = 128
	// parallelDials caps the dials of one rendezvous round.
	parallelDials = 8
	// bootstrapCheck is how often a bootstrap peer that was reached is
	// checked again.
	bootstrapCheck = 5 * time.Second
	// maxBackoff caps the delay between dials of an unreachable bootstrap
	// peer.
	maxBackoff = time.Minute
)

// rendezvous returns the DHT namespace under which members advertise.
func (n *Node) rendezvous() string { return "blixard/" + n.meshID }

// discoveryLoop runs rendezvous rounds until the node closes: soon after
// start, then at doubling delays up to Config.DiscoveryInterval, and early
// again a second after a peer joins.
func (n *Node) discoveryLoop() {
	rd := drouting.NewRoutingDiscovery(n.dht)
	delay := firstRound
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.kick:
			timer.Reset(firstRound)
			continue
		case <-timer.C:
		}
		n.rendezvousRound(rd)
		delay = min(2*delay, n.cfg.DiscoveryInterval)
		timer.Reset(delay)
	}
}

// rendezvousRound advertises the node under the mesh namespace and dials
// the other peers found there.
func (n *Node) rendezvousRound(rd *drouting.RoutingDiscovery) {
	if n.dht.RoutingTable().Size() == 0 {
		return // nobody to store a record with or ask
	}
	ctx, cancel := context.WithTimeout(n.ctx, roundTimeout)
	defer cancel()
	ns := n.rendezvous()
	if _, err := rd.Advertise(ctx, ns); err != nil {
		n.log.Debug("advertise on rendezvous", "err", err)
	}
	found, err := rd.FindPeers(ctx, ns, discovery.Limit(maxFound))
	if err != nil {
		n.log.Debug("find peers on rendezvous", "err", err)
		return
	}
	sem := make(chan struct{}, parallelDials)
	var wg sync.WaitGroup
	for ai := range found {
		if !n.worthDialling(ai) {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			n.dial(ctx, ai, "rendezvous")
		})
	}
	wg.Wait()
}

// worthDialling reports whether ai is another peer with addresses that is
// neither connected nor refused.
func (n *Node) worthDialling(ai peer.AddrInfo) bool {
	return ai.ID != n.id && len(ai.Addrs) > 0 && !n.isRefused(ai.ID) &&
		!isConnected(n.host.Network().Connectedness(ai.ID))
}

// dial connects to a discovered peer; the handshake follows by itself.
func (n *Node) dial(ctx context.Context, ai peer.AddrInfo, source string) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := n.host.Connect(ctx, ai); err != nil {
		n.log.Debug("dial discovered peer", "peer", ai.ID.String(),
			"source", source, "err", err)
	}
}

// keepBootstrapPeer dials ai with backoff until it is a member, and again
// whenever the node is left with no member and no connection to ai.
func (n *Node) keepBootstrapPeer(ai peer.AddrInfo) {
	reached, warned := false, false
	backoff := time.Second
	for {
		wait := bootstrapCheck
		switch {
		case n.IsMember(ai.ID):
			reached, backoff = true, time.Second
		case n.needsBootstrap(ai.ID, reached):
			if err := n.dialBootstrap(ai); err != nil && !warned {
				warned = true
				n.log.Info("bootstrap peer unreachable, retrying",
					"peer", ai.ID.String(), "err", err)
			}
			// Check soon whether the dial made a member, and back off
			// in case it did not.
			wait, backoff = jitter(backoff), min(2*backoff, maxBackoff)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// needsBootstrap reports whether bootstrap peer p should be dialled now.
func (n *Node) needsBootstrap(p peer.ID, reached bool) bool {
	if isConnected(n.host.Network().Connectedness(p)) {
		return false
	}
	if !reached {
		return true
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.members) == 0
}

// dialBootstrap dials a bootstrap peer and, once connected, has the DHT
// refresh its routing table through it.
func (n *Node) dialBootstrap(ai peer.AddrInfo) error {
	ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
	defer cancel()
	if err := n.Connect(ctx, ai); err != nil {
		return err
	}
	n.log.Debug("connected to bootstrap peer", "peer", ai.ID.String())
	_ = n.dht.Bootstrap(n.ctx) // only starts a refresh
	return nil
}

// jitter returns d shifted by up to a quarter either way, so that peers
// started together do not dial in step.
func jitter(d time.Duration) time.Duration {
	q := int64(d / 4)
	return d - time.Duration(q) + time.Duration(rand.Int64N(2*q+1))
}

// startMDNS advertises the node on the LAN under a service name derived
// from the mesh ID and dials the peers it hears of.
func (n *Node) startMDNS() error {
	// A DNS-SD service name is at most 15 characters.
	name := "_blx" + n.meshID[:12] + "._udp"
	svc := mdns.NewMdnsService(n.host, name, mdnsNotifee{n})
	if err := svc.Start(); err != nil {
		return err
	}
	n.mdns = svc
	return nil
}

// mdnsNotifee dials the peers mDNS reports.
type mdnsNotifee struct{ n *Node }

func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	n := m.n
	if !n.worthDialling(ai) {
		return
	}
	n.goTracked(func() { n.dial(n.ctx, ai, "mdns") })
}
