package docker

import (
	"encoding/binary"
	"fmt"
	"io"
)

const (
	// frameHeaderLen is the size of the header before each frame of a
	// multiplexed attach stream: the stream number, three zero bytes and
	// the payload length as a big-endian uint32.
	frameHeaderLen = 8
	// maxFrame is the largest frame payload accepted from the daemon. The
	// daemon writes frames of at most a few tens of KiB; stdcopy would
	// otherwise allocate whatever length a header claims, up to 4 GiB.
	maxFrame = 16 << 20
)

// frameGuard passes a multiplexed attach stream through unchanged and
// fails it when a frame header claims a payload over maxFrame.
type frameGuard struct {
	r      io.Reader
	header [frameHeaderLen]byte
	filled int   // bytes of the current header seen so far
	left   int64 // payload bytes left in the current frame
}

func newFrameGuard(r io.Reader) *frameGuard { return &frameGuard{r: r} }

// Read reads from the underlying stream and checks every header that
// passes.
func (g *frameGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if cerr := g.scan(p[:n]); cerr != nil {
		return 0, cerr
	}
	return n, err
}

// scan advances the frame state over b.
func (g *frameGuard) scan(b []byte) error {
	for len(b) > 0 {
		if g.left > 0 {
			skip := min(int64(len(b)), g.left)
			g.left -= skip
			b = b[skip:]
			continue
		}
		c := copy(g.header[g.filled:], b)
		g.filled += c
		b = b[c:]
		if g.filled < frameHeaderLen {
			return nil
		}
		g.filled = 0
		size := binary.BigEndian.Uint32(g.header[4:])
		if size > maxFrame {
			return fmt.Errorf("attach stream frame of %d bytes, limit %d",
				size, maxFrame)
		}
		g.left = int64(size)
	}
	return nil
}
