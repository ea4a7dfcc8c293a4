package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"
)

// Request/response wire format. Each call opens a fresh stream on
// "/blixard/<name>/1". The requester writes one frame and closes its side;
// the responder writes one frame whose first byte is a status. A frame is
// a uvarint length followed by that many bytes.
const (
	statusOK    byte = 0
	statusError byte = 1

	maxNameLen    = 64
	maxErrorText  = 4 << 10
	initialBuffer = 64 << 10
)

// Handler answers one request from a member. ctx ends when the node closes
// or Config.RequestTimeout passes. A returned error travels back to the
// requester as a [RemoteError] carrying its text; a panic is recovered and
// reported the same way.
type Handler func(ctx context.Context, from peer.ID, req []byte) ([]byte, error)

// RemoteError is returned by Request when the remote handler failed.
type RemoteError struct {
	Peer    peer.ID // the peer that answered
	Name    string  // the handler name
	Message string  // the handler's error text, at most 4 KiB
}

// Error returns the remote message with the peer and handler that gave it.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("peer %s: handler %s: %s", e.Peer, e.Name, e.Message)
}

// protocolID returns the stream protocol of a handler name.
func protocolID(name string) protocol.ID {
	return protocol.ID("/blixard/" + name + "/1")
}

// handlerName returns the handler name of a stream protocol.
func handlerName(id protocol.ID) string {
	s := strings.TrimPrefix(string(id), "/blixard/")
	return strings.TrimSuffix(s, "/1")
}

// checkName checks a handler or topic name: 1 to 64 letters, digits, '.',
// '_' or '-'.
func checkName(kind, name string) error {
	if len(name) == 0 || len(name) > maxNameLen {
		return fmt.Errorf("%s name %q: length %d, want 1 to %d",
			kind, name, len(name), maxNameLen)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' ||
			r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return fmt.Errorf("%s name %q: character %q, want letters, "+
				"digits, '.', '_' or '-'", kind, name, r)
		}
	}
	return nil
}

// Handle registers h for requests named name, replacing any earlier
// handler of that name. It may be called at any time, also while requests
// arrive; it is safe for concurrent use. Streams from peers that are not
// members are refused without calling h. Handle panics if name is invalid
// (see Request) or "auth", which the handshake uses, or if h is nil.
func (n *Node) Handle(name string, h Handler) {
	if err := checkName("handler", name); err != nil {
		panic("p2p: Handle: " + err.Error())
	}
	if protocolID(name) == authProtocol {
		panic("p2p: Handle: handler name \"auth\" is reserved")
	}
	if h == nil {
		panic("p2p: Handle: nil handler")
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	_, existed := n.handlers[name]
	n.handlers[name] = h
	n.mu.Unlock()
	if !existed {
		n.host.SetStreamHandler(protocolID(name), n.serveRequest)
	}
}

// Request sends req to the handler named name on peer to and returns its
// answer. It blocks until the answer arrives, ctx ends, or, when ctx has
// no deadline, Config.RequestTimeout passes. A name is 1 to 64 letters,
// digits, '.', '_' or '-'. The error wraps ErrNotMember if to is not a
// member (after waiting for a handshake in progress), ErrSelf for the
// node itself, ErrNoHandler if to has no such handler, ErrFrameTooLarge
// for an over-size request or answer, and is a *RemoteError if the handler
// failed.
func (n *Node) Request(
	ctx context.Context, to peer.ID, name string, req []byte,
) ([]byte, error) {
	if err := checkName("request", name); err != nil {
		return nil, err
	}
	if n.isClosed() {
		return nil, ErrClosed
	}
	if to == n.id {
		return nil, fmt.Errorf("request %s: %w", name, ErrSelf)
	}
	if len(req) > n.cfg.MaxMessageSize {
		return nil, fmt.Errorf("request %s: %w: %d bytes, limit %d",
			name, ErrFrameTooLarge, len(req), n.cfg.MaxMessageSize)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.RequestTimeout)
		defer cancel()
	}
	if err := n.awaitMember(ctx, to); err != nil {
		return nil, fmt.Errorf("request %s to %s: %w", name, to, err)
	}
	resp, err := n.roundTrip(ctx, to, name, req)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		err = ctx.Err() // a reset caused by ctx says less than ctx itself
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = context.DeadlineExceeded // the stream deadline is ctx's
	}
	var remote *RemoteError
	if err != nil && !errors.As(err, &remote) {
		return nil, fmt.Errorf("request %s to %s: %w", name, to, err)
	}
	return resp, err
}

