package p2p

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"google.golang.org/protobuf/proto"
)

// TestWrongSecretRefused connects a node of another mesh to A: each side
// must refuse the other, and neither may list the other as a member.
func TestWrongSecretRefused(t *testing.T) {
	a := startNode(t, testConfig(t, testSecret(t)))
	m := startNode(t, testConfig(t, testSecret(t)))
	var calls atomic.Int32
	a.Handle("echo", func(_ context.Context, _ peer.ID, req []byte) ([]byte, error) {
		calls.Add(1)
		return req, nil
	})
	a.Notify(func(p peer.ID, up bool) {
		if p == m.ID() {
			t.Errorf("Notify(%s, %v) for a peer of another mesh", p, up)
		}
	})

	if err := m.Connect(context.Background(), addrInfo(t, a)); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	waitFor(t, "A to refuse M", func() bool {
		return a.Stats().FailedAuths == 1 && a.Stats().Refused == 1
	})
	waitFor(t, "M to be cut off", func() bool {
		return a.host.Network().Connectedness(m.ID()) == network.NotConnected
	})
	if a.IsMember(m.ID()) || len(a.Members()) != 0 || len(m.Members()) != 0 {
		t.Errorf("members: A has %v, M has %v; want none", a.Members(), m.Members())
	}
	_, err := m.Request(context.Background(), a.ID(), "echo", []byte("x"))
	if !errors.Is(err, ErrNotMember) {
		t.Errorf("M's request to A: %v, want %v", err, ErrNotMember)
	}
	if err := m.Connect(context.Background(), addrInfo(t, a)); err == nil {
		t.Error("M reconnected to A after the refusal")
	}
	if calls.Load() != 0 {
		t.Errorf("A's handler ran %d times for M", calls.Load())
	}
}

