package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// jobIDRe is what `blixard submit` prints: one job ID and a newline.
var jobIDRe = regexp.MustCompile(`^[0-9a-zA-Z]{8,64}\n$`)

// meshTimeout bounds how long a mesh of processes may take to form or to
// agree on a job; generous, because the machine is shared.
const meshTimeout = 60 * time.Second

// testMesh is three peers joined by one token; the third has gpu=true.
type testMesh struct {
	peers []*peerProc
	ids   []string // ids[i] is the ID of peers[i]
	token string
}

// TestThreePeersByToken starts a mesh by token, runs a job on the one
// peer whose label it requires, and shows that a peer without the mesh
// secret stays out of it.
func TestThreePeersByToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four peer processes")
	}
	m := startMesh(t)

	t.Run("job runs on the peer it requires", func(t *testing.T) {
		testRequiredPeerRunsJob(t, m)
	})
	t.Run("run exits with the job's exit code", func(t *testing.T) {
		r := blix(t, "run", "--api", m.peers[0].api,
			"--require", "gpu=true", "--", "sh", "-c", "exit 7")
		if r.code != 7 {
			t.Errorf("%v; want exit 7", r)
		}
	})
	t.Run("peer without the secret is refused", func(t *testing.T) {
		testPeerWithoutSecretIsRefused(t, m)
	})
}

// startMesh starts peer 1 on a new mesh, then peers 2 and 3 with its
// token, and waits until each lists all three.
func startMesh(t *testing.T) *testMesh {
	t.Helper()
	p1 := startPeer(t, "peer1")
	token := strings.TrimSpace(blixOK(t, "token", "--api", p1.api).stdout)
	if token == "" {
		t.Fatal("blixard token printed nothing")
	}
	p2 := startPeer(t, "peer2", "--join", token)
	p3 := startPeer(t, "peer3", "--join", token, "--label", "gpu=true")
	m := &testMesh{peers: []*peerProc{p1, p2, p3}, token: token}
	for _, p := range m.peers {
		m.ids = append(m.ids, p.id())
	}
	want := slices.Sorted(slices.Values(m.ids))
	for _, p := range m.peers {
		eventually(t, meshTimeout, p.name+" lists the three peers",
			func() error { return membersAre(p.api, want) })
	}
	return m
}

// membersAre returns an error unless the peer at api lists exactly the
// members with IDs want (sorted).
func membersAre(api string, want []string) error {
	got, err := memberIDs(api)
	if err != nil {
		return err
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("peers at %s: got %v, want %v", api, got, want)
	}
	return nil
}

func testRequiredPeerRunsJob(t *testing.T, m *testMesh) {
	p1, p2 := m.peers[0], m.peers[1]
	r := blixOK(t, "submit", "--api", p1.api,
		filepath.Join("testdata", "gpu-hello.yaml"))
	if !jobIDRe.MatchString(r.stdout) || r.stderr != "" {
		t.Fatalf("submit: got stdout %q, stderr %q; want a job ID and "+
			"a newline, and nothing on stderr", r.stdout, r.stderr)
	}
	job := strings.TrimSpace(r.stdout)

	w := blix(t, "wait", "--api", p1.api, "--timeout", "60s", job)
	if w.code != 0 || w.stdout != "succeeded\n" {
		t.Fatalf("%v; want exit 0 and \"succeeded\"", w)
	}

	for _, p := range []*peerProc{p1, p2} {
		eventually(t, meshTimeout, p.name+" reports the job's outcome",
			func() error { return checkSucceeded(p.api, job, m) })
	}
	for _, p := range []*peerProc{p1, p2} {
		r := blixOK(t, "logs", "--api", p.api, job)
		if r.stdout != "hello\x00world" || r.stderr != "oops" {
			t.Errorf("logs at %s: got stdout %q, stderr %q; "+
				"want %q and %q", p.name, r.stdout, r.stderr,
				"hello\x00world", "oops")
		}
	}
}

// checkSucceeded returns an error naming the first field of the job's
// status at api that is not what a run on peer 3 for owner peer 1 gives.
func checkSucceeded(api, job string, m *testMesh) error {
	st, err := status(api, job)
	if err != nil {
		return err
	}
	exit := -1
	if st.ExitCode != nil {
		exit = *st.ExitCode
	}
	checks := []struct {
		field     string
		got, want any
	}{
		{"id", st.ID, job},
		{"state", st.State, "succeeded"},
		{"peer", st.Peer, m.ids[2]},
		{"owner", st.Owner, m.ids[0]},
		{"exit_code", exit, 0},
		{"len(attempts)", len(st.Attempts), 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			return fmt.Errorf("status at %s: %s: got %v, want %v",
				api, c.field, c.got, c.want)
		}
	}
	if a := st.Attempts[0]; a.Peer != m.ids[2] || a.State != "succeeded" {
		return fmt.Errorf("status at %s: attempt 1: got peer %s, state %s;"+
			" want peer %s, state succeeded", api, a.Peer, a.State, m.ids[2])
	}
	return nil
}

func testPeerWithoutSecretIsRefused(t *testing.T, m *testMesh) {
	p1 := m.peers[0]
	addr := bootstrapAddr(t, p1.api, m.ids[0])
	p4 := startPeer(t, "peer4", "--bootstrap", addr)
	id4 := p4.id()
	token4 := strings.TrimSpace(blixOK(t, "token", "--api", p4.api).stdout)
	if token4 == m.token {
		t.Fatal("peer 4 started with the mesh's own token; want a new mesh")
	}
	r := blixOK(t, "submit", "--api", p4.api,
		filepath.Join("testdata", "gpu-hello.yaml"))
	job := strings.TrimSpace(r.stdout)

	want := slices.Sorted(slices.Values(m.ids))
	outside := func() error {
		for _, p := range m.peers {
			if err := membersAre(p.api, want); err != nil {
				t.Fatal(err)
			}
		}
		if err := membersAre(p4.api, []string{id4}); err != nil {
			t.Fatal(err)
		}
		st, err := status(p4.api, job)
		if err != nil {
			return err
		}
		if st.State != "pending" || len(st.Attempts) != 0 {
			t.Fatalf("job at peer 4: state %s, %d attempts; want pending "+
				"with none", st.State, len(st.Attempts))
		}
		return nil
	}
	eventually(t, meshTimeout, "peer 1 logs that it refused peer 4",
		func() error {
			if err := outside(); err != nil {
				return err
			}
			if !p1.logHas("peer refused", id4) {
				return errors.New("no line with \"peer refused\" and " +
					"peer 4's ID in peer 1's log")
			}
			return nil
		})
	consistently(t, 3*time.Second, outside)

	st, err := status(p4.api, job)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.Reason, "gpu=true") {
		t.Errorf("job at peer 4: reason %q; want one naming gpu=true",
			st.Reason)
	}
}

// bootstrapAddr returns a loopback address of the peer with ID id, as the
// peer at api lists it, ending in /p2p/<id>.
func bootstrapAddr(t *testing.T, api, id string) string {
	t.Helper()
	ms, err := members(api)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.ID != id {
			continue
		}
		for _, a := range m.Addrs {
			if !strings.HasPrefix(a, "/ip4/127.0.0.1/") {
				continue
			}
			if !strings.Contains(a, "/p2p/") {
				a += "/p2p/" + id
			}
			return a
		}
		t.Fatalf("peer %s lists no loopback address: %v", id, m.Addrs)
	}
	t.Fatalf("peer at %s does not list itself (%s): %v", api, id, ms)
	return ""
}

// consistently calls check every 100ms for d and fails the test at the
// first error.
func consistently(t *testing.T, d time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := check(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