// roundTrip runs one request on a fresh stream.
func (n *Node) roundTrip(
	ctx context.Context, to peer.ID, name string, req []byte,
) ([]byte, error) {
	s, err := n.host.NewStream(network.WithNoDial(ctx, "request"), to,
		protocolID(name))
	if errors.Is(err, msmux.ErrNotSupported[protocol.ID]{}) {
		return nil, ErrNoHandler
	}
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}

	frame, err := exchange(s, req, n.cfg.MaxMessageSize)
	if err != nil {
		_ = s.Reset()
		return nil, err
	}
	_ = s.Close()
	if len(frame) == 0 {
		return nil, errors.New("empty response frame")
	}
	switch frame[0] {
	case statusOK:
		return frame[1:], nil
	case statusError:
		return nil, &RemoteError{Peer: to, Name: name,
			Message: string(frame[1:min(len(frame), 1+maxErrorText)])}
	default:
		return nil, fmt.Errorf("response status %d unknown", frame[0])
	}
}

// exchange writes the request frame, closes the write side and reads the
// response frame.
func exchange(s network.Stream, req []byte, limit int) ([]byte, error) {
	if err := writeFrame(s, req); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	frame, err := readFrame(s, limit+1)
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	return frame, nil
}

// serveRequest answers one request stream from a member.
func (n *Node) serveRequest(s network.Stream) {
	if !n.enter() {
		_ = s.Reset()
		return
	}
	defer n.wg.Done()
	from, name := s.Conn().RemotePeer(), handlerName(s.Protocol())
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.RequestTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()

	if err := n.awaitMember(ctx, from); err != nil {
		n.stats.droppedRequests.Add(1)
		n.log.Debug("request from non-member refused",
			"peer", from.String(), "handler", name)
		_ = s.Reset()
		return
	}
	_ = s.SetDeadline(time.Now().Add(n.cfg.RequestTimeout))
	req, err := readFrame(s, n.cfg.MaxMessageSize)
	if err != nil {
		n.log.Debug("bad request", "peer", from.String(),
			"handler", name, "err", err)
		_ = s.Reset()
		return
	}
	resp := n.answer(ctx, from, name, req)
	if err := writeFrame(s, resp); err != nil {
		n.log.Debug("send response", "peer", from.String(),
			"handler", name, "err", err)
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// answer runs the handler and encodes its outcome as a response frame.
func (n *Node) answer(
	ctx context.Context, from peer.ID, name string, req []byte,
) []byte {
	n.mu.RLock()
	h := n.handlers[name]
	n.mu.RUnlock()
	if h == nil { // a protocol is never unregistered, so this is a race
		return errorFrame("no handler " + name)
	}
	resp, err := n.callHandler(ctx, h, from, name, req)
	if err != nil {
		return errorFrame(err.Error())
	}
	if len(resp) > n.cfg.MaxMessageSize {
		n.log.Warn("response too large", "handler", name,
			"size", len(resp), "limit", n.cfg.MaxMessageSize)
		return errorFrame(fmt.Sprintf("response of %d bytes exceeds limit %d",
			len(resp), n.cfg.MaxMessageSize))
	}
	return append([]byte{statusOK}, resp...)
}

// callHandler calls h, turning a panic into an error.
func (n *Node) callHandler(
	ctx context.Context, h Handler, from peer.ID, name string, req []byte,
) (resp []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("request handler panicked", "handler", name,
				"peer", from.String(), "panic", fmt.Sprint(r),
				"stack", string(debug.Stack()))
			resp, err = nil, errors.New("handler panicked")
		}
	}()
	return h(ctx, from, req)
}

func errorFrame(msg string) []byte {
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText]
	}
	return append([]byte{statusError}, msg...)
}

// writeFrame writes data with its uvarint length in front.
func writeFrame(w io.Writer, data []byte) error {
	buf := make([]byte, 0, binary.MaxVarintLen64+len(data))
	buf = binary.AppendUvarint(buf, uint64(len(data)))
	buf = append(buf, data...)
	_, err := w.Write(buf)
	return err
}

// readFrame reads one frame of at most limit bytes. Memory grows with the
// bytes that actually arrive, not with the length the sender claims.
func readFrame(r io.Reader, limit int) ([]byte, error) {
	size, err := binary.ReadUvarint(byteReader{r})
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read frame length: %w", err)
	}
	if size > uint64(limit) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d",
			ErrFrameTooLarge, size, limit)
	}
	buf := bytes.NewBuffer(make([]byte, 0, min(int(size), initialBuffer)))
	if _, err := buf.ReadFrom(io.LimitReader(r, int64(size))); err != nil {
		return nil, fmt.Errorf("read frame: %w", err)
	}
	if buf.Len() != int(size) {
		return nil, fmt.Errorf("read frame: %w after %d of %d bytes",
			io.ErrUnexpectedEOF, buf.Len(), size)
	}
	return buf.Bytes(), nil
}

// byteReader reads one byte at a time, so that reading a length never
// consumes bytes of the frame behind it.
type byteReader struct{ r io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var one [1]byte
	_, err := io.ReadFull(b.r, one[:])
	return one[0], err
}
