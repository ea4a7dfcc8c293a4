// Package memnet is an in-memory network of peers for tests: requests and
// gossip between nodes in one process, with helpers to cut links, drop
// gossip and take nodes down. A Node satisfies scheduler.Transport.
package memnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
)

// ErrUnreachable is returned by Request when the link to the peer is cut
// or the peer is down.
var ErrUnreachable = errors.New("memnet: peer unreachable")

// Network connects Nodes. It is safe for concurrent use.
type Network struct {
	mu    sync.Mutex
	nodes map[string]*Node   // guarded by mu
	cut   map[[2]string]bool // guarded by mu; severed links, both orders
	drop  float64            // guarded by mu; probability a gossip message is lost
	wg    sync.WaitGroup
}

// New returns an empty network.
func New() *Network {
	return &Network{nodes: make(map[string]*Node), cut: make(map[[2]string]bool)}
}

// Node is one peer's view of the network.
type Node struct {
	net      *Network
	id       string
	mu       sync.Mutex
	up       bool                                                             // guarded by mu
	handlers map[string]func(context.Context, string, []byte) ([]byte, error) // guarded by mu
	subs     map[string][]func(string, []byte)                                // guarded by mu
	notify   []func(string, bool)                                             // guarded by mu
}

// Add creates a node named id and connects it to every node that is up.
func (n *Network) Add(id string) *Node {
	nd := &Node{
		net: n, id: id, up: true,
		handlers: make(map[string]func(context.Context, string, []byte) ([]byte, error)),
		subs:     make(map[string][]func(string, []byte)),
	}
	n.mu.Lock()
	n.nodes[id] = nd
	n.mu.Unlock()
	n.announce(id, true)
	return nd
}

// Down takes node id off the network, as if its machine died.
func (n *Network) Down(id string) {
	n.mu.Lock()
	nd := n.nodes[id]
	n.mu.Unlock()
	if nd == nil {
		return
	}
	nd.mu.Lock()
	nd.up = false
	nd.mu.Unlock()
	n.announce(id, false)
}

// Remove forgets node id, so that a new node may take its name.
func (n *Network) Remove(id string) {
	n.Down(id)
	n.mu.Lock()
	delete(n.nodes, id)
	n.mu.Unlock()
}

// Cut severs the link between a and b in both directions.
func (n *Network) Cut(a, b string) { n.setCut(a, b, true) }

// Heal restores the link between a and b.
func (n *Network) Heal(a, b string) { n.setCut(a, b, false) }

func (n *Network) setCut(a, b string, cut bool) {
	n.mu.Lock()
	n.cut[[2]string{a, b}] = cut
	n.cut[[2]string{b, a}] = cut
	na, nb := n.nodes[a], n.nodes[b]
	n.mu.Unlock()
	if na != nil && nb != nil {
		na.tell(b, !cut)
		nb.tell(a, !cut)
	}
}

// DropGossip makes each gossip message get lost with probability p.
func (n *Network) DropGossip(p float64) {
	n.mu.Lock()
	n.drop = p
	n.mu.Unlock()
}

// Wait blocks until every gossip delivery in flight has finished.
func (n *Network) Wait() { n.wg.Wait() }

// announce tells every node that is up that id came up or went down.
func (n *Network) announce(id string, up bool) {
	n.mu.Lock()
	var others []*Node
	for oid, o := range n.nodes {
		if oid != id && !n.cut[[2]string{id, oid}] {
			others = append(others, o)
		}
	}
	self := n.nodes[id]
	n.mu.Unlock()
	for _, o := range others {
		if !o.isUp() {
			continue
		}
		o.tell(id, up)
		if up && self != nil {
			self.tell(o.id, true)
		}
	}
}

func (n *Network) reachable(from, to string) (*Node, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	a, b := n.nodes[from], n.nodes[to]
	if a == nil || b == nil || n.cut[[2]string{from, to}] {
		return nil, false
	}
	if !a.isUp() || !b.isUp() {
		return nil, false
	}
	return b, true
}

