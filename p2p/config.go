// Package p2p is the networking layer of a Blixard peer: a libp2p host over
// QUIC, the mesh secret and the handshake that proves it, discovery of other
// members, gossip topics and request/response streams. It moves bytes
// between peers and knows nothing of jobs.
package p2p

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// SecretSize is the length in bytes of a mesh secret.
const SecretSize = 32

// Defaults of the [Config] fields of the same names.
const (
	DefaultAuthTimeout       = 10 * time.Second
	DefaultRefuseFor         = time.Minute
	DefaultRequestTimeout    = 30 * time.Second
	DefaultDiscoveryInterval = 30 * time.Second
	DefaultMaxMessageSize    = 16 << 20
	DefaultMaxGossipSize     = 1 << 20
)

// Bounds that Config.Validate enforces.
const (
	minTimeout           = 100 * time.Millisecond
	maxAuthTimeout       = 5 * time.Minute
	maxRefuseFor         = 24 * time.Hour
	maxRequestTimeout    = time.Hour
	minDiscoveryInterval = time.Second
	maxDiscoveryInterval = time.Hour
	minMessageSize       = 1 << 10
	maxMessageSize       = 256 << 20
	maxGossipSize        = 16 << 20
	maxBootstrapPeers    = 64
	maxListenAddrs       = 16
)

// Errors returned by a [Node] and by the helpers of this package. Callers
// match them with errors.Is; the returned errors carry more detail.
var (
	// ErrNotMember is returned when a peer has not proven the mesh secret
	// or is no longer connected.
	ErrNotMember = errors.New("peer is not a mesh member")
	// ErrClosed is returned by calls on a Node after Close.
	ErrClosed = errors.New("node is closed")
	// ErrSelf is returned by calls that do not apply to the local peer,
	// such as a request addressed to itself.
	ErrSelf = errors.New("peer is the local node")
	// ErrRefused is returned when a peer is on the refusal list because
	// it failed the mesh handshake.
	ErrRefused = errors.New("peer is refused")
	// ErrNoHandler is returned by Request when the remote peer has no
	// handler registered under the name.
	ErrNoHandler = errors.New("no handler for request")
	// ErrFrameTooLarge is returned when a request or response frame is
	// larger than the configured limit.
	ErrFrameTooLarge = errors.New("frame exceeds size limit")
	// ErrMessageTooLarge is returned by Publish for data larger than
	// Config.MaxGossipSize.
	ErrMessageTooLarge = errors.New("message exceeds size limit")
)

