package scheduler_test

import (
	"context"
	"testing"
	"time"

	"github.com/blixard/blixard/scheduler"
)

func failureConfig(labels map[string]string) scheduler.Config {
	return scheduler.Config{
		Labels:       labels,
		Lease:        time.Second,
		Heartbeat:    200 * time.Millisecond,
		OwnerTimeout: 2 * time.Second,
	}
}

// A runner that dies loses its lease; the job runs again on another
// matching peer.
func TestDeadRunnerLosesItsLease(t *testing.T) {
	m := newMesh(t)
	a := m.add("a", failureConfig(nil))
	m.add("b", failureConfig(map[string]string{"pool": "x"}))
	m.add("c", failureConfig(map[string]string{"pool": "x"}))
	m.waitConverged()
	ctx := context.Background()
	id, err := a.Submit(ctx, scheduler.Spec{Executor: "noop", Command: []string{"sleep=2s"}, Require: []string{"pool=x"}})
	if err != nil {
		t.Fatal(err)
	}
	var runner string
	waitFor(t, 5*time.Second, "the job to start", func() bool {
		j, err := a.Job(ctx, id)
		if err != nil || j.State != scheduler.Running {
			return false
		}
		runner = j.Current().Peer
		return true
	})
	m.net.Down(runner)
	j := waitJob(t, a, id)
	if j.State != scheduler.Succeeded {
		t.Fatalf("state = %s (%s), want succeeded", j.State, j.Reason)
	}
	if len(j.Attempts) < 2 || j.Attempts[0].State != scheduler.AttemptLost {
		t.Fatalf("attempts = %+v, want a lost first attempt", j.Attempts)
	}
	if j.Current().Peer == runner {
		t.Errorf("second attempt ran on the dead runner %s", runner)
	}
}

// When the owner dies a replica takes the job over under a higher epoch,
// and the job still finishes; any survivor can tell its outcome.
func TestReplicaTakesOverFromLostOwner(t *testing.T) {
	m := newMesh(t)
	a := m.add("a", failureConfig(nil))
	b := m.add("b", failureConfig(nil))
	m.add("c", failureConfig(map[string]string{"gpu": "true"}))
	m.waitConverged()
	ctx := context.Background()
	id, err := a.Submit(ctx, scheduler.Spec{
		Command: []string{"sh", "-c", "sleep 2; echo finished"},
		Require: []string{"gpu=true"},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the job to run", func() bool {
		j, err := b.Job(ctx, id)
		return err == nil && j.State == scheduler.Running
	})
	m.net.Down("a")
	j := waitJob(t, b, id)
	if j.State != scheduler.Succeeded {
		t.Fatalf("state = %s (%s), want succeeded", j.State, j.Reason)
	}
	if j.Owner == "a" || j.Epoch < 2 {
		t.Errorf("owner %s epoch %d, want a new owner under epoch >= 2", j.Owner, j.Epoch)
	}
	if got := readAll(t, b, id, scheduler.Stdout); got != "finished\n" {
		t.Errorf("stdout = %q, want %q", got, "finished\n")
	}
}

// A finished job's record and output survive the loss of its owner.
func TestFinishedJobReadableAfterOwnerLoss(t *testing.T) {
	m := newMesh(t)
	a := m.add("a", failureConfig(nil))
	b := m.add("b", failureConfig(nil))
	m.add("c", failureConfig(nil))
	m.waitConverged()
	ctx := context.Background()
	id, err := a.Submit(ctx, scheduler.Spec{Command: []string{"echo", "kept"}})
	if err != nil {
		t.Fatal(err)
	}
	if j := waitJob(t, a, id); j.State != scheduler.Succeeded {
		t.Fatalf("state = %s (%s)", j.State, j.Reason)
	}
	m.net.Down("a")
	j, err := b.Job(ctx, id)
	if err != nil {
		t.Fatalf("status from b after a died: %v", err)
	}
	if j.State != scheduler.Succeeded {
		t.Errorf("state from b = %s, want succeeded", j.State)
	}
	if got := readAll(t, b, id, scheduler.Stdout); got != "kept\n" {
		t.Errorf("stdout from b = %q, want %q", got, "kept\n")
	}
}

