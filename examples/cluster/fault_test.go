package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestKillRunner kills the peer that runs a job with SIGKILL. The job's
// owner must notice within about a lease and give the job a second
// attempt on the other peer that can run it, and that one succeeds.
func TestKillRunner(t *testing.T) {
	c := newCluster(t)
	owner := c.peer(1)
	id := c.mustSubmit(owner, shellJob("kill-runner", "sleep 8; echo done", poolA))
	runner := c.runnerOf(c.waitRunning(owner, id))

	c.kill(runner)
	killed := time.Now()
	st := c.waitStatus(owner, id, time.Minute, "a second attempt of "+id,
		func(st jobStatus) bool { return len(st.Attempts) >= 2 })
	delay := st.Attempts[1].Started.Sub(killed)
	t.Logf("kill to attempt 2 started: %s (lease %s, target lease + 1s)",
		delay.Round(10*time.Millisecond), lease)
	if delay > 30*time.Second {
		t.Errorf("attempt 2 started %s after the kill, want within 30s", delay)
	}

	survivors := c.except(runner)
	final := c.settle([]string{id}, survivors, time.Minute)[id]
	c.wantMoved(final, runner, "lost", "succeeded")
	c.wantOutput(survivors[0], id, "done\n")
}

// TestKillOwner kills the peer that owns a job while another peer runs
// it, and keeps it dead. One of the job's replicas must take it over, so
// that the job still ends, and its status and output stay readable from
// the peers that are left.
func TestKillOwner(t *testing.T) {
	c := newCluster(t)
	owner := c.peer(1)
	marker := "owner-gone-" + c.run
	id := c.mustSubmit(owner, shellJob("kill-owner", "sleep 6; echo "+marker, poolA))
	st := c.waitRunning(owner, id)
	c.waitReplicated(st)

	c.kill(owner)
	killed := time.Now()
	survivors := c.except(owner)
	st = c.waitStatus(survivors[0], id, 90*time.Second, "a replica to take "+id+" over",
		func(st jobStatus) bool { return st.Owner != owner.id })
	t.Logf("%s took the job over at epoch %d, %s after the owner was killed",
		c.nameOf(st.Owner), st.Epoch, time.Since(killed).Round(100*time.Millisecond))
	st = c.waitTerminalAt(survivors[0], id, time.Minute)
	t.Logf("job %s after its owner died: %s, %d attempts", id, st.State, len(st.Attempts))

	final := c.settle([]string{id}, survivors, time.Minute)[id]
	if final.State != "succeeded" {
		t.Errorf("job %s: %s (%s), want succeeded", id, final.State, final.Reason)
	}
	if final.Owner == owner.id {
		t.Errorf("job %s is still owned by the dead peer %s", id, owner)
	}
	c.wantOutput(survivors[0], id, marker+"\n")
}

// TestPauseRunner freezes the peer that runs a job for three leases. The
// owner must re-run the job elsewhere; once thawed, the frozen runner
// must stop its copy at once, and its late report must be counted as a
// duplicate without changing the outcome.
func TestPauseRunner(t *testing.T) {
	c := newCluster(t)
	owner := c.peer(1)
	id := c.mustSubmit(owner, tickJob("pause-runner", 12, poolA))
	runner := c.runnerOf(c.waitRunning(owner, id))
	c.waitTicks(id, 1)

	c.pause(runner)
	paused := time.Now()
	st := c.waitStatus(owner, id, 30*time.Second, "a second attempt of "+id,
		func(st jobStatus) bool { return len(st.Attempts) >= 2 })
	t.Logf("attempt 2 started %s after the pause",
		st.Attempts[1].Started.Sub(paused).Round(10*time.Millisecond))
	time.Sleep(time.Until(paused.Add(3 * lease)))
	thawed := c.uptime(owner)
	c.unpause(runner)

	c.waitStatus(owner, id, 30*time.Second, "the late report to count as a duplicate",
		func(st jobStatus) bool { return st.Duplicates >= 1 })
	records := c.settle([]string{id}, c.peers, time.Minute)
	c.wantMoved(records[id], runner, "lost", "succeeded")
	c.wantOutput(owner, id, "done\n")

	runs := c.checkRuns(records)
	for _, r := range runs[id] {
		if r.host == runner.name {
			after := r.within(thawed, r.last())
			t.Logf("the frozen copy ticked %d times after the thaw (%.2fs; a tick is %.1fs)",
				after, max(0, r.last()-thawed), tickInterval)
		}
	}
}

