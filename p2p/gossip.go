package p2p

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Gossip tuning. A subscription buffers this many messages before gossip
// drops for a slow handler; the envelope allowance covers signature, key,
// topic and sequence number around a message of MaxGossipSize.
const (
	subscriptionBuffer = 256
	envelopeAllowance  = 4 << 10
)

// newPubSub starts gossipsub with flood publishing (off by default in
// this gossipsub version), signed messages, streams to members only (see
// memberHost) and a peer score that keeps non-members out of the topic
// mesh: a non-member scores below the gossip and publish thresholds, yet
// above the graylist, so what it sends still reaches the topic validator,
// which rejects and counts it.
func (n *Node) newPubSub() (*pubsub.PubSub, error) {
	score := &pubsub.PeerScoreParams{
		SkipAtomicValidation: true,
		AppSpecificScore:     n.gossipScore,
		AppSpecificWeight:    1,
		DecayInterval:        time.Minute,
		DecayToZero:          0.01,
	}
	thresholds := &pubsub.PeerScoreThresholds{
		SkipAtomicValidation: true,
		GossipThreshold:      -0.5,
		PublishThreshold:     -0.5,
		GraylistThreshold:    -10,
	}
	return pubsub.NewGossipSub(n.ctx, memberHost{Host: n.host, n: n},
		pubsub.WithFloodPublish(true),
		pubsub.WithMessageSigning(true),
		pubsub.WithStrictSignatureVerification(true),
		pubsub.WithMaxMessageSize(n.cfg.MaxGossipSize+envelopeAllowance),
		pubsub.WithPeerScore(score, thresholds),
	)
}

// memberHost is the host as gossip sees it: it opens streams to members
// only, waiting for a handshake in progress. Gossipsub sends everything
// to a peer on the one stream it opens, so nothing, not even a message
// flood-published the moment a peer connects, reaches a peer that has not
// proven the secret. Streams a non-member opens are still accepted; what
// arrives on them meets the topic validator.
type memberHost struct {
	host.Host
	n *Node
}

// NewStream waits until p is a member, then opens the stream.
func (h memberHost) NewStream(
	ctx context.Context, p peer.ID, protos ...protocol.ID,
) (network.Stream, error) {
	h.n.ensureHandshake(p)
	if err := h.n.awaitMember(ctx, p); err != nil {
		return nil, fmt.Errorf("gossip stream to %s: %w", p, err)
	}
	return h.Host.NewStream(ctx, p, protos...)
}

// gossipScore is the application part of the gossip peer score: 0 for a
// member, -1 for anyone else. Gossipsub calls it with its own lock held.
func (n *Node) gossipScore(p peer.ID) float64 {
	if p == n.id || n.IsMember(p) {
		return 0
	}
	return -1
}

// topicName returns the gossipsub topic of a Blixard topic.
func (n *Node) topicName(topic string) string {
	return "blixard/" + n.meshID + "/" + topic
}

// Publish sends data to the members subscribed to topic. It returns once
// the message is queued; delivery is best effort: a message published
// before the topic mesh forms, or under load, can be lost. A topic name is
// 1 to 64 letters, digits, '.', '_' or '-'. Data larger than
// Config.MaxGossipSize fails with ErrMessageTooLarge.
func (n *Node) Publish(ctx context.Context, topic string, data []byte) error {
	if err := checkName("topic", topic); err != nil {
		return err
	}
	if len(data) > n.cfg.MaxGossipSize {
		return fmt.Errorf("publish to %s: %w: %d bytes, limit %d",
			topic, ErrMessageTooLarge, len(data), n.cfg.MaxGossipSize)
	}
	t, err := n.joinTopic(topic)
	if err != nil {
		return err
	}
	if err := t.Publish(ctx, data); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// Subscribe calls h for every message on topic from another member, in
// order, on a goroutine of its own for this subscription; messages the
// node published itself are skipped. It does not block and may be called
// before any peer is known. Several subscriptions to one topic each get
// every message. A panic in h is recovered and logged. h stops being
// called when the node closes.
func (n *Node) Subscribe(topic string, h func(from peer.ID, data []byte)) error {
	if err := checkName("topic", topic); err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("subscribe to %s: nil handler", topic)
	}
	t, err := n.joinTopic(topic)
	if err != nil {
		return err
	}
	sub, err := t.Subscribe(pubsub.WithBufferSize(subscriptionBuffer))
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", topic, err)
	}
	if !n.goTracked(func() { n.readSubscription(topic, sub, h) }) {
		sub.Cancel()
		return ErrClosed
	}
	return nil
}

// readSubscription delivers messages of sub to h until the node closes.
func (n *Node) readSubscription(
	topic string, sub *pubsub.Subscription, h func(peer.ID, []byte),
) {
	defer sub.Cancel()
	for {
		msg, err := sub.Next(n.ctx)
		if err != nil {
			return
		}
		if msg.ReceivedFrom == n.id || msg.GetFrom() == n.id {
			continue
		}
		n.deliver(topic, msg, h)
	}
}

// deliver calls h for one message, recovering a panic.
func (n *Node) deliver(topic string, msg *pubsub.Message, h func(peer.ID, []byte)) {
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("gossip handler panicked", "topic", topic,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	h(msg.GetFrom(), msg.Data)
}

// joinTopic returns the joined topic, joining it and installing the
// membership validator on first use.
func (n *Node) joinTopic(topic string) (*pubsub.Topic, error) {
	// Not n.mu: gossipsub calls gossipScore, which takes n.mu, from the
	// loop that Join and RegisterTopicValidator wait for.
	n.topicMu.Lock()
	defer n.topicMu.Unlock()
	if n.isClosed() {
		return nil, ErrClosed
	}
	if t, ok := n.topics[topic]; ok {
		return t, nil
	}
	name := n.topicName(topic)
	err := n.ps.RegisterTopicValidator(name, n.validateGossip,
		pubsub.WithValidatorInline(true))
	if err != nil {
		return nil, fmt.Errorf("join topic %s: %w", topic, err)
	}
	t, err := n.ps.Join(name)
	if err != nil {
		_ = n.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("join topic %s: %w", topic, err)
	}
	n.topics[topic] = t
	return t, nil
}

// validateGossip accepts a message only if the peer that forwarded it is a
// member and its author is not known to be an outsider. An author the node
// has no connection to is vouched for by the forwarding member, which ran
// this same check; an author that is connected but not a member, or that
// is refused, is rejected.
func (n *Node) validateGossip(
	_ context.Context, from peer.ID, msg *pubsub.Message,
) pubsub.ValidationResult {
	if from == n.id {
		return pubsub.ValidationAccept
	}
	author := msg.GetFrom()
	if n.IsMember(from) && n.authorTrusted(author) {
		return pubsub.ValidationAccept
	}
	n.stats.droppedMessages.Add(1)
	n.log.Debug("gossip from non-member rejected", "from", from.String(),
		"author", author.String(), "topic", msg.GetTopic())
	return pubsub.ValidationReject
}

// authorTrusted reports whether gossip written by p may be accepted.
func (n *Node) authorTrusted(p peer.ID) bool {
	if p == n.id || n.IsMember(p) {
		return true
	}
	if n.isRefused(p) {
		return false
	}
	return !isConnected(n.host.Network().Connectedness(p))
}
