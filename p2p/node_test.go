package p2p

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/multiformats/go-multihash"
)

// TestMeshJoinAndRendezvous starts A, then B and C that bootstrap only
// from A. C must find B, and B find C, which takes the DHT: neither knows
// the other's address.
func TestMeshJoinAndRendezvous(t *testing.T) {
	secret := testSecret(t)
	a := startNode(t, testConfig(t, secret))
	b := startNode(t, testConfig(t, secret, a))
	c := startNode(t, testConfig(t, secret, a))

	waitMembers(t, a, b, c)
	waitMembers(t, b, a, c)
	waitMembers(t, c, a, b)

	// The rendezvous record of B must be findable from C: this is how
	// members that share no bootstrap peer find each other.
	key := rendezvousKey(t, c.rendezvous())
	waitFor(t, "B's provider record on the rendezvous", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for ai := range c.dht.FindProvidersAsync(ctx, key, 0) {
			if ai.ID == b.ID() {
				return true
			}
		}
		return false
	})

	// Cut C from B and run one round by hand: it must dial B again from
	// the record alone.
	if err := c.host.Network().ClosePeer(b.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "C to drop B", func() bool { return !c.IsMember(b.ID()) })
	c.rendezvousRound(drouting.NewRoutingDiscovery(c.dht))
	waitMembers(t, c, a, b)

	for _, n := range []*Node{a, b, c} {
		if got := n.Stats(); got.FailedAuths != 0 || got.DroppedMessages != 0 {
			t.Errorf("%s stats = %+v, want no failures", n.ID(), got)
		}
	}
}

func rendezvousKey(t *testing.T, ns string) cid.Cid {
	t.Helper()
	h, err := multihash.Sum([]byte(ns), multihash.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

// TestTransportsAndAddrs checks that a node listens and dials over QUIC
// only, runs its DHT in server mode on the Blixard prefix, dials nobody on
// its own, and reports dialable addresses.
func TestTransportsAndAddrs(t *testing.T) {
	cfg := testConfig(t, testSecret(t))
	cfg.ListenAddrs = append(cfg.ListenAddrs,
		multiaddr.StringCast("/ip4/0.0.0.0/udp/0/quic-v1"))
	n := startNode(t, cfg)

	// The relay client adds a virtual /p2p-circuit listener: inbound
	// relayed connections still run over a QUIC connection to the relay.
	for _, a := range n.host.Network().ListenAddresses() {
		if !isQUICListenAddr(a) && a.String() != "/p2p-circuit" {
			t.Errorf("listen address %s, want only /udp/N/quic-v1", a)
		}
	}
	sw := n.host.Network().(*swarm.Swarm)
	for _, s := range []string{
		"/ip4/127.0.0.1/tcp/4001",
		"/ip4/127.0.0.1/tcp/4001/ws",
		"/ip4/127.0.0.1/udp/4001/webrtc-direct",
		"/ip4/127.0.0.1/udp/4001/quic-v1/webtransport",
	} {
		if tr := sw.TransportForDialing(multiaddr.StringCast(s)); tr != nil {
			t.Errorf("transport for %s = %T, want none", s, tr)
		}
	}
	if got := n.dht.Mode(); got != dht.ModeServer {
		t.Errorf("dht mode = %v, want server", got)
	}
	protos := n.host.Mux().Protocols()
	if !slices.Contains(protos, protocol.ID("/blixard/kad/1.0.0")) ||
		slices.Contains(protos, protocol.ID("/ipfs/kad/1.0.0")) {
		t.Errorf("protocols = %v, want /blixard/kad/1.0.0 and no /ipfs/kad", protos)
	}

	addrs := n.Addrs()
	if len(addrs) == 0 {
		t.Fatal("Addrs() is empty")
	}
	for _, a := range addrs {
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil || ai.ID != n.ID() {
			t.Errorf("address %s does not end in /p2p/%s", a, n.ID())
		}
		if manet.IsIPUnspecified(a) || !isQUICAddr(a) {
			t.Errorf("address %s is unspecified or not QUIC", a)
		}
	}

	// Nobody was configured, so nobody may be dialled: no public
	// bootstrap peers. Give the DHT time to try if it would.
	time.Sleep(1500 * time.Millisecond)
	if peers := n.host.Network().Peers(); len(peers) != 0 {
		t.Errorf("connected to %v, want nobody", peers)
	}
}

// TestMembershipFollowsConnections checks Notify and that a member that
// reconnects authenticates again.
func TestMembershipFollowsConnections(t *testing.T) {
	secret := testSecret(t)
	a := startNode(t, testConfig(t, secret))
	var mu sync.Mutex
	var events []string
	a.Notify(func(p peer.ID, up bool) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, map[bool]string{true: "up", false: "down"}[up])
	})
	eventsAre := func(want ...string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return slices.Equal(events, want)
		}
	}

	bcfg := testConfig(t, secret)
	b := startNode(t, bcfg)
	if err := b.Connect(context.Background(), addrInfo(t, a)); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a, b)
	waitFor(t, "events up", eventsAre("up"))

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a)
	waitFor(t, "events up, down", eventsAre("up", "down"))
	if a.IsMember(b.ID()) {
		t.Error("closed peer is still a member")
	}

	// The same identity comes back: it must prove the secret again.
	b2 := startNode(t, bcfg)
	if err := b2.Connect(context.Background(), addrInfo(t, a)); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a, b2)
	waitFor(t, "events up, down, up", eventsAre("up", "down", "up"))
	if got := a.Stats().FailedAuths; got != 0 {
		t.Errorf("FailedAuths = %d, want 0", got)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	n, err := New(context.Background(), testConfig(t, testSecret(t)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := n.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if err := n.Publish(context.Background(), "t", nil); err == nil {
		t.Error("Publish after Close succeeded")
	}
	_, err = n.Request(context.Background(), "x", "echo", nil)
	if err == nil || !strings.Contains(err.Error(), ErrClosed.Error()) {
		t.Errorf("Request after Close: %v, want %v", err, ErrClosed)
	}
}

// TestBootstrapRetries gives B a bootstrap address where a peer of another
// mesh answers first: B refuses it, keeps dialling with backoff, and joins
// once a member with the same identity takes over the address.
func TestBootstrapRetries(t *testing.T) {
	secret := testSecret(t)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	listen := multiaddr.StringCast(fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port))
	acfg := testConfig(t, secret)
	acfg.ListenAddrs = []multiaddr.Multiaddr{listen}
	aID, err := peer.IDFromPrivateKey(acfg.Identity)
	if err != nil {
		t.Fatal(err)
	}
	impostor := acfg
	impostor.Secret = testSecret(t)
	imp, err := New(context.Background(), impostor)
	if err != nil {
		t.Fatal(err)
	}

	bcfg := testConfig(t, secret)
	bcfg.RefuseFor = time.Second
	bcfg.Bootstrap = []peer.AddrInfo{{ID: aID, Addrs: []multiaddr.Multiaddr{listen}}}
	b := startNode(t, bcfg)
	waitFor(t, "B to refuse the impostor", func() bool {
		return b.Stats().FailedAuths == 1
	})
	if err := imp.Close(); err != nil {
		t.Fatal(err)
	}

	a := startNode(t, acfg)
	waitMembers(t, b, a)
	waitMembers(t, a, b)
}