// Config configures a Node. The zero value of every field but Identity and
// Secret means its default, so a Config filled by hand works as well as one
// from [DefaultConfig].
type Config struct {
	// Identity is the peer's private key; it fixes the peer ID. Required,
	// Ed25519 only.
	Identity crypto.PrivKey

	// Secret is the mesh secret, exactly SecretSize bytes. Peers that
	// cannot prove they hold it are cut off. Required.
	Secret []byte

	// ListenAddrs are the QUIC addresses to listen on, each of the form
	// /ip4|ip6/<addr>/udp/<port>/quic-v1. Default: every interface on a
	// random port, IPv4 and IPv6. New fails only if none of them can be
	// listened on. A fixed port makes the peer easier to bootstrap from
	// and to open in a firewall.
	ListenAddrs []multiaddr.Multiaddr

	// Bootstrap are peers dialled at start and retried with backoff (1s
	// doubling to 1m) until each has become a member; after that one is
	// dialled again only while the node has no member at all. They also
	// seed the DHT. Default: none, so the node waits to be dialled or
	// found by mDNS. No public bootstrap peer is ever used.
	Bootstrap []peer.AddrInfo

	// MDNS turns on discovery on the local network by multicast DNS, on
	// every interface that is up and has multicast. The service name is
	// derived from the mesh ID, so meshes on one LAN do not find each
	// other. Default off: it multicasts on every interface.
	MDNS bool

	// NATPortMap asks the router for a port mapping by UPnP or NAT-PMP.
	// Default off: it multicasts on the LAN and changes router state.
	NATPortMap bool

	// AuthTimeout bounds the mesh handshake: a peer that has not proven
	// the secret this long after it connected is cut off. Default 10s.
	// Shorter frees resources held by silent peers sooner; longer suits
	// slow links.
	AuthTimeout time.Duration

	// RefuseFor is how long a peer that failed the handshake is refused
	// at connection time. Default 1m. Longer resists a misbehaving peer
	// better; shorter lets a peer whose secret was fixed rejoin sooner.
	RefuseFor time.Duration

	// MaxMessageSize caps a request or response frame in bytes, in both
	// directions. Default 16 MiB. A larger cap allows bigger payloads at
	// the price of memory a member can make the node allocate.
	MaxMessageSize int

	// MaxGossipSize caps the data of one gossip message in bytes. Default
	// 1 MiB. Gossip is copied to every member, so keep it small.
	MaxGossipSize int

	// RequestTimeout bounds a request whose context has no deadline, and
	// the time a handler may take to answer. Default 30s.
	RequestTimeout time.Duration

	// DiscoveryInterval is the period of the rendezvous on the DHT: the
	// node advertises itself and looks for other members this often, more
	// often in its first minute. Default 30s. Shorter finds members sooner
	// at the price of DHT traffic.
	DiscoveryInterval time.Duration

	// Logger receives lifecycle events at Info and traffic at Debug. Nil
	// discards.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default filled in except
// Identity and Secret, which the caller must set.
func DefaultConfig() Config {
	return Config{
		ListenAddrs: []multiaddr.Multiaddr{
			multiaddr.StringCast("/ip4/0.0.0.0/udp/0/quic-v1"),
			multiaddr.StringCast("/ip6/::/udp/0/quic-v1"),
		},
		AuthTimeout:       DefaultAuthTimeout,
		RefuseFor:         DefaultRefuseFor,
		MaxMessageSize:    DefaultMaxMessageSize,
		MaxGossipSize:     DefaultMaxGossipSize,
		RequestTimeout:    DefaultRequestTimeout,
		DiscoveryInterval: DefaultDiscoveryInterval,
	}
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if len(c.ListenAddrs) == 0 {
		c.ListenAddrs = d.ListenAddrs
	}
	if c.AuthTimeout == 0 {
		c.AuthTimeout = d.AuthTimeout
	}
	if c.RefuseFor == 0 {
		c.RefuseFor = d.RefuseFor
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = d.MaxMessageSize
	}
	if c.MaxGossipSize == 0 {
		c.MaxGossipSize = d.MaxGossipSize
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.DiscoveryInterval == 0 {
		c.DiscoveryInterval = d.DiscoveryInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first field of c that is missing or out of bounds,
// naming the field and the bound. Zero values stand for defaults and are
// valid, except for Identity and Secret.
func (c Config) Validate() error {
	if err := validateIdentity(c.Identity); err != nil {
		return err
	}
	if len(c.Secret) != SecretSize {
		return fmt.Errorf("config: Secret is %d bytes, want exactly %d",
			len(c.Secret), SecretSize)
	}
	if err := validateListenAddrs(c.ListenAddrs); err != nil {
		return err
	}
	if err := validateBootstrap(c.Bootstrap); err != nil {
		return err
	}
	return c.validateBounds()
}

func validateIdentity(k crypto.PrivKey) error {
	if k == nil {
		return errors.New("config: Identity is required")
	}
	if k.Type() != crypto.Ed25519 {
		return fmt.Errorf("config: Identity is a %s key, want Ed25519", k.Type())
	}
	return nil
}

func validateListenAddrs(addrs []multiaddr.Multiaddr) error {
	if len(addrs) > maxListenAddrs {
		return fmt.Errorf("config: ListenAddrs has %d entries, limit %d",
			len(addrs), maxListenAddrs)
	}
	for i, a := range addrs {
		if !isQUICListenAddr(a) {
			return fmt.Errorf("config: ListenAddrs[%d] %q: "+
				"want /ip4|ip6/<addr>/udp/<port>/quic-v1", i, a)
		}
	}
	return nil
}

func validateBootstrap(peers []peer.AddrInfo) error {
	if len(peers) > maxBootstrapPeers {
		return fmt.Errorf("config: Bootstrap has %d peers, limit %d",
			len(peers), maxBootstrapPeers)
	}
	for i, ai := range peers {
		if err := ai.ID.Validate(); err != nil {
			return fmt.Errorf("config: Bootstrap[%d]: peer ID: %w", i, err)
		}
		if !hasQUICAddr(ai.Addrs) {
			return fmt.Errorf("config: Bootstrap[%d] %s: "+
				"no /udp/<port>/quic-v1 address", i, ai.ID)
		}
	}
	return nil
}

// validateBounds checks the numeric fields against their bounds.
func (c Config) validateBounds() error {
	durations := []struct {
		name          string
		got, min, max time.Duration
	}{
		{"AuthTimeout", c.AuthTimeout, minTimeout, maxAuthTimeout},
		{"RefuseFor", c.RefuseFor, time.Second, maxRefuseFor},
		{"RequestTimeout", c.RequestTimeout, minTimeout, maxRequestTimeout},
		{"DiscoveryInterval", c.DiscoveryInterval, minDiscoveryInterval,
			maxDiscoveryInterval},
	}
	for _, d := range durations {
		if d.got != 0 && (d.got < d.min || d.got > d.max) {
			return fmt.Errorf("config: %s is %s, want between %s and %s",
				d.name, d.got, d.min, d.max)
		}
	}
	sizes := []struct {
		name          string
		got, min, max int
	}{
		{"MaxMessageSize", c.MaxMessageSize, minMessageSize, maxMessageSize},
		{"MaxGossipSize", c.MaxGossipSize, minMessageSize, maxGossipSize},
	}
	for _, s := range sizes {
		if s.got != 0 && (s.got < s.min || s.got > s.max) {
			return fmt.Errorf("config: %s is %d bytes, want between %d and %d",
				s.name, s.got, s.min, s.max)
		}
	}
	return nil
}

// isQUICListenAddr reports whether a is exactly /ip4|ip6/x/udp/n/quic-v1.
func isQUICListenAddr(a multiaddr.Multiaddr) bool {
	if len(a) != 3 {
		return false
	}
	ip := a[0].Code()
	return (ip == multiaddr.P_IP4 || ip == multiaddr.P_IP6) &&
		a[1].Code() == multiaddr.P_UDP && a[2].Code() == multiaddr.P_QUIC_V1
}

// hasQUICAddr reports whether any of addrs is dialable over QUIC.
func hasQUICAddr(addrs []multiaddr.Multiaddr) bool {
	for _, a := range addrs {
		if isQUICAddr(a) {
			return true
		}
	}
	return false
}

// isQUICAddr reports whether a is a direct QUIC address, possibly with a
// DNS name and a trailing /p2p component.
func isQUICAddr(a multiaddr.Multiaddr) bool {
	hasQUIC := false
	for _, c := range a {
		switch c.Code() {
		case multiaddr.P_QUIC_V1:
			hasQUIC = true
		case multiaddr.P_CIRCUIT, multiaddr.P_WEBTRANSPORT:
			return false
		}
	}
	return hasQUIC
}
