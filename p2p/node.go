package p2p

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// meshIDLabel is the HKDF info that derives the mesh ID from the secret.
const meshIDLabel = "blixard mesh id v1"

// Node is one peer on the mesh. Its methods are safe for concurrent use.
// A Node runs from New until Close.
type Node struct {
	cfg    Config
	log    *slog.Logger
	id     peer.ID
	meshID string
	host   host.Host
	dht    *dht.IpfsDHT
	ps     *pubsub.PubSub
	mdns   mdns.Service

	// ctx is cancelled by Close and bounds every goroutine of the node.
	ctx    context.Context
	cancel context.CancelFunc

	// kick asks the discovery loop for an early round.
	kick chan struct{}
	// eventsReady wakes the loop that delivers membership events.
	eventsReady chan struct{}

	mu       sync.RWMutex
	closed   bool                     // guarded by mu
	wg       sync.WaitGroup           // Add only under mu while !closed
	members  map[peer.ID]struct{}     // guarded by mu
	pending  map[peer.ID]*authAttempt // guarded by mu
	refused  map[peer.ID]refusal      // guarded by mu
	watchers []func(peer.ID, bool)    // guarded by mu
	events   []memberEvent            // guarded by mu
	handlers map[string]Handler       // guarded by mu

	topicMu sync.Mutex
	topics  map[string]*pubsub.Topic // guarded by topicMu

	closeOnce sync.Once
	closeErr  error

	stats struct {
		failedAuths     atomic.Uint64
		refusedConns    atomic.Uint64
		droppedMessages atomic.Uint64
		droppedRequests atomic.Uint64
	}
}

// Stats is a snapshot of a Node's membership and of what it has turned
// away since it started.
type Stats struct {
	Members int // peers that are members now
	Refused int // peers on the refusal list now

	// FailedAuths counts peers refused after a handshake: a wrong proof,
	// none within AuthTimeout, a stream closed early by a peer that stayed
	// connected, or the peer refusing this node.
	FailedAuths uint64
	// RefusedConns counts connections and dials that the connection
	// gater turned away because the peer was on the refusal list.
	RefusedConns uint64
	// DroppedMessages counts gossip messages rejected because the peer
	// that sent or wrote them is not a member.
	DroppedMessages uint64
	// DroppedRequests counts request streams from non-members, refused
	// without calling the handler.
	DroppedRequests uint64
}

// New starts a node: the libp2p host listening on cfg.ListenAddrs, the DHT,
// gossip, mDNS if enabled, and the loops that dial bootstrap peers and run
// the rendezvous. It returns once the node listens; finding members goes on
// in the background. ctx bounds the start only; the node runs until Close.
func New(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n := &Node{
		cfg:         cfg,
		meshID:      deriveMeshID(cfg.Secret),
		kick:        make(chan struct{}, 1),
		eventsReady: make(chan struct{}, 1),
		members:     make(map[peer.ID]struct{}),
		pending:     make(map[peer.ID]*authAttempt),
		refused:     make(map[peer.ID]refusal),
		handlers:    make(map[string]Handler),
		topics:      make(map[string]*pubsub.Topic),
	}
	n.cfg.Secret = slices.Clone(cfg.Secret)
	n.log = cfg.Logger.With("component", "p2p")
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.start(ctx); err != nil {
		n.cancel()
		_ = n.stop() // the start error says more
		return nil, err
	}
	n.log.Info("node started", "mesh", n.meshID, "addrs", n.Addrs())
	return n, nil
}

