package p2p

import (
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// waitTimeout bounds every wait in these tests. It is generous because the
// machine is shared; a passing test returns as soon as its condition holds.
const waitTimeout = 30 * time.Second

func testSecret(t *testing.T) []byte {
	t.Helper()
	s, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testKey(t *testing.T) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testLogger logs to the test's output, at Debug when
// BLIXARD_TEST_DEBUG is set.
func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("BLIXARD_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(t.Output(),
		&slog.HandlerOptions{Level: level}))
}

// testConfig returns a config for a node on 127.0.0.1 with a random port,
// short timeouts and the given bootstrap peers.
func testConfig(t *testing.T, secret []byte, boot ...*Node) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Identity = testKey(t)
	cfg.Secret = secret
	cfg.ListenAddrs = []multiaddr.Multiaddr{
		multiaddr.StringCast("/ip4/127.0.0.1/udp/0/quic-v1"),
	}
	cfg.AuthTimeout = 2 * time.Second
	cfg.DiscoveryInterval = 2 * time.Second
	cfg.Logger = testLogger(t)
	for _, b := range boot {
		cfg.Bootstrap = append(cfg.Bootstrap, addrInfo(t, b))
	}
	return cfg
}

// startNode starts a node and closes it when the test ends.
func startNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return n
}

func addrInfo(t *testing.T, n *Node) peer.AddrInfo {
	t.Helper()
	infos, err := peer.AddrInfosFromP2pAddrs(n.Addrs()...)
	if err != nil || len(infos) != 1 {
		t.Fatalf("addr info of %s: %v, %d infos", n.ID(), err, len(infos))
	}
	return infos[0]
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitMembers waits until n's members are exactly want.
func waitMembers(t *testing.T, n *Node, want ...*Node) {
	t.Helper()
	ids := make([]peer.ID, 0, len(want))
	for _, w := range want {
		ids = append(ids, w.ID())
	}
	slices.Sort(ids)
	waitFor(t, "members of "+n.ID().ShortString(), func() bool {
		return slices.Equal(n.Members(), ids)
	})
}
