package docker

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/moby/moby/api/pkg/stdcopy"
)

// frame encodes one frame of a multiplexed attach stream.
func frame(stream byte, payload []byte) []byte {
	hdr := make([]byte, frameHeaderLen, frameHeaderLen+len(payload))
	hdr[0] = stream
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(payload)))
	return append(hdr, payload...)
}

func TestFrameGuard(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte{0xfe}, 70000)
	var valid []byte
	valid = append(valid, frame(1, []byte("out\x00"))...)
	valid = append(valid, frame(2, []byte("err\xff"))...)
	valid = append(valid, frame(1, big)...)
	valid = append(valid, frame(1, nil)...)

	huge := frame(1, nil)
	binary.BigEndian.PutUint32(huge[4:], maxFrame+1)

	tests := []struct {
		name             string
		stream           []byte
		wantOut, wantErr string
		wantFail         string
		oneByte          bool
	}{
		{name: "valid", stream: valid,
			wantOut: "out\x00" + string(big), wantErr: "err\xff"},
		{name: "valid one byte at a time", stream: valid, oneByte: true,
			wantOut: "out\x00" + string(big), wantErr: "err\xff"},
		{name: "oversized frame", stream: huge, wantFail: "limit"},
		{name: "oversized after valid", oneByte: true,
			stream:  append(frame(1, []byte("a")), huge...),
			wantOut: "a", wantFail: "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r = bytes.NewReader(tt.stream)
			var src = newFrameGuard(r)
			if tt.oneByte {
				src = newFrameGuard(iotest.OneByteReader(r))
			}
			var stdout, stderr bytes.Buffer
			_, err := stdcopy.StdCopy(&stdout, &stderr, src)
			if tt.wantFail != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantFail) {
					t.Errorf("err = %v, want one containing %q",
						err, tt.wantFail)
				}
			} else if err != nil {
				t.Fatalf("StdCopy: %v", err)
			}
			if got := stdout.String(); got != tt.wantOut {
				t.Errorf("stdout: got %d bytes, want %d",
					len(got), len(tt.wantOut))
			}
			if got := stderr.String(); got != tt.wantErr {
				t.Errorf("stderr = %q, want %q", got, tt.wantErr)
			}
		})
	}
}