// TestPartitionRunner cuts the peer that runs a job off the network for
// 30 seconds. The cut-off runner must stop its copy once its lease would
// have expired (self-fencing), the owner must re-run the job elsewhere,
// and after the runner is back every peer must agree on one outcome.
func TestPartitionRunner(t *testing.T) {
	c := newCluster(t)
	owner := c.peer(1)
	// The job outlasts the cut, so a runner that does not fence itself
	// still runs its copy when the cut ends.
	id := c.mustSubmit(owner, tickJob("partition-runner", 70, poolA))
	runner := c.runnerOf(c.waitRunning(owner, id))
	c.waitTicks(id, 1)

	c.disconnect(runner)
	cut := time.Now()
	waitFor(t, 15*time.Second, "the cut-off runner to stop its copy", func() error {
		return c.noJobProcesses(runner)
	})
	t.Logf("the cut-off runner stopped its copy within %s of the cut (lease %s)",
		time.Since(cut).Round(100*time.Millisecond), lease)
	c.waitStatus(owner, id, 30*time.Second, "a second attempt of "+id,
		func(st jobStatus) bool { return len(st.Attempts) >= 2 })
	time.Sleep(time.Until(cut.Add(30 * time.Second)))
	if err := c.noJobProcesses(runner); err != nil {
		t.Errorf("before reconnecting: %v", err)
	}
	c.connect(runner)
	c.waitMembers(c.peers, time.Minute)

	records := c.settle([]string{id}, c.peers, time.Minute)
	c.wantMoved(records[id], runner, "lost", "succeeded")
	c.checkRuns(records)
}

// TestRestartOwner restarts (docker restart) a peer that owns jobs it
// runs itself, jobs that wait for one of its slots and jobs that run on
// other peers. After it comes back it must resume them all, every job
// must succeed, and no two copies of a job may have run at once for more
// than a lease.
func TestRestartOwner(t *testing.T) {
	c := newCluster(t)
	owner := c.peer(1)
	var ids []string
	for i := 1; i <= 3; i++ {
		local := tickJob(fmt.Sprintf("restart-local-%d", i), 12, "n=1")
		remote := tickJob(fmt.Sprintf("restart-remote-%d", i), 12, poolA)
		ids = append(ids, c.mustSubmit(owner, local), c.mustSubmit(owner, remote))
	}
	waitFor(t, time.Minute, "jobs running at and away from the owner, and one pending",
		func() error { return c.ownsMixedWork(owner, ids) })

	c.restart(owner)
	if id := c.peerID(owner); id != owner.id {
		t.Fatalf("restarted %s has ID %s, want %s", owner, id, owner.id)
	}

	final := c.settle(ids, c.peers, 90*time.Second)
	var probs []string
	for _, id := range ids {
		st := final[id]
		if st.State != "succeeded" {
			t.Errorf("job %s (%s): %s (%s), want succeeded", id, st.Name, st.State, st.Reason)
		}
		probs = append(probs, attemptOverlaps(st, lease)...)
	}
	report(c, "attempts overlap", probs)
	c.checkRuns(final)
	attempts, lost := countAttempts(final)
	t.Logf("%d jobs, %d attempts, %d lost", len(ids), attempts, lost)
}

// runnerOf returns the peer that runs the current attempt of st.
func (c *cluster) runnerOf(st jobStatus) *peer {
	c.t.Helper()
	p := c.byID(st.Peer)
	if p == nil {
		c.t.Fatalf("job %s runs on %q, not a peer of the cluster", st.ID, st.Peer)
	}
	return p
}

