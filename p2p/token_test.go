package p2p

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"
)

func TestTokenRoundTrip(t *testing.T) {
	secret := testSecret(t)
	id1, id2 := testPeerID(t), testPeerID(t)
	tok := Token{Secret: secret, Addrs: []multiaddr.Multiaddr{
		multiaddr.StringCast("/ip4/192.0.2.7/udp/4001/quic-v1/p2p/" + id1.String()),
		multiaddr.StringCast("/ip6/::1/udp/4001/quic-v1/p2p/" + id1.String()),
		multiaddr.StringCast("/dns4/lab.example/udp/9/quic-v1/p2p/" + id2.String()),
	}}
	s := tok.String()
	if !strings.HasPrefix(s, "blx1") || strings.ContainsAny(s, " \n+/=") {
		t.Fatalf("token %q is not one URL-safe word starting blx1", s)
	}
	got, err := ParseToken("  " + s + "\n")
	if err != nil {
		t.Fatalf("ParseToken: %v", err)
	}
	if !bytes.Equal(got.Secret, secret) || len(got.Addrs) != len(tok.Addrs) {
		t.Fatalf("ParseToken = %+v, want %+v", got, tok)
	}
	for i := range tok.Addrs {
		if !got.Addrs[i].Equal(tok.Addrs[i]) {
			t.Errorf("address %d = %s, want %s", i, got.Addrs[i], tok.Addrs[i])
		}
	}
	infos, err := got.AddrInfos()
	if err != nil || len(infos) != 2 {
		t.Fatalf("AddrInfos = %v, %v; want 2 peers", infos, err)
	}
	for _, ai := range infos {
		want := map[string]int{id1.String(): 2, id2.String(): 1}[ai.ID.String()]
		if len(ai.Addrs) != want {
			t.Errorf("peer %s has %d addresses, want %d", ai.ID, len(ai.Addrs), want)
		}
	}
}

// rawToken encodes payload as a token with a valid checksum, so that the
// tests reach the checks behind it.
func rawToken(payload []byte) string {
	sum := sha256.Sum256(payload)
	b := append(bytes.Clone(payload), sum[:tokenSumSize]...)
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func TestParseTokenJunk(t *testing.T) {
	id := testPeerID(t)
	good := multiaddr.StringCast("/ip4/192.0.2.7/udp/4001/quic-v1/p2p/" + id.String())
	secret := make([]byte, SecretSize)
	withAddrs := func(addrs ...[]byte) []byte {
		b := binary.AppendUvarint(bytes.Clone(secret), uint64(len(addrs)))
		for _, a := range addrs {
			b = binary.AppendUvarint(b, uint64(len(a)))
			b = append(b, a...)
		}
		return b
	}
	valid := Token{Secret: secret, Addrs: []multiaddr.Multiaddr{good}}.String()

	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"empty", "", "token: bad prefix"},
		{"other prefix", "blx2" + valid[4:], "token: bad prefix"},
		{"not base64", "blx1!!!!", "token: bad encoding"},
		{"too short", "blx1AAAA", "token: 3 bytes, too short"},
		{"too long", "blx1" + strings.Repeat("A", maxTokenLen), "limit 4096"},
		{"flipped character", valid[:20] + flip(valid[20]) + valid[21:],
			"token: checksum mismatch"},
		{"truncated", valid[:len(valid)-3], "token:"},
		{"no address", rawToken(withAddrs()), "0 addresses, want 1 to 16"},
		{"too many addresses", rawToken(binary.AppendUvarint(
			bytes.Clone(secret), 17)), "17 addresses"},
		{"address without peer id", rawToken(withAddrs(good.Bytes(),
			multiaddr.StringCast("/ip4/192.0.2.8/udp/1/quic-v1").Bytes())),
			"token: address 2: /ip4/192.0.2.8/udp/1/quic-v1: no /p2p/<peer ID>"},
		{"tcp address", rawToken(withAddrs(multiaddr.StringCast(
			"/ip4/192.0.2.8/tcp/1/p2p/" + id.String()).Bytes())),
			"token: address 1:"},
		{"junk address bytes", rawToken(withAddrs([]byte{0xff, 0xff, 0x01})),
			"token: address 1:"},
		{"address length past the end", rawToken(append(binary.AppendUvarint(
			bytes.Clone(secret), 1), 100, 1, 2, 3)),
			"token: address 1: length 100"},
		{"trailing bytes", rawToken(append(withAddrs(good.Bytes()), 0)),
			"1 trailing bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseToken(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseToken error %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans lines, want one", err)
			}
		})
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

func FuzzParseToken(f *testing.F) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	pid, err := peer.IDFromPrivateKey(key)
	if err != nil {
		f.Fatal(err)
	}
	id := pid.String()
	f.Add(Token{Secret: make([]byte, SecretSize), Addrs: []multiaddr.Multiaddr{
		multiaddr.StringCast("/ip4/127.0.0.1/udp/1/quic-v1/p2p/" + id),
	}}.String())
	f.Add("blx1")
	f.Add("blx1AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		if len(tok.Secret) != SecretSize || len(tok.Addrs) == 0 {
			t.Fatalf("accepted token %+v", tok)
		}
		if _, err := tok.AddrInfos(); err != nil {
			t.Fatalf("accepted token without peer IDs: %v", err)
		}
		again, err := ParseToken(tok.String())
		if err != nil || len(again.Addrs) != len(tok.Addrs) {
			t.Fatalf("re-encoded token does not parse: %v", err)
		}
	})
}