// A peer restarted on its data directory resumes the jobs it owns.
func TestRestartResumesOwnedJobs(t *testing.T) {
	m := newMesh(t)
	cfg := scheduler.Config{Labels: map[string]string{"zone": "a"}}
	a := m.add("a", cfg)
	ctx := context.Background()
	id, err := a.Submit(ctx, scheduler.Spec{Executor: "noop", Command: []string{"stdout=resumed"},
		Require: []string{"zone=b"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	m.net.Remove("a")
	a = m.add("a", cfg)
	j, err := a.Job(ctx, id)
	if err != nil || j.State != scheduler.Pending {
		t.Fatalf("after restart: %v, %v; want the job pending", j, err)
	}
	m.add("b", scheduler.Config{Labels: map[string]string{"zone": "b"}})
	if j := waitJob(t, a, id); j.State != scheduler.Succeeded {
		t.Fatalf("state = %s (%s), want succeeded", j.State, j.Reason)
	}
	if got := readAll(t, a, id, scheduler.Stdout); got != "resumed" {
		t.Errorf("stdout = %q", got)
	}
}

// Cancel ends a job running on another peer and its state stays
// cancelled.
func TestCancelRemoteJob(t *testing.T) {
	m := newMesh(t)
	a := m.add("a", failureConfig(nil))
	m.add("b", failureConfig(map[string]string{"gpu": "true"}))
	m.waitConverged()
	ctx := context.Background()
	id, err := a.Submit(ctx, scheduler.Spec{Command: []string{"sleep", "30"}, Require: []string{"gpu=true"}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the job to run", func() bool {
		j, err := a.Job(ctx, id)
		return err == nil && j.State == scheduler.Running
	})
	if err := a.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the runner to confirm", func() bool {
		j, err := a.Job(ctx, id)
		return err == nil && j.Current().ExitCode != nil
	})
	j, _ := a.Job(ctx, id)
	if j.State != scheduler.Cancelled || j.Duplicates != 0 {
		t.Errorf("state %s, duplicates %d; want cancelled, 0", j.State, j.Duplicates)
	}
}

// A replica cut off from the rest of the mesh does not take the job
// over: it cannot tell a dead owner from its own isolation, and the
// larger side still runs the job.
func TestIsolatedReplicaDoesNotTakeOver(t *testing.T) {
	m := newMesh(t)
	names := []string{"a", "b", "c", "d"}
	for _, n := range names {
		m.add(n, failureConfig(nil))
	}
	m.waitConverged()
	a := m.peers["a"]
	ctx := context.Background()
	id, err := a.Submit(ctx, scheduler.Spec{Executor: "noop", Command: []string{"sleep=6s"}})
	if err != nil {
		t.Fatal(err)
	}
	j, err := a.Job(ctx, id)
	if err != nil || len(j.Replicas) == 0 {
		t.Fatalf("job %v, %v; want replicas", j, err)
	}
	lone := j.Replicas[0]
	waitFor(t, 5*time.Second, "the replica to hold a copy", func() bool {
		evs, err := m.peers[lone].Jobs(ctx, 0)
		return err == nil && len(evs) == 1 && evs[0].Kind == "replica"
	})
	for _, n := range names {
		if n != lone {
			m.net.Cut(lone, n)
		}
	}
	time.Sleep(3 * failureConfig(nil).OwnerTimeout)
	c, err := m.peers[lone].Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Owner != "a" || c.Epoch != 1 {
		t.Errorf("isolated replica %s holds owner %s epoch %d; want a, 1", lone, c.Owner, c.Epoch)
	}
}
