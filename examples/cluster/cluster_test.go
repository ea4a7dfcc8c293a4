package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// lease is the lease every peer of a test cluster grants: short, so that
// a fault shows within seconds.
const lease = 2 * time.Second

// clusterSize is the number of peers of a test cluster.
const clusterSize = 5

// poolA is the label of peers 4 and 5: a job that requires it runs on one
// of them, never on peers 1 to 3, so a job submitted at peer 1 is owned
// by one peer and run by another.
const poolA = "pool=a"

// logsEnv names a directory to which every container's whole log is
// written at the end of each test, failed or not.
const logsEnv = "BLIXARD_CLUSTER_LOGS"

// logTail is how many lines of each container's log a failed test shows.
const logTail = 300

// cluster is a mesh of peers, each a container on a private network made
// for one test. Every resource is named after the run ID.
type cluster struct {
	t       *testing.T
	run     string // random run ID
	network string
	subnet  string // first three octets of the network, with a dot
	shared  string // host directory mounted at /shared in every peer
	token   string
	peers   []*peer
}

// peer is one container of a cluster.
type peer struct {
	n      int    // 1 to clusterSize
	name   string // container and host name
	ip     string // fixed, so that a restarted peer keeps its address
	id     string // libp2p peer ID
	labels []string
}

func (p *peer) String() string { return p.name }

// newCluster starts clusterSize peers on a new network, peer 1 first
// (it starts the mesh) and the others with its join token, and waits
// until every peer lists every other. It removes them when t ends.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	requireCluster(t)
	c := &cluster{t: t, run: randomHex(3), shared: t.TempDir()}
	t.Cleanup(c.teardown)
	c.createNetwork()
	for n := 1; n <= clusterSize; n++ {
		p := &peer{n: n, name: fmt.Sprintf("blx-%s-%d", c.run, n),
			ip: fmt.Sprintf("%s%d", c.subnet, 10+n), labels: []string{"n=" + strconv.Itoa(n)}}
		if n >= 4 {
			p.labels = append(p.labels, poolA)
		}
		c.peers = append(c.peers, p)
	}
	c.startPeer(c.peers[0], "")
	c.token = c.waitToken(c.peers[0])
	for _, p := range c.peers[1:] {
		c.startPeer(p, c.token)
	}
	for _, p := range c.peers {
		p.id = c.peerID(p)
	}
	c.waitMembers(c.peers, time.Minute)
	t.Logf("cluster %s: %d peers on %s (%s0/24)", c.run, clusterSize, c.network, c.subnet)
	return c
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// createNetwork makes the test's bridge network on a random /24 of
// 10.0.0.0/8, trying another when the daemon has one that overlaps.
func (c *cluster) createNetwork() {
	c.t.Helper()
	c.network = "blixard-test-" + c.run
	for try := 1; ; try++ {
		c.subnet = fmt.Sprintf("10.%d.%d.", 100+mrand.IntN(150), mrand.IntN(256))
		_, err := docker("network", "create", "--driver", "bridge",
			"--subnet", c.subnet+"0/24", "--label", "blixard-test="+c.run, c.network)
		if err == nil {
			return
		}
		if try == 10 || !strings.Contains(err.Error(), "overlap") {
			c.t.Fatalf("create network: %v", err)
		}
	}
}

// startPeer runs p's container; a non-empty token joins that mesh.
func (c *cluster) startPeer(p *peer, token string) {
	c.t.Helper()
	args := []string{"run", "--detach", "--name", p.name, "--hostname", p.name,
		"--network", c.network, "--ip", p.ip,
		"--volume", c.shared + ":/shared", "--label", "blixard-test=" + c.run,
		imageTag, "/blixard", "peer", "--data-dir", "/data",
		"--listen", "/ip4/0.0.0.0/udp/4001/quic-v1", "--no-mdns",
		"--lease", lease.String(), "--slots", "2", "--log-level", "debug"}
	for _, l := range p.labels {
		args = append(args, "--label", l)
	}
	if token != "" {
		args = append(args, "--join", token)
	}
	if _, err := docker(args...); err != nil {
		c.t.Fatalf("start peer %s: %v", p, err)
	}
}

// teardown removes the containers and the network, showing the tail of
// each container's log first when the test failed.
func (c *cluster) teardown() {
	dir := os.Getenv(logsEnv)
	for _, p := range c.peers {
		docker("unpause", p.name) // a paused container cannot be killed
		if dir != "" {
			c.saveLog(p, dir)
		}
		if c.t.Failed() {
			c.t.Logf("--- last %d lines of %s (peer %s) ---\n%s",
				logTail, p, p.id, containerLog(p, strconv.Itoa(logTail)))
		}
	}
	for _, p := range c.peers {
		if _, err := docker("rm", "--force", "--volumes", p.name); err != nil {
			c.t.Logf("remove %s: %v", p, err)
		}
	}
	if _, err := docker("network", "rm", c.network); err != nil {
		c.t.Logf("remove network: %v", err)
	}
}

// containerLog returns the last tail lines ("all" for every line) of
// what p's peer wrote to its standard output and error.
func containerLog(p *peer, tail string) string {
	out, err := exec.Command("docker", "logs", "--tail", tail, p.name).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("docker logs %s: %v\n%s", p, err, out)
	}
	return string(out)
}

func (c *cluster) saveLog(p *peer, dir string) {
	name := strings.ReplaceAll(c.t.Name(), "/", "_") + "-" + p.name + ".log"
	err := os.WriteFile(filepath.Join(dir, name), []byte(containerLog(p, "all")), 0o644)
	if err != nil {
		c.t.Logf("save log of %s: %v", p, err)
	}
}