// wantMoved checks that st's first attempt ran on from and ended in
// firstState, and that its last ran elsewhere and ended in lastState.
func (c *cluster) wantMoved(st jobStatus, from *peer, firstState, lastState string) {
	c.t.Helper()
	if len(st.Attempts) < 2 {
		c.t.Errorf("job %s has %d attempts, want at least 2", st.ID, len(st.Attempts))
		return
	}
	a, z := st.Attempts[0], st.Attempts[len(st.Attempts)-1]
	if a.Peer != from.id || a.State != firstState {
		c.t.Errorf("job %s attempt 1: %s on %s, want %s on %s",
			st.ID, a.State, short(a.Peer), firstState, from)
	}
	if z.Peer == from.id || z.State != lastState {
		c.t.Errorf("job %s attempt %d: %s on %s, want %s on a peer other than %s",
			st.ID, z.N, z.State, short(z.Peer), lastState, from)
	}
}

// wantOutput checks that p's `blixard logs` of job id prints want.
func (c *cluster) wantOutput(p *peer, id, want string) {
	c.t.Helper()
	got, err := c.logs(p, id)
	if err != nil {
		c.t.Errorf("logs of %s at %s: %v", id, p, err)
		return
	}
	if got != want {
		c.t.Errorf("logs of %s at %s: got %q, want %q", id, p, got, want)
	}
}

// waitReplicated waits until every replica of st lists the job.
func (c *cluster) waitReplicated(st jobStatus) {
	c.t.Helper()
	if len(st.Replicas) == 0 {
		c.t.Fatalf("job %s has no replicas", st.ID)
	}
	waitFor(c.t, 30*time.Second, "the replicas of "+st.ID, func() error {
		for _, r := range st.Replicas {
			p := c.byID(r)
			if p == nil {
				return fmt.Errorf("replica %s is not a peer of the cluster", r)
			}
			list, err := c.jobs(p)
			if err != nil {
				return err
			}
			if _, ok := list[st.ID]; !ok {
				return fmt.Errorf("replica %s does not list job %s", p, st.ID)
			}
		}
		return nil
	})
}

// waitTicks waits until some copy of tickJob id has ticked n times.
func (c *cluster) waitTicks(id string, n int) {
	c.t.Helper()
	waitFor(c.t, 30*time.Second, fmt.Sprintf("%d ticks of %s", n, id), func() error {
		runs, err := c.readTicks()
		if err != nil {
			return err
		}
		for _, r := range runs[id] {
			if len(r.ticks) >= n {
				return nil
			}
		}
		return fmt.Errorf("%d copies, none with %d ticks", len(runs[id]), n)
	})
}

// noJobProcesses reports an error naming the job processes p still runs.
func (c *cluster) noJobProcesses(p *peer) error {
	procs, err := c.jobProcesses(p)
	if err != nil {
		return err
	}
	if len(procs) == 0 {
		return nil
	}
	var list []string
	for _, pr := range procs {
		list = append(list, fmt.Sprintf("%d %s %q", pr.pid, pr.stat, pr.args))
	}
	return fmt.Errorf("%s still runs %s", p, strings.Join(list, "; "))
}

// ownsMixedWork reports an error until owner runs two of ids itself,
// holds one pending and has one running on another peer.
func (c *cluster) ownsMixedWork(owner *peer, ids []string) error {
	sts, err := c.statuses(owner, ids)
	if err != nil {
		return err
	}
	here, away, pending := 0, 0, 0
	for _, st := range sts {
		switch {
		case st.State == "pending":
			pending++
		case st.State == "running" && st.Peer == owner.id:
			here++
		case st.State == "running":
			away++
		}
	}
	if here < 2 || away < 1 || pending < 1 {
		return fmt.Errorf("%d running at the owner, %d elsewhere, %d pending",
			here, away, pending)
	}
	return nil
}

// checkRuns fails the test if a copy of a tickJob ran without a matching
// attempt in records or ran beside another copy of the same job for more
// than a lease. It returns the copies.
func (c *cluster) checkRuns(records map[string]jobStatus) map[string][]run {
	c.t.Helper()
	runs, err := c.readTicks()
	if err != nil {
		c.t.Fatal(err)
	}
	report(c, "unrecorded copies", c.unrecordedRuns(runs, records))
	report(c, "copies overlap", runOverlaps(runs, lease.Seconds()))
	return runs
}

// countAttempts sums the attempts of records and those lost.
func countAttempts(records map[string]jobStatus) (attempts, lost int) {
	for _, st := range records {
		attempts += len(st.Attempts)
		for _, a := range st.Attempts {
			if a.State == "lost" {
				lost++
			}
		}
	}
	return attempts, lost
}
