package docker

import (
	"bufio"
	"context"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/blixard/blixard/executor"
)

// fakeDaemon serves the Engine API paths the executor uses on loopback,
// answering each from replies (matched by path suffix) or with fallback.
func fakeDaemon(t *testing.T, replies map[string]string,
	fallback string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Api-Version", "1.41")
			if strings.HasSuffix(r.URL.Path, "/attach") {
				hostileAttach(w)
				return
			}
			for suffix, body := range replies {
				if strings.HasSuffix(r.URL.Path, suffix) {
					_, _ = w.Write([]byte(body))
					return
				}
			}
			_, _ = w.Write([]byte(fallback))
		}))
	t.Cleanup(srv.Close)
	return "tcp://" + srv.Listener.Addr().String()
}

// hostileAttach upgrades the connection and sends a frame header that
// claims a payload of nearly 4 GiB.
func hostileAttach(w http.ResponseWriter) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = buf.WriteString("HTTP/1.1 101 UPGRADED\r\n" +
		"Content-Type: application/vnd.docker.raw-stream\r\n" +
		"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	hdr := make([]byte, frameHeaderLen)
	hdr[0] = 1
	binary.BigEndian.PutUint32(hdr[4:], 0xffffff00)
	_, _ = buf.Write(hdr)
	_ = buf.Flush()
	_, _ = bufio.NewReader(conn).ReadByte() // until the client hangs up
}

func TestMisbehavingDaemon(t *testing.T) {
	t.Parallel()
	ours := `{"blixard":"1","blixard.peer":"fake"}`
	tests := []struct {
		name     string
		replies  map[string]string
		fallback string
		wantRun  bool // Run completes with exit 0
	}{
		{name: "garbage", fallback: "{not json"},
		{name: "wrong types", fallback: `{"Id": 7, "State": "up"}`},
		{name: "nulls", fallback: "null", replies: map[string]string{
			"/containers/create": `{"Id": ""}`,
			"/containers/json": `[{"Id": "a", "Labels": null},
				{"Id": "", "Labels": ` + ours + `}]`,
		}},
		{name: "hostile output", fallback: "{}", wantRun: true,
			replies: map[string]string{
				"/containers/create": `{"Id": "c0ffee"}`,
				"/wait":              `{"StatusCode": 0}`,
				"/version": `{"Version": "` + strings.Repeat("9\x01 ", 300) +
					`", "Os": "linux"}`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := fakeDaemon(t, tt.replies, tt.fallback)
			d, err := New(Config{Host: host, PeerID: "fake",
				Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ctx := context.Background()

			if info, err := d.Probe(ctx); err == nil &&
				len(info.Version) > maxLabelValue {
				t.Errorf("Probe Version is %d bytes, limit %d",
					len(info.Version), maxLabelValue)
			}
			var stdout syncBuffer
			res, err := d.Run(ctx, executor.Task{JobID: "j",
				Image: "busybox:latest", Stdout: &stdout})
			if tt.wantRun && (err != nil || res.ExitCode != 0) {
				t.Errorf("Run = %+v, %v; want exit 0", res, err)
			}
			if !tt.wantRun && (err == nil ||
				res.ExitCode != executor.ExitNotRun) {
				t.Errorf("Run = %+v, %v; want ExitNotRun and an error",
					res, err)
			}
			_ = d.Reap(ctx, "c0ffee")
			if n, _ := d.Sweep(ctx, nil); n != 0 {
				t.Errorf("Sweep removed %d containers it does not own", n)
			}
		})
	}
}