// start brings up the components in an order that lets no peer connect
// before the handshake, the DHT and gossip are ready to see it.
func (n *Node) start(ctx context.Context) error {
	h, err := libp2p.New(n.hostOptions()...)
	if err != nil {
		return fmt.Errorf("start host: %w", err)
	}
	n.host = h
	n.id = h.ID()
	n.log = n.log.With("self", n.id.String())
	h.Network().Notify(notifiee{n})
	h.SetStreamHandler(authProtocol, n.serveAuth)

	if n.dht, err = n.newDHT(); err != nil {
		return fmt.Errorf("start dht: %w", err)
	}
	if n.ps, err = n.newPubSub(); err != nil {
		return fmt.Errorf("start gossip: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if err := h.Network().Listen(n.cfg.ListenAddrs...); err != nil {
		return fmt.Errorf("listen on %v: %w", n.cfg.ListenAddrs, err)
	}
	if n.cfg.MDNS {
		if err := n.startMDNS(); err != nil {
			return fmt.Errorf("start mdns: %w", err)
		}
	}
	n.goTracked(n.deliverEvents)
	n.goTracked(n.discoveryLoop)
	for _, ai := range n.cfg.Bootstrap {
		if ai.ID != n.id {
			n.goTracked(func() { n.keepBootstrapPeer(ai) })
		}
	}
	return nil
}

// hostOptions builds a QUIC-only host. The host does not listen yet: start
// calls Listen once the handlers are in place.
func (n *Node) hostOptions() []libp2p.Option {
	opts := []libp2p.Option{
		libp2p.Identity(n.cfg.Identity),
		libp2p.NoListenAddrs,
		libp2p.Transport(quic.NewTransport),
		libp2p.ConnectionGater(gater{n}),
		// The relay client only dials relayed addresses learnt from
		// members; hole punching needs it to upgrade such a connection
		// to a direct one.
		libp2p.EnableRelay(),
		libp2p.EnableHolePunching(),
		libp2p.DisableMetrics(),
		// Every dial is UDP, so the UDP black hole detector would only
		// block all dials after a run of unreachable peers.
		libp2p.UDPBlackHoleSuccessCounter(nil),
	}
	if n.cfg.NATPortMap {
		opts = append(opts, libp2p.NATPortMap())
	}
	return opts
}

// newDHT starts a Kademlia DHT in server mode on the Blixard protocol
// prefix. It stores provider records only: the rendezvous needs no more.
func (n *Node) newDHT() (*dht.IpfsDHT, error) {
	notRefused := func(_ any, p peer.ID) bool { return !n.isRefused(p) }
	return dht.New(n.host,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix("/blixard"),
		dht.DisableValues(),
		dht.RoutingTableFilter(notRefused),
	)
}

// deriveMeshID returns a short public name for the mesh of secret.
func deriveMeshID(secret []byte) string {
	id, err := hkdf.Key(sha256.New, secret, nil, meshIDLabel, 8)
	if err != nil {
		panic("p2p: hkdf: " + err.Error()) // only for lengths over 8160
	}
	return hex.EncodeToString(id)
}

// ID returns the peer ID of the node. It does not block.
func (n *Node) ID() peer.ID { return n.id }

// MeshID returns the public name of the mesh: 16 hex digits derived from
// the secret by HKDF-SHA256, from which the secret cannot be recovered. It
// names the gossip topics, the rendezvous and the mDNS service.
func (n *Node) MeshID() string { return n.meshID }

// Addrs returns the addresses other peers can dial, each ending in
// /p2p/<id>. Unspecified addresses such as 0.0.0.0 are replaced by the
// addresses of the interfaces; the list may grow as the node learns how
// others see it.
func (n *Node) Addrs() []multiaddr.Multiaddr {
	ai := peer.AddrInfo{ID: n.id}
	for _, a := range n.host.Addrs() {
		if isQUICAddr(a) && !manet.IsIPUnspecified(a) {
			ai.Addrs = append(ai.Addrs, a)
		}
	}
	addrs, err := peer.AddrInfoToP2pAddrs(&ai)
	if err != nil {
		return nil // only for an empty peer ID, which a node never has
	}
	return addrs
}

// Connect dials ai and returns once a connection is up or ctx ends. The
// handshake runs after Connect returns: the peer may not be a member yet,
// and may never be.
func (n *Node) Connect(ctx context.Context, ai peer.AddrInfo) error {
	if n.isClosed() {
		return ErrClosed
	}
	if ai.ID == n.id {
		return fmt.Errorf("connect to %s: %w", ai.ID, ErrSelf)
	}
	if n.isRefused(ai.ID) {
		return fmt.Errorf("connect to %s: %w", ai.ID, ErrRefused)
	}
	if err := n.host.Connect(ctx, ai); err != nil {
		return fmt.Errorf("connect to %s: %w", ai.ID, err)
	}
	return nil
}

// Stats returns the current counters. It does not block.
func (n *Node) Stats() Stats {
	n.mu.RLock()
	s := Stats{Members: len(n.members)}
	for _, r := range n.refused {
		if r.active() {
			s.Refused++
		}
	}
	n.mu.RUnlock()
	s.FailedAuths = n.stats.failedAuths.Load()
	s.RefusedConns = n.stats.refusedConns.Load()
	s.DroppedMessages = n.stats.droppedMessages.Load()
	s.DroppedRequests = n.stats.droppedRequests.Load()
	return s
}

// Close stops the node: it closes every connection, stops the DHT, gossip
// and mDNS, and waits for every goroutine the node started, including
// running handlers, whose context it cancels. Close is idempotent; later
// calls return the first result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		n.closeErr = n.stop()
		n.log.Info("node stopped")
	})
	return n.closeErr
}

// stop tears down what start brought up, in reverse order, and waits for
// the node's goroutines. It tolerates a partial start.
func (n *Node) stop() error {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()

	var errs []error
	if n.mdns != nil {
		errs = append(errs, n.mdns.Close())
	}
	if n.dht != nil {
		errs = append(errs, n.dht.Close())
	}
	if n.host != nil {
		errs = append(errs, n.host.Close())
	}
	n.wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close node: %w", err)
	}
	return nil
}

// goTracked runs f on a goroutine that Close waits for. It reports false,
// and does not run f, once the node is closing.
func (n *Node) goTracked(f func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
	return true
}

// enter registers the calling goroutine with Close, for work that runs on
// a goroutine libp2p started. The caller must call n.wg.Done when it
// returns true.
func (n *Node) enter() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Add(1)
	return true
}

func (n *Node) isClosed() bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.closed
}

// kickDiscovery asks for an early rendezvous round without blocking.
func (n *Node) kickDiscovery() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// isConnected reports whether c allows streams to the peer.
func isConnected(c network.Connectedness) bool {
	return c == network.Connected || c == network.Limited
}
