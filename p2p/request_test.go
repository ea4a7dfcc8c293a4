package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestReadFrame(t *testing.T) {
	uv := func(n uint64) []byte { return binary.AppendUvarint(nil, n) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name    string
		in      []byte
		limit   int
		want    []byte
		wantErr error // nil: success; io.ErrUnexpectedEOF etc. matched by Is
	}{
		{"empty frame", uv(0), 10, []byte{}, nil},
		{"small frame", cat(uv(3), []byte("abc")), 10, []byte("abc"), nil},
		{"exactly the limit", cat(uv(4), []byte("abcd")), 4, []byte("abcd"), nil},
		{"trailing bytes stay unread", cat(uv(1), []byte("ab")), 4,
			[]byte("a"), nil},
		{"one over the limit", cat(uv(5), []byte("abcde")), 4, nil,
			ErrFrameTooLarge},
		{"huge claimed length", uv(1 << 62), 1 << 20, nil, ErrFrameTooLarge},
		{"no input", nil, 10, nil, io.ErrUnexpectedEOF},
		{"truncated length", []byte{0x80}, 10, nil, io.ErrUnexpectedEOF},
		{"truncated body", cat(uv(5), []byte("ab")), 10, nil,
			io.ErrUnexpectedEOF},
		{"overlong varint", bytes.Repeat([]byte{0xff}, 11), 10, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readFrame(bytes.NewReader(tt.in), tt.limit)
			if tt.want != nil {
				if err != nil || !bytes.Equal(got, tt.want) {
					t.Fatalf("readFrame = %q, %v; want %q, nil", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("readFrame = %q, nil; want an error", got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("readFrame error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 127, 128, 70 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			data := bytes.Repeat([]byte{0xa5}, size)
			var buf bytes.Buffer
			if err := writeFrame(&buf, data); err != nil {
				t.Fatal(err)
			}
			got, err := readFrame(&buf, size)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("round trip of %d bytes: got %d bytes, %v",
					size, len(got), err)
			}
		})
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{3, 'a', 'b', 'c'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 64
		got, err := readFrame(bytes.NewReader(in), limit)
		if err == nil && len(got) > limit {
			t.Fatalf("frame of %d bytes passed limit %d", len(got), limit)
		}
	})
}

// pair starts two members of one mesh, b connected to a.
func pair(t *testing.T, tweak func(*Config)) (a, b *Node) {
	t.Helper()
	secret := testSecret(t)
	acfg, bcfg := testConfig(t, secret), testConfig(t, secret)
	if tweak != nil {
		tweak(&acfg)
		tweak(&bcfg)
	}
	a = startNode(t, acfg)
	b = startNode(t, bcfg)
	if err := b.Connect(context.Background(), addrInfo(t, a)); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a, b)
	waitMembers(t, b, a)
	return a, b
}

func TestRequestResponse(t *testing.T) {
	const limit = 4 << 10
	a, b := pair(t, func(c *Config) { c.MaxMessageSize = limit })

	b.Handle("echo", func(_ context.Context, from peer.ID, req []byte) ([]byte, error) {
		if from != a.ID() {
			return nil, fmt.Errorf("from %s, want %s", from, a.ID())
		}
		return append([]byte("echo:"), req...), nil
	})
	b.Handle("fail", func(context.Context, peer.ID, []byte) ([]byte, error) {
		return nil, errors.New("disk full on the runner")
	})
	b.Handle("panic", func(context.Context, peer.ID, []byte) ([]byte, error) {
		panic("handler bug")
	})
	b.Handle("big", func(context.Context, peer.ID, []byte) ([]byte, error) {
		return make([]byte, limit+1), nil
	})
	b.Handle("slow", func(ctx context.Context, _ peer.ID, _ []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})

	tests := []struct {
		name    string
		to      peer.ID
		handler string
		req     []byte
		timeout time.Duration
		want    string
		wantIs  error
		wantMsg string // substring of the error
	}{
		{name: "echo", to: b.ID(), handler: "echo", req: []byte("hi"),
			want: "echo:hi"},
		{name: "empty request", to: b.ID(), handler: "echo", want: "echo:"},
		{name: "request at the limit", to: b.ID(), handler: "echo",
			req: make([]byte, limit-5), want: "echo:" + string(make([]byte, limit-5))},
		{name: "remote error", to: b.ID(), handler: "fail",
			wantMsg: "disk full on the runner"},
		{name: "panicking handler", to: b.ID(), handler: "panic",
			wantMsg: "handler panicked"},
		{name: "response over the limit", to: b.ID(), handler: "big",
			wantMsg: "exceeds limit"},
		{name: "request over the limit", to: b.ID(), handler: "echo",
			req: make([]byte, limit+1), wantIs: ErrFrameTooLarge},
		{name: "no such handler", to: b.ID(), handler: "nope",
			wantIs: ErrNoHandler},
		{name: "to self", to: a.ID(), handler: "echo", wantIs: ErrSelf},
		{name: "to a stranger", to: testPeerID(t), handler: "echo",
			wantIs: ErrNotMember},
		{name: "bad name", to: b.ID(), handler: "no/slash",
			wantMsg: "character '/'"},
		{name: "deadline", to: b.ID(), handler: "slow",
			timeout: 300 * time.Millisecond, wantIs: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			got, err := a.Request(ctx, tt.to, tt.handler, tt.req)
			if tt.wantIs == nil && tt.wantMsg == "" {
				if err != nil || string(got) != tt.want {
					t.Fatalf("Request = %.40q, %v; want %.40q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Request = %.40q, nil; want an error", got)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v, want %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}

	var remote *RemoteError
	_, err := a.Request(context.Background(), b.ID(), "fail", nil)
	if !errors.As(err, &remote) || remote.Peer != b.ID() || remote.Name != "fail" {
		t.Errorf("remote error = %#v, want a *RemoteError from %s", err, b.ID())
	}
	// The peer survived the panic and the over-size answer.
	if _, err := a.Request(context.Background(), b.ID(), "echo", nil); err != nil {
		t.Errorf("request after failures: %v", err)
	}
}

// TestOversizeFrameFromPeer sends a frame header claiming more than the
// limit straight on a stream: the handler must not run and the node must
// keep serving.
func TestOversizeFrameFromPeer(t *testing.T) {
	a, b := pair(t, func(c *Config) { c.MaxMessageSize = 1 << 10 })
	var calls atomic.Int32
	b.Handle("echo", func(_ context.Context, _ peer.ID, req []byte) ([]byte, error) {
		calls.Add(1)
		return req, nil
	})
	for _, header := range [][]byte{
		binary.AppendUvarint(nil, 1<<10+1),
		binary.AppendUvarint(nil, 1<<62),
		bytes.Repeat([]byte{0xff}, 12),
	} {
		s, err := a.host.NewStream(context.Background(), b.ID(),
			protocolID("echo"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = s.Write(header)
		_, _ = s.Write(make([]byte, 2<<10))
		_ = s.CloseWrite()
		_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(s)
		if err == nil && len(got) > 0 {
			t.Errorf("header %x: got a %d-byte answer, want a reset",
				header, len(got))
		}
		_ = s.Reset()
	}
	if got := calls.Load(); got != 0 {
		t.Errorf("handler ran %d times for over-size frames, want 0", got)
	}
	resp, err := a.Request(context.Background(), b.ID(), "echo", []byte("ok"))
	if err != nil || string(resp) != "ok" {
		t.Errorf("Request after bad frames = %q, %v; want ok", resp, err)
	}
}

func TestHandleRejectsBadNames(t *testing.T) {
	n := startNode(t, testConfig(t, testSecret(t)))
	h := func(context.Context, peer.ID, []byte) ([]byte, error) { return nil, nil }
	tests := []struct {
		name    string
		handler string
		h       Handler
	}{
		{"empty", "", h},
		{"slash", "a/b", h},
		{"too long", strings.Repeat("x", maxNameLen+1), h},
		{"reserved", "auth", h},
		{"nil handler", "ok", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Handle(%q) did not panic", tt.handler)
				}
			}()
			n.Handle(tt.handler, tt.h)
		})
	}
}

func testPeerID(t *testing.T) peer.ID {
	t.Helper()
	id, err := peer.IDFromPrivateKey(testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestRequestRightAfterConnect sends a request as soon as Connect returns:
// both sides must wait for the handshake in progress, not refuse.
func TestRequestRightAfterConnect(t *testing.T) {
	secret := testSecret(t)
	a := startNode(t, testConfig(t, secret))
	a.Handle("echo", func(_ context.Context, _ peer.ID, req []byte) ([]byte, error) {
		return req, nil
	})
	for i := range 3 {
		b := startNode(t, testConfig(t, secret))
		if err := b.Connect(context.Background(), addrInfo(t, a)); err != nil {
			t.Fatal(err)
		}
		resp, err := b.Request(context.Background(), a.ID(), "echo", []byte("now"))
		if err != nil || string(resp) != "now" {
			t.Fatalf("request %d right after Connect = %q, %v; want now",
				i, resp, err)
		}
		if got := a.Stats().DroppedRequests; got != 0 {
			t.Fatalf("A dropped %d requests from a member", got)
		}
	}
}