// TestSilentOutsider connects a bare libp2p host that never answers the
// challenge. Until AuthTimeout cuts it off, its requests and its gossip on
// A's topic must be refused, counted and never reach a handler; after
// that, A's gater must turn its dials away.
func TestSilentOutsider(t *testing.T) {
	cfg := testConfig(t, testSecret(t))
	cfg.AuthTimeout = 3 * time.Second
	a := startNode(t, cfg)
	var calls atomic.Int32
	a.Handle("echo", func(_ context.Context, _ peer.ID, req []byte) ([]byte, error) {
		calls.Add(1)
		return req, nil
	})
	var in inbox
	if err := a.Subscribe("events", in.handler); err != nil {
		t.Fatal(err)
	}

	x := startOutsider(t)
	if err := x.Connect(context.Background(), addrInfo(t, a)); err != nil {
		t.Fatal(err)
	}
	// A request while the handshake is pending waits for it and fails.
	reqErr := make(chan error, 1)
	go func() { reqErr <- rawRequest(x, a.ID(), "echo", []byte("hi")) }()

	waitFor(t, "A to drop the outsider's gossip", func() bool {
		if err := sendRawGossip(x, a.ID(), a.topicName("events"),
			[]byte("spam")); err != nil {
			t.Logf("raw gossip: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
		return a.Stats().DroppedMessages > 0
	})
	if err := <-reqErr; err == nil {
		t.Error("outsider's request got an answer")
	}
	waitFor(t, "A to refuse the outsider", func() bool {
		s := a.Stats()
		return s.FailedAuths == 1 && s.DroppedRequests == 1 &&
			a.host.Network().Connectedness(x.ID()) == network.NotConnected
	})
	if calls.Load() != 0 || in.from(x.ID()) != 0 || a.IsMember(x.ID()) {
		t.Errorf("outsider acted on: %d handler calls, %d messages, member %v",
			calls.Load(), in.from(x.ID()), a.IsMember(x.ID()))
	}

	waitFor(t, "the outsider to see the close", func() bool {
		return x.Network().Connectedness(a.ID()) == network.NotConnected
	})
	// QUIC completes the dialer's side of the handshake before the
	// listener's gater runs, so the dial may seem to succeed; A must close
	// the connection at once and count it.
	before := a.Stats().RefusedConns
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = x.Connect(ctx, addrInfo(t, a))
	waitFor(t, "A's gater to turn the outsider away", func() bool {
		return a.Stats().RefusedConns > before &&
			x.Network().Connectedness(a.ID()) == network.NotConnected
	})
	if a.host.Network().Connectedness(x.ID()) != network.NotConnected {
		t.Error("A holds a connection to the refused outsider")
	}
}

// TestNoGossipToOutsiders runs gossip on a silent outsider, subscribed to
// A's topic like a member. While its handshake is pending, A publishes:
// member B must get the messages and the outsider none.
func TestNoGossipToOutsiders(t *testing.T) {
	secret := testSecret(t)
	acfg := testConfig(t, secret)
	acfg.AuthTimeout = 3 * time.Second
	a := startNode(t, acfg)
	b := startNode(t, testConfig(t, secret, a))
	var inB inbox
	if err := b.Subscribe("events", inB.handler); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a, b)

	x := startOutsider(t)
	ps, err := pubsub.NewGossipSub(t.Context(), x, pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(a.topicName("events"))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	var leaked atomic.Int32
	go func() {
		for {
			if _, err := sub.Next(t.Context()); err != nil {
				return
			}
			leaked.Add(1)
		}
	}()
	if err := x.Connect(context.Background(), addrInfo(t, a)); err != nil {
		t.Fatal(err)
	}

	for i := 0; a.host.Network().Connectedness(x.ID()) == network.Connected; i++ {
		msg := fmt.Sprintf("m%d", i)
		publishUntil(t, a, "events", msg, func() bool { return inB.has(a.ID(), msg) })
	}
	if got := leaked.Load(); got != 0 {
		t.Errorf("outsider received %d of A's messages, want 0", got)
	}
	if got := a.Stats().FailedAuths; got != 1 {
		t.Errorf("FailedAuths = %d, want 1", got)
	}
}

// startOutsider starts a bare QUIC host that answers the mesh challenge
// with silence: it reads the nonce and waits for the stream to die.
func startOutsider(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.Identity(testKey(t)),
		libp2p.Transport(quic.NewTransport),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	h.SetStreamHandler(authProtocol, func(s network.Stream) {
		_, _ = io.Copy(io.Discard, s)
		_ = s.Reset()
	})
	return h
}

// rawRequest sends one request frame from a bare host and reads the
// answer.
func rawRequest(h host.Host, to peer.ID, name string, req []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, to, protocolID(name))
	if err != nil {
		return err
	}
	defer s.Reset()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	frame, err := exchange(s, req, 1<<20)
	if err != nil {
		return err
	}
	if len(frame) == 0 || frame[0] != statusOK {
		return errors.New("error answer")
	}
	return nil
}

// sendRawGossip publishes data on topic straight to peer to, on a gossip
// stream of its own and signed as gossipsub signs, so that it reaches to
// even though h has not heard that to subscribes.
func sendRawGossip(h host.Host, to peer.ID, topic string, data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := h.NewStream(ctx, to, pubsub.GossipSubID_v11)
	if err != nil {
		return err
	}
	defer s.Close()
	seqno := make([]byte, 8)
	_, _ = rand.Read(seqno)
	m := &pb.Message{From: []byte(h.ID()), Data: data, Seqno: seqno, Topic: &topic}
	unsigned, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	m.Signature, err = h.Peerstore().PrivKey(h.ID()).Sign(
		append([]byte(pubsub.SignPrefix), unsigned...))
	if err != nil {
		return err
	}
	rpc, err := proto.Marshal(&pb.RPC{Publish: []*pb.Message{m}})
	if err != nil {
		return err
	}
	return writeFrame(s, rpc)
}