// cli runs `blixard args...` in p's container, against p's API on its
// loopback, and returns the command's standard output.
func (c *cluster) cli(p *peer, args ...string) (string, error) {
	return docker(append([]string{"exec", p.name, "/blixard"}, args...)...)
}

func (c *cluster) waitToken(p *peer) string {
	c.t.Helper()
	var token string
	waitFor(c.t, 30*time.Second, "join token of "+p.name, func() error {
		out, err := c.cli(p, "token")
		token = strings.TrimSpace(out)
		if err == nil && !strings.HasPrefix(token, "blx1") {
			err = fmt.Errorf("token %q: want prefix blx1", token)
		}
		return err
	})
	return token
}

func (c *cluster) peerID(p *peer) string {
	c.t.Helper()
	var id string
	waitFor(c.t, 30*time.Second, "peer ID of "+p.name, func() error {
		out, err := c.cli(p, "id")
		id = strings.TrimSpace(out)
		if err == nil && id == "" {
			err = fmt.Errorf("empty peer ID")
		}
		return err
	})
	return id
}

// members returns the peer IDs that p's `peers -o json` lists, itself
// included.
func (c *cluster) members(p *peer) (map[string]bool, error) {
	out, err := c.cli(p, "peers", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("peers of %s: %w", p, err)
	}
	ids := make(map[string]bool, len(list))
	for _, m := range list {
		ids[m.ID] = true
	}
	return ids, nil
}

// waitMembers waits until every peer of ps lists every other.
func (c *cluster) waitMembers(ps []*peer, timeout time.Duration) {
	c.t.Helper()
	waitFor(c.t, timeout, fmt.Sprintf("%d peers to list each other", len(ps)), func() error {
		for _, p := range ps {
			ids, err := c.members(p)
			if err != nil {
				c.requireRunning(ps)
				return err
			}
			for _, q := range ps {
				if !ids[q.id] {
					return fmt.Errorf("%s lists %d members, not %s", p, len(ids), q)
				}
			}
		}
		return nil
	})
}

// peer returns peer n, from 1.
func (c *cluster) peer(n int) *peer { return c.peers[n-1] }

// byID returns the peer with libp2p ID id, or nil.
func (c *cluster) byID(id string) *peer {
	for _, p := range c.peers {
		if p.id == id {
			return p
		}
	}
	return nil
}

// nameOf names the peer with libp2p ID id: its container, if it is one
// of the cluster's.
func (c *cluster) nameOf(id string) string {
	if p := c.byID(id); p != nil {
		return p.name
	}
	return "peer " + short(id)
}

// byName returns the peer whose container is named name, or nil.
func (c *cluster) byName(name string) *peer {
	for _, p := range c.peers {
		if p.name == name {
			return p
		}
	}
	return nil
}

// except returns the peers of the cluster other than those given.
func (c *cluster) except(gone ...*peer) []*peer {
	var out []*peer
	for _, p := range c.peers {
		keep := true
		for _, g := range gone {
			keep = keep && p != g
		}
		if keep {
			out = append(out, p)
		}
	}
	return out
}

// Faults. Each fails the test if Docker refuses it.

func (c *cluster) kill(p *peer) {
	c.t.Helper()
	c.must(docker("kill", "--signal", "KILL", p.name))
}

func (c *cluster) start(p *peer) {
	c.t.Helper()
	c.must(docker("start", p.name))
}

func (c *cluster) restart(p *peer) {
	c.t.Helper()
	c.must(docker("restart", p.name))
}

func (c *cluster) pause(p *peer) {
	c.t.Helper()
	c.must(docker("pause", p.name))
}

func (c *cluster) unpause(p *peer) {
	c.t.Helper()
	c.must(docker("unpause", p.name))
}

// disconnect cuts p off the network: it keeps only its loopback.
func (c *cluster) disconnect(p *peer) {
	c.t.Helper()
	c.must(docker("network", "disconnect", c.network, p.name))
}

// connect puts p back on the network at its address.
func (c *cluster) connect(p *peer) {
	c.t.Helper()
	c.must(docker("network", "connect", "--ip", p.ip, c.network, p.name))
}

func (c *cluster) must(_ string, err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
}

// process is one line of `ps` in a container.
type process struct {
	pid  int
	stat string
	args string
}

// jobProcesses returns the live processes in p's container other than
// the peer itself (PID 1) and the ps that lists them: the workloads of
// the exec executor. Zombies are left out.
func (c *cluster) jobProcesses(p *peer) ([]process, error) {
	out, err := docker("exec", p.name, "ps", "-o", "pid,stat,args")
	if err != nil {
		return nil, err
	}
	var procs []process
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("ps in %s: line %q", p, line)
		}
		pr := process{pid: pid, stat: f[1], args: strings.Join(f[2:], " ")}
		if pid == 1 || strings.HasPrefix(pr.stat, "Z") || strings.HasPrefix(pr.args, "ps ") {
			continue
		}
		procs = append(procs, pr)
	}
	return procs, nil
}

// uptime returns the kernel's seconds since boot, the clock the tick
// files of tickJob use; every container shares it.
func (c *cluster) uptime(p *peer) float64 {
	c.t.Helper()
	out, err := docker("exec", p.name, "cat", "/proc/uptime")
	if err != nil {
		c.t.Fatal(err)
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		c.t.Fatalf("uptime in %s: %q", p, out)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		c.t.Fatalf("uptime in %s: %v", p, err)
	}
	return v
}

// waitFor calls f every half second until it returns nil, and fails t
// with f's last error once timeout has passed.
func waitFor(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %s for %s: %v", timeout, what, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
