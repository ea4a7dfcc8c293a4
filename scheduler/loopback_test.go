package scheduler_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/blixard/blixard/scheduler"
)

// startLoopbackMesh starts n peers in this process on real libp2p QUIC
// hosts bound to 127.0.0.1: the first creates the mesh, the others join
// with its token.
func startLoopbackMesh(t *testing.T, labels []map[string]string) []*scheduler.Peer {
	t.Helper()
	base := t.TempDir()
	var peers []*scheduler.Peer
	t.Cleanup(func() {
		for _, p := range peers {
			p.Close()
		}
	})
	token := ""
	for i, l := range labels {
		p, err := scheduler.New(context.Background(), scheduler.Config{
			DataDir:          filepath.Join(base, string(rune('a'+i))),
			Listen:           []string{"/ip4/127.0.0.1/udp/0/quic-v1"},
			Join:             token,
			Labels:           l,
			Slots:            2,
			AnnounceInterval: 200 * time.Millisecond,
			Logger:           testLogger(t, string(rune('a'+i))),
		})
		if err != nil {
			t.Fatalf("start peer %d: %v", i, err)
		}
		peers = append(peers, p)
		if token == "" {
			token = p.Token()
		}
	}
	waitFor(t, 30*time.Second, "the loopback mesh to converge", func() bool {
		for _, p := range peers {
			if len(p.Peers()) != len(peers) {
				return false
			}
		}
		return true
	})
	return peers
}

// Three peers over real QUIC on loopback: a job that needs the third
// peer's label runs there, and its output comes back byte for byte.
func TestLoopbackMeshPlacesByLabel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libp2p hosts")
	}
	ps := startLoopbackMesh(t, []map[string]string{{"zone": "a"}, {"zone": "b"}, {"zone": "c", "disk": "ssd"}})
	ctx := context.Background()
	id, err := ps[0].Submit(ctx, scheduler.Spec{
		Command: []string{"sh", "-c", "printf 'bytes\\001\\002'"},
		Require: []string{"disk=ssd"},
	})
	if err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, ps[0], id)
	if j.State != scheduler.Succeeded {
		t.Fatalf("state = %s (%s)", j.State, j.Reason)
	}
	if got := j.Current().Peer; got != ps[2].ID() {
		t.Errorf("ran on %s, want the third peer %s", got, ps[2].ID())
	}
	if got := readAll(t, ps[1], id, scheduler.Stdout); got != "bytes\x01\x02" {
		t.Errorf("stdout read from the second peer = %q", got)
	}
}
