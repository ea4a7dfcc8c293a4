package scheduler

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/blixard/blixard/p2p"
)

// Files in the data directory.
const (
	identityFile = "identity.key"
	secretFile   = "mesh.secret"
)

// IdentityPath returns where a peer with data directory dir keeps its key.
func IdentityPath(dir string) string { return filepath.Join(dir, identityFile) }

// openNetwork joins or creates the mesh and starts the libp2p node, unless
// the config brings its own transport.
func (p *Peer) openNetwork(ctx context.Context) error {
	if p.cfg.Transport != nil {
		p.tr = p.cfg.Transport
		return nil
	}
	cfg := p2p.DefaultConfig()
	cfg.MDNS = p.cfg.MDNS
	cfg.Logger = p.cfg.Logger
	key, err := p2p.LoadOrCreateIdentity(IdentityPath(p.cfg.DataDir))
	if err != nil {
		return err
	}
	cfg.Identity = key
	secret, boot, err := p.meshSecret()
	if err != nil {
		return err
	}
	cfg.Secret = secret
	for i, s := range p.cfg.Bootstrap {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return fmt.Errorf("bootstrap[%d] %q: %v", i, s, err)
		}
		boot = append(boot, *ai)
	}
	cfg.Bootstrap = append(boot, p.rememberedPeers(key)...)
	if len(p.cfg.Listen) > 0 {
		cfg.ListenAddrs = nil
		for i, s := range p.cfg.Listen {
			ma, err := multiaddr.NewMultiaddr(s)
			if err != nil {
				return fmt.Errorf("listen[%d] %q: %v", i, s, err)
			}
			cfg.ListenAddrs = append(cfg.ListenAddrs, ma)
		}
	}
	node, err := p2p.New(ctx, cfg)
	if err != nil {
		return err
	}
	p.net = node
	p.tr = &p2pTransport{n: node}
	tok := p2p.Token{Secret: secret, Addrs: node.Addrs()}
	p.token = tok.String()
	for _, a := range node.Addrs() {
		p.addrs = append(p.addrs, a.String())
	}
	return nil
}

// meshSecret returns the mesh secret: from the join token, from the data
// directory, or new. A data directory that belongs to another mesh is not
// silently moved to the token's.
func (p *Peer) meshSecret() ([]byte, []peer.AddrInfo, error) {
	path := filepath.Join(p.cfg.DataDir, secretFile)
	stored, err := p2p.LoadSecret(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	if p.cfg.Join == "" {
		if stored != nil {
			return stored, nil, nil
		}
		secret, err := p2p.NewSecret()
		if err != nil {
			return nil, nil, err
		}
		if err := p2p.WriteSecret(path, secret); err != nil {
			return nil, nil, err
		}
		p.log.Info("created a new mesh; run 'blixard token' for its join token")
		return secret, nil, nil
	}
	tok, err := p2p.ParseToken(p.cfg.Join)
	if err != nil {
		return nil, nil, err
	}
	if stored != nil && string(stored) != string(tok.Secret) {
		return nil, nil, fmt.Errorf("data dir %s belongs to another mesh; "+
			"use a new data dir to join this one", p.cfg.DataDir)
	}
	if stored == nil {
		if err := p2p.WriteSecret(path, tok.Secret); err != nil {
			return nil, nil, err
		}
	}
	boot, err := tok.AddrInfos()
	if err != nil {
		return nil, nil, err
	}
	return tok.Secret, boot, nil
}

// p2pTransport adapts a p2p.Node to Transport, with peer IDs as strings.
type p2pTransport struct{ n *p2p.Node }

func (t *p2pTransport) ID() string { return t.n.ID().String() }

func (t *p2pTransport) Members() []string {
	ms := t.n.Members()
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.String()
	}
	return out
}

func (t *p2pTransport) IsMember(s string) bool {
	id, err := peer.Decode(s)
	return err == nil && t.n.IsMember(id)
}

func (t *p2pTransport) Notify(f func(p string, up bool)) {
	t.n.Notify(func(id peer.ID, up bool) { f(id.String(), up) })
}

func (t *p2pTransport) Handle(name string,
	h func(ctx context.Context, from string, req []byte) ([]byte, error)) {
	t.n.Handle(name, func(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
		return h(ctx, from.String(), req)
	})
}

func (t *p2pTransport) Request(ctx context.Context, to, name string, req []byte) ([]byte, error) {
	id, err := peer.Decode(to)
	if err != nil {
		return nil, fmt.Errorf("peer %q: %w", to, err)
	}
	return t.n.Request(ctx, id, name, req)
}

func (t *p2pTransport) Publish(ctx context.Context, topic string, data []byte) error {
	return t.n.Publish(ctx, topic, data)
}

func (t *p2pTransport) Subscribe(topic string, h func(from string, data []byte)) error {
	return t.n.Subscribe(topic, func(from peer.ID, data []byte) { h(from.String(), data) })
}

// rememberedPeers returns the addresses of the members this peer knew
// before it stopped, so that a restart finds the mesh again even when
// every address in the token has changed.
func (p *Peer) rememberedPeers(self crypto.PrivKey) []peer.AddrInfo {
	me, _ := peer.IDFromPrivateKey(self)
	var out []peer.AddrInfo
	_ = p.db.Scan(prefixAddrs, func(k, v []byte) error {
		var addrs []string
		if decode(v, &addrs) != nil {
			return nil
		}
		var mas []multiaddr.Multiaddr
		for _, a := range addrs {
			if ma, err := multiaddr.NewMultiaddr(a); err == nil {
				mas = append(mas, ma)
			}
		}
		infos, err := peer.AddrInfosFromP2pAddrs(mas...)
		if err != nil {
			return nil
		}
		for _, ai := range infos {
			if ai.ID != me {
				out = append(out, ai)
			}
		}
		return nil
	})
	return out
}