func (nd *Node) isUp() bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.up
}

func (nd *Node) tell(peer string, up bool) {
	nd.mu.Lock()
	fs := append([]func(string, bool){}, nd.notify...)
	nd.mu.Unlock()
	for _, f := range fs {
		f(peer, up)
	}
}

// ID returns the node's name.
func (nd *Node) ID() string { return nd.id }

// Members lists the nodes this one can reach now, sorted.
func (nd *Node) Members() []string {
	nd.net.mu.Lock()
	ids := make([]string, 0, len(nd.net.nodes))
	for id := range nd.net.nodes {
		ids = append(ids, id)
	}
	nd.net.mu.Unlock()
	var out []string
	for _, id := range ids {
		if id == nd.id {
			continue
		}
		if _, ok := nd.net.reachable(nd.id, id); ok {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// IsMember reports whether p is reachable from this node.
func (nd *Node) IsMember(p string) bool {
	_, ok := nd.net.reachable(nd.id, p)
	return ok && p != nd.id
}

// Notify registers f to hear of reachability changes.
func (nd *Node) Notify(f func(p string, up bool)) {
	nd.mu.Lock()
	nd.notify = append(nd.notify, f)
	nd.mu.Unlock()
}

// Handle serves requests named name.
func (nd *Node) Handle(name string, h func(ctx context.Context, from string, req []byte) ([]byte, error)) {
	nd.mu.Lock()
	nd.handlers[name] = h
	nd.mu.Unlock()
}

// Request calls the handler name on node to, with copies of the bytes in
// both directions.
func (nd *Node) Request(ctx context.Context, to, name string, req []byte) ([]byte, error) {
	dst, ok := nd.net.reachable(nd.id, to)
	if !ok {
		return nil, fmt.Errorf("request %s to %s: %w", name, to, ErrUnreachable)
	}
	dst.mu.Lock()
	h := dst.handlers[name]
	dst.mu.Unlock()
	if h == nil {
		return nil, fmt.Errorf("request %s to %s: no handler", name, to)
	}
	type answer struct {
		b   []byte
		err error
	}
	ch := make(chan answer, 1)
	in := append([]byte(nil), req...)
	go func() {
		b, err := h(ctx, nd.id, in)
		ch <- answer{append([]byte(nil), b...), err}
	}()
	select {
	case a := <-ch:
		if _, ok := nd.net.reachable(nd.id, to); !ok {
			return nil, fmt.Errorf("request %s to %s: %w", name, to, ErrUnreachable)
		}
		if a.err != nil {
			return nil, fmt.Errorf("remote %s: %s", to, a.err)
		}
		return a.b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Publish delivers data to the subscribers of topic on every reachable
// node, asynchronously, except those the drop rate loses.
func (nd *Node) Publish(ctx context.Context, topic string, data []byte) error {
	nd.net.mu.Lock()
	drop := nd.net.drop
	nd.net.mu.Unlock()
	for _, id := range nd.Members() {
		if drop > 0 && rand.Float64() < drop {
			continue
		}
		dst, ok := nd.net.reachable(nd.id, id)
		if !ok {
			continue
		}
		dst.mu.Lock()
		hs := append([]func(string, []byte){}, dst.subs[topic]...)
		dst.mu.Unlock()
		msg := append([]byte(nil), data...)
		nd.net.wg.Add(1)
		go func() {
			defer nd.net.wg.Done()
			for _, h := range hs {
				h(nd.id, msg)
			}
		}()
	}
	return nil
}

// Subscribe delivers gossip on topic to h.
func (nd *Node) Subscribe(topic string, h func(from string, data []byte)) error {
	nd.mu.Lock()
	nd.subs[topic] = append(nd.subs[topic], h)
	nd.mu.Unlock()
	return nil
}
