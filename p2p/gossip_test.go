package p2p

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// inbox records the gossip a node's handler receives.
type inbox struct {
	mu   sync.Mutex
	msgs []string // "<from>:<data>"
}

func (in *inbox) handler(from peer.ID, data []byte) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.msgs = append(in.msgs, from.String()+":"+string(data))
}

func (in *inbox) has(from peer.ID, data string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, m := range in.msgs {
		if m == from.String()+":"+data {
			return true
		}
	}
	return false
}

func (in *inbox) from(p peer.ID) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for _, m := range in.msgs {
		if strings.HasPrefix(m, p.String()+":") {
			n++
		}
	}
	return n
}

// publishUntil publishes data on topic every 100 ms until done holds:
// gossip drops messages sent before the topic mesh forms, so callers never
// rely on one message.
func publishUntil(t *testing.T, n *Node, topic, data string, done func() bool) {
	t.Helper()
	waitFor(t, fmt.Sprintf("delivery of %q on %s", data, topic), func() bool {
		if done() {
			return true
		}
		if err := n.Publish(context.Background(), topic, []byte(data)); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		time.Sleep(80 * time.Millisecond)
		return done()
	})
}

func TestGossip(t *testing.T) {
	secret := testSecret(t)
	a := startNode(t, testConfig(t, secret))

	// Subscribe before any peer exists.
	var inA, inB, inC inbox
	if err := a.Subscribe("events", inA.handler); err != nil {
		t.Fatal(err)
	}
	b := startNode(t, testConfig(t, secret, a))
	c := startNode(t, testConfig(t, secret, a))
	for n, in := range map[*Node]*inbox{b: &inB, c: &inC} {
		if err := n.Subscribe("events", in.handler); err != nil {
			t.Fatal(err)
		}
	}
	waitMembers(t, a, b, c)

	publishUntil(t, a, "events", "from-a", func() bool {
		return inB.has(a.ID(), "from-a") && inC.has(a.ID(), "from-a")
	})
	publishUntil(t, c, "events", "from-c", func() bool {
		return inA.has(c.ID(), "from-c") && inB.has(c.ID(), "from-c")
	})
	if got := inA.from(a.ID()); got != 0 {
		t.Errorf("A's handler got %d of its own messages, want 0", got)
	}
	if got := inC.from(c.ID()); got != 0 {
		t.Errorf("C's handler got %d of its own messages, want 0", got)
	}

	// Another topic of the same mesh is separate.
	var other inbox
	if err := b.Subscribe("other", other.handler); err != nil {
		t.Fatal(err)
	}
	publishUntil(t, a, "other", "x", func() bool { return other.has(a.ID(), "x") })
	if other.from(c.ID()) != 0 {
		t.Error("topic other received messages of topic events")
	}
}

func TestPublishLimits(t *testing.T) {
	cfg := testConfig(t, testSecret(t))
	cfg.MaxGossipSize = 2 << 10
	n := startNode(t, cfg)
	tests := []struct {
		name    string
		topic   string
		size    int
		wantErr string
	}{
		{"at the limit", "events", 2 << 10, ""},
		{"over the limit", "events", 2<<10 + 1, "exceeds size limit"},
		{"empty topic", "", 1, "topic name"},
		{"bad topic", "a b", 1, "character ' '"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := n.Publish(context.Background(), tt.topic, make([]byte, tt.size))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Publish: %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Publish error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestGossipValidator checks the rule on forwarder and author directly,
// with a real member and peers in each other state.
func TestGossipValidator(t *testing.T) {
	a, b := pair(t, nil)
	refused, stranger := testPeerID(t), testPeerID(t)
	a.refuse(refused, errBadProof)
	x := startOutsider(t)
	if err := x.Connect(context.Background(), addrInfo(t, a)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the outsider's handshake to start", func() bool {
		a.mu.RLock()
		defer a.mu.RUnlock()
		return a.pending[x.ID()] != nil
	})

	tests := []struct {
		name         string
		from, author peer.ID
		want         pubsub.ValidationResult
	}{
		{"own message", a.ID(), a.ID(), pubsub.ValidationAccept},
		{"member's own message", b.ID(), b.ID(), pubsub.ValidationAccept},
		{"member relays a stranger", b.ID(), stranger, pubsub.ValidationAccept},
		{"member relays a refused peer", b.ID(), refused, pubsub.ValidationReject},
		{"member relays a pending peer", b.ID(), x.ID(), pubsub.ValidationReject},
		{"pending peer's own message", x.ID(), x.ID(), pubsub.ValidationReject},
		{"pending peer relays a member", x.ID(), b.ID(), pubsub.ValidationReject},
		{"stranger relays a member", stranger, b.ID(), pubsub.ValidationReject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := a.Stats().DroppedMessages
			msg := &pubsub.Message{
				Message:      &pb.Message{From: []byte(tt.author)},
				ReceivedFrom: tt.from,
			}
			got := a.validateGossip(context.Background(), tt.from, msg)
			if got != tt.want {
				t.Errorf("validateGossip = %v, want %v", got, tt.want)
			}
			var wantDropped uint64
			if tt.want == pubsub.ValidationReject {
				wantDropped = 1
			}
			if d := a.Stats().DroppedMessages - before; d != wantDropped {
				t.Errorf("DroppedMessages grew by %d, want %d", d, wantDropped)
			}
		})
	}
}
