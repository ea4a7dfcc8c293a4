package cluster

import (
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables that size the chaos test for a quick local run.
const (
	chaosJobsEnv     = "BLIXARD_CHAOS_JOBS"     // jobs to submit; default 500
	chaosDurationEnv = "BLIXARD_CHAOS_DURATION" // how long peers are killed; default 60s
)

// chaosBatch is how many jobs one docker exec submits.
const chaosBatch = 10

// TestChaos submits many short jobs spread over the peers while, every 3
// to 5 seconds, a random peer is killed with SIGKILL and started again a
// few seconds later. Once the peers have settled, no accepted job may be
// lost, each must have succeeded with one terminal record, and every
// copy that ran must be an attempt of its record.
func TestChaos(t *testing.T) {
	jobs := envInt(t, chaosJobsEnv, 500)
	length := envDuration(t, chaosDurationEnv, 60*time.Second)
	c := newCluster(t)

	ch := &chaos{c: c, down: make(map[*peer]bool)}
	ch.wg.Add(1)
	go ch.loop(time.Now().Add(length))
	ids, refused := c.submitThroughChaos(ch, jobs, length*5/6)
	ch.wg.Wait()
	t.Logf("chaos over: %d kills; %d jobs accepted, %d submissions refused",
		ch.kills, len(ids), refused)
	c.waitMembers(c.peers, 90*time.Second)

	records := c.settle(ids, c.peers, 4*time.Minute)
	for _, id := range ids {
		if st, ok := records[id]; ok && st.State != "succeeded" {
			t.Errorf("job %s: %s (%s), want succeeded", id, st.State, st.Reason)
		}
	}
	for _, id := range sample(ids, 20) {
		c.wantOutput(c.peers[mrand.IntN(len(c.peers))], id, "ok\n")
	}
	runs := c.checkRuns(records)
	attempts, lost := countAttempts(records)
	dups, moved := 0, 0
	for _, st := range records {
		dups += st.Duplicates
		if len(st.Attempts) > 1 {
			moved++
		}
	}
	t.Logf("%d jobs, %d attempts (%d lost), %d jobs run more than once, "+
		"%d duplicates, %d copies ran", len(ids), attempts, lost, moved, dups, countRuns(runs))
}

// chaos kills and restarts peers of a cluster, one at a time.
type chaos struct {
	c  *cluster
	wg sync.WaitGroup

	mu    sync.Mutex
	down  map[*peer]bool // guarded by mu
	kills int            // guarded by mu
}

// loop kills a random peer every 3 to 5 seconds and starts it again 2 to
// 3 seconds after, until the deadline. It leaves every peer running.
func (ch *chaos) loop(deadline time.Time) {
	defer ch.wg.Done()
	for time.Now().Before(deadline) {
		time.Sleep(between(time.Second, 2*time.Second))
		p := ch.c.peers[mrand.IntN(len(ch.c.peers))]
		ch.setDown(p, true)
		if _, err := docker("kill", "--signal", "KILL", p.name); err != nil {
			if strings.Contains(err.Error(), "is not running") {
				err = fmt.Errorf("%s had stopped on its own: %w", p, err)
			}
			ch.c.t.Errorf("chaos: %v", err)
		}
		time.Sleep(between(2*time.Second, 3*time.Second))
		if _, err := docker("start", p.name); err != nil {
			ch.c.t.Errorf("chaos: %v", err)
		}
		ch.setDown(p, false)
	}
}

func (ch *chaos) setDown(p *peer, down bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.down[p] = down
	if down {
		ch.kills++
	}
}

// up returns a random peer that is not down.
func (ch *chaos) up() *peer {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for {
		p := ch.c.peers[mrand.IntN(len(ch.c.peers))]
		if !ch.down[p] {
			return p
		}
	}
}

// submitThroughChaos submits n jobs in batches to random live peers,
// spread over about spread, and resubmits what a peer refused (it died
// mid-batch, say) until n are accepted. It returns the accepted IDs and
// how many submissions were refused. It gives up a minute after spread.
func (c *cluster) submitThroughChaos(ch *chaos, n int, spread time.Duration) ([]string, int) {
	var ids []string
	refused := 0
	batches := (n + chaosBatch - 1) / chaosBatch
	pace := spread / time.Duration(batches)
	next := time.Now()
	giveUp := next.Add(spread + time.Minute)
	for seq := 0; len(ids) < n; seq++ {
		if time.Now().After(giveUp) {
			c.t.Errorf("submitted %d of %d jobs by %s; giving up",
				len(ids), n, spread+time.Minute)
			break
		}
		time.Sleep(time.Until(next))
		next = next.Add(pace)
		var specs []spec
		for i := len(ids); i < n && len(specs) < chaosBatch; i++ {
			specs = append(specs, chaosJob(seq, i))
		}
		got, failed := c.submitBatch(ch.up(), specs)
		ids = append(ids, got...)
		refused += failed
	}
	return ids, refused
}

// chaosJob is a short job that marks each copy of itself in /shared (see
// tickJob) and sleeps a random fraction of a second.
func chaosJob(batch, i int) spec {
	return shellJob(fmt.Sprintf("chaos-%d-%d", batch, i),
		": chaos; cut -d' ' -f1 /proc/uptime "+
			">>/shared/ticks.$BLIXARD_JOB_ID.$BLIXARD_ATTEMPT.$(hostname); "+
			"sleep 0.$RANDOM; echo ok")
}

// sample returns up to n of ids, picked at random.
func sample(ids []string, n int) []string {
	out := append([]string(nil), ids...)
	mrand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:min(n, len(out))]
}

func countRuns(runs map[string][]run) int {
	n := 0
	for _, rs := range runs {
		n += len(rs)
	}
	return n
}

// between returns a random duration in [lo, hi).
func between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(mrand.Int64N(int64(hi-lo)))
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || v > 100000 {
		t.Fatalf("%s=%q: want a whole number from 1 to 100000", name, s)
	}
	return v
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < time.Second || v > time.Hour {
		t.Fatalf("%s=%q: want a duration from 1s to 1h", name, s)
	}
	return v
}
