package p2p

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

// tokenPrefix starts every token; the digit is the format version.
const tokenPrefix = "blx1"

// Bounds of a token, so that a pasted string of any size is cheap to refuse.
const (
	maxTokenLen      = 4096
	maxTokenAddrs    = 16
	maxTokenAddrSize = 256
	tokenSumSize     = 4
)

// Token is what a new peer needs to join a mesh: the secret and the address
// of at least one member, each address ending in /p2p/<peer ID>. Its text
// form is one copy-pasteable line. A token grants membership, so treat it
// like the secret itself.
type Token struct {
	Secret []byte
	Addrs  []multiaddr.Multiaddr
}

// String encodes t as "blx1" followed by unpadded base64url of: the secret,
// a uvarint count of addresses, each address as a uvarint length and its
// binary form, and the first 4 bytes of the SHA-256 of all that, which
// catches a truncated or mistyped paste. String does not validate t; use
// ParseToken on the result to check it.
func (t Token) String() string {
	var b []byte
	b = append(b, t.Secret...)
	b = binary.AppendUvarint(b, uint64(len(t.Addrs)))
	for _, a := range t.Addrs {
		raw := a.Bytes()
		b = binary.AppendUvarint(b, uint64(len(raw)))
		b = append(b, raw...)
	}
	sum := sha256.Sum256(b)
	b = append(b, sum[:tokenSumSize]...)
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseToken decodes a token made by Token.String. Surrounding white space
// is ignored. Every address must name its peer with /p2p/<id> and be
// dialable over QUIC. Errors are one line, such as "token: bad prefix" or
// "token: address 2: no /p2p/<peer ID> component".
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxTokenLen {
		return Token{}, fmt.Errorf("token: %d characters, limit %d",
			len(s), maxTokenLen)
	}
	body, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return Token{}, errors.New("token: bad prefix, want " + tokenPrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return Token{}, fmt.Errorf("token: bad encoding: %w", err)
	}
	if len(raw) < SecretSize+1+tokenSumSize {
		return Token{}, fmt.Errorf("token: %d bytes, too short", len(raw))
	}
	payload, sum := raw[:len(raw)-tokenSumSize], raw[len(raw)-tokenSumSize:]
	want := sha256.Sum256(payload)
	if !bytes.Equal(sum, want[:tokenSumSize]) {
		return Token{}, errors.New("token: checksum mismatch " +
			"(truncated or mistyped)")
	}
	return decodeTokenPayload(payload)
}

// decodeTokenPayload decodes the checksummed part of a token.
func decodeTokenPayload(b []byte) (Token, error) {
	t := Token{Secret: bytes.Clone(b[:SecretSize])}
	b = b[SecretSize:]
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return Token{}, errors.New("token: bad address count")
	}
	b = b[k:]
	if n == 0 || n > maxTokenAddrs {
		return Token{}, fmt.Errorf("token: %d addresses, want 1 to %d",
			n, maxTokenAddrs)
	}
	for i := 1; i <= int(n); i++ {
		a, rest, err := decodeTokenAddr(b)
		if err != nil {
			return Token{}, fmt.Errorf("token: address %d: %w", i, err)
		}
		t.Addrs = append(t.Addrs, a)
		b = rest
	}
	if len(b) != 0 {
		return Token{}, fmt.Errorf("token: %d trailing bytes", len(b))
	}
	return t, nil
}

// decodeTokenAddr decodes one length-prefixed address from the front of b.
func decodeTokenAddr(b []byte) (multiaddr.Multiaddr, []byte, error) {
	size, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, nil, errors.New("bad length")
	}
	b = b[k:]
	if size == 0 || size > maxTokenAddrSize || size > uint64(len(b)) {
		return nil, nil, fmt.Errorf("length %d, want 1 to %d and within token",
			size, min(maxTokenAddrSize, len(b)))
	}
	a, err := multiaddr.NewMultiaddrBytes(b[:size])
	if err != nil {
		return nil, nil, err
	}
	if err := checkPeerAddr(a); err != nil {
		return nil, nil, err
	}
	return a, b[size:], nil
}

// checkPeerAddr checks that a is a QUIC address ending in /p2p/<id>.
func checkPeerAddr(a multiaddr.Multiaddr) error {
	if _, err := peer.AddrInfoFromP2pAddr(a); err != nil {
		return fmt.Errorf("%s: no /p2p/<peer ID> component", a)
	}
	if !isQUICAddr(a) {
		return fmt.Errorf("%s: not a /udp/<port>/quic-v1 address", a)
	}
	return nil
}

// AddrInfos groups t.Addrs by peer, ready for Config.Bootstrap. It fails if
// an address lacks its /p2p/<id> component.
func (t Token) AddrInfos() ([]peer.AddrInfo, error) {
	for i, a := range t.Addrs {
		if _, err := peer.AddrInfoFromP2pAddr(a); err != nil {
			return nil, fmt.Errorf("token: address %d: %s: "+
				"no /p2p/<peer ID> component", i+1, a)
		}
	}
	infos, err := peer.AddrInfosFromP2pAddrs(t.Addrs...)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return infos, nil
}
