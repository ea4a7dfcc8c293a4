package p2p

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// mdnsNetnsEnv marks the copy of the test binary that runs inside the
// network namespace TestMDNS creates.
const mdnsNetnsEnv = "BLIXARD_TEST_MDNS_NETNS"

// netnsSetup prepares a fresh network namespace whose only interface, the
// loopback, carries multicast, then runs the command given after it.
const netnsSetup = `set -e
ip link set lo up
ip link set lo multicast on
ip route add 224.0.0.0/4 dev lo
exec "$@"`

// TestMDNS runs two members and a peer of another mesh with mDNS on, in a
// network namespace of its own so that no multicast leaves the test. The
// members must find each other by mDNS alone; the other mesh's peer must
// not even be dialled, since its service name differs.
func TestMDNS(t *testing.T) {
	if os.Getenv(mdnsNetnsEnv) != "1" {
		runInNetns(t, "TestMDNS")
		return
	}
	secret := testSecret(t)
	mdnsConfig := func(secret []byte) Config {
		cfg := testConfig(t, secret)
		cfg.MDNS = true
		return cfg
	}
	a := startNode(t, mdnsConfig(secret))
	b := startNode(t, mdnsConfig(secret))
	other := startNode(t, mdnsConfig(testSecret(t)))

	waitMembers(t, a, b)
	waitMembers(t, b, a)

	// mDNS answers arrive together; had the other mesh's service been
	// heard, its peer would have been dialled by now and refused.
	time.Sleep(time.Second)
	for _, n := range []*Node{a, b, other} {
		if s := n.Stats(); s.FailedAuths != 0 {
			t.Errorf("%s stats = %+v: meshes mixed", n.ID(), s)
		}
	}
	if peers := other.host.Network().Peers(); len(peers) != 0 {
		t.Errorf("peer of another mesh connected to %v, want nobody", peers)
	}
}

// runInNetns runs the named test in a copy of the test binary inside a new
// network namespace, and skips when the machine does not allow one.
func runInNetns(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not found; mDNS is covered by review only")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip not found; mDNS is covered by review only")
	}
	probe := exec.Command("unshare", "--net", "true")
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace (%v: %s); "+
			"mDNS is covered by review only", err, strings.TrimSpace(string(out)))
	}
	cmd := exec.Command("unshare", "--net", "--", "sh", "-c", netnsSetup, "sh",
		os.Args[0], "-test.run=^"+name+"$", "-test.v", "-test.timeout=90s")
	cmd.Env = append(os.Environ(), mdnsNetnsEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in a network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("%s in a network namespace: %v", name, err)
	}
	if !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("%s did not pass in the network namespace", name)
	}
}
