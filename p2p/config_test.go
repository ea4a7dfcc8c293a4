package p2p

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	good.Identity = testKey(t)
	good.Secret = testSecret(t)
	rsa, _, err := crypto.GenerateRSAKeyPair(2048, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := testPeerID(t)
	quicAddr := multiaddr.StringCast("/ip4/127.0.0.1/udp/4001/quic-v1")

	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string // empty: valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"zero values mean defaults", func(c *Config) {
			*c = Config{Identity: c.Identity, Secret: c.Secret}
		}, ""},
		{"no identity", func(c *Config) { c.Identity = nil },
			"Identity is required"},
		{"rsa identity", func(c *Config) { c.Identity = rsa },
			"Identity is a RSA key, want Ed25519"},
		{"no secret", func(c *Config) { c.Secret = nil },
			"Secret is 0 bytes, want exactly 32"},
		{"short secret", func(c *Config) { c.Secret = make([]byte, 31) },
			"Secret is 31 bytes, want exactly 32"},
		{"tcp listen address", func(c *Config) {
			c.ListenAddrs = []multiaddr.Multiaddr{
				multiaddr.StringCast("/ip4/0.0.0.0/tcp/4001")}
		}, "ListenAddrs[0]"},
		{"webtransport listen address", func(c *Config) {
			c.ListenAddrs = append(c.ListenAddrs, multiaddr.StringCast(
				"/ip4/0.0.0.0/udp/4001/quic-v1/webtransport"))
		}, "ListenAddrs[2]"},
		{"bootstrap peer over quic", func(c *Config) {
			c.Bootstrap = []peer.AddrInfo{{ID: id,
				Addrs: []multiaddr.Multiaddr{quicAddr}}}
		}, ""},
		{"bootstrap peer by dns", func(c *Config) {
			c.Bootstrap = []peer.AddrInfo{{ID: id,
				Addrs: []multiaddr.Multiaddr{multiaddr.StringCast(
					"/dns4/peer.example/udp/4001/quic-v1")}}}
		}, ""},
		{"bootstrap peer without id", func(c *Config) {
			c.Bootstrap = []peer.AddrInfo{{
				Addrs: []multiaddr.Multiaddr{quicAddr}}}
		}, "Bootstrap[0]: peer ID"},
		{"bootstrap peer over tcp", func(c *Config) {
			c.Bootstrap = []peer.AddrInfo{{ID: id,
				Addrs: []multiaddr.Multiaddr{
					multiaddr.StringCast("/ip4/1.2.3.4/tcp/1")}}}
		}, "no /udp/<port>/quic-v1 address"},
		{"negative auth timeout", func(c *Config) { c.AuthTimeout = -time.Second },
			"AuthTimeout is -1s, want between 100ms and 5m0s"},
		{"huge auth timeout", func(c *Config) { c.AuthTimeout = time.Hour },
			"AuthTimeout is 1h0m0s, want between"},
		{"tiny discovery interval", func(c *Config) {
			c.DiscoveryInterval = time.Millisecond
		}, "DiscoveryInterval is 1ms, want between 1s and 1h0m0s"},
		{"tiny message size", func(c *Config) { c.MaxMessageSize = 10 },
			"MaxMessageSize is 10 bytes, want between 1024 and 268435456"},
		{"negative gossip size", func(c *Config) { c.MaxGossipSize = -1 },
			"MaxGossipSize is -1 bytes"},
		{"short refusal", func(c *Config) { c.RefuseFor = time.Millisecond },
			"RefuseFor is 1ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.change(&cfg)
			err := cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error containing %q",
					err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans lines, want one", err)
			}
		})
	}
}

func TestMeshID(t *testing.T) {
	s1, s2 := testSecret(t), testSecret(t)
	id1 := deriveMeshID(s1)
	if len(id1) != 16 {
		t.Errorf("mesh ID %q has %d characters, want 16", id1, len(id1))
	}
	if again := deriveMeshID(s1); again != id1 {
		t.Errorf("mesh ID of one secret: %q then %q", id1, again)
	}
	if id2 := deriveMeshID(s2); id2 == id1 {
		t.Errorf("two secrets share mesh ID %q", id1)
	}
	if strings.Contains(hex.EncodeToString(s1), id1) {
		t.Errorf("mesh ID %q is a piece of the secret", id1)
	}
}
