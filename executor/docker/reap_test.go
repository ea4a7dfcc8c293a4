package docker

import (
	"context"
	"strings"
	"testing"
	"time"
)

// politeScript ends on SIGTERM at once, so that stopping it does not
// wait for the grace period.
const politeScript = "trap 'exit 143' TERM; echo ready; sleep 60 & wait"

// startLongTask runs a polite long task on d in a goroutine and returns
// its container handle once the container runs.
func startLongTask(t *testing.T, d *Docker, job string) (
	string, <-chan runResult) {
	t.Helper()
	var rec handleRecorder
	task := shTask(job, politeScript)
	task.Started = rec.started
	done := runAsync(context.Background(), d, task)
	waitFor(t, 30*time.Second, job+" to start", func() bool {
		return rec.get() != "" && containerRunning(t, d, rec.get())
	})
	return rec.get(), done
}

func TestReap(t *testing.T) {
	t.Parallel()
	d := newTestDocker(t)
	handle, done := startLongTask(t, d, "reap")
	ctx := context.Background()

	if err := d.Reap(ctx, handle); err != nil {
		t.Fatalf("Reap: %v", err)
	}
	if ids := peerContainers(t, d); len(ids) != 0 {
		t.Errorf("containers after Reap = %v, want none", ids)
	}
	r := awaitRun(t, done, time.Minute)
	if r.err != nil || r.res.ExitCode == 0 {
		t.Errorf("Run after Reap = %+v, %v; want a non-zero exit",
			r.res, r.err)
	}

	tests := []struct {
		name    string
		handle  string
		wantErr string
	}{
		{"already gone", handle, ""},
		{"never existed", "blixard-no-such-container", ""},
		{"empty", "", "empty"},
		{"bad characters", "../etc", "outside"},
		{"too long", strings.Repeat("a", maxHandle+1), "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.Reap(ctx, tt.handle)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Reap(%q) = %v, want nil", tt.handle, err)
			case tt.wantErr != "" && (err == nil ||
				!strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Reap(%q) = %v, want an error containing %q",
					tt.handle, err, tt.wantErr)
			}
		})
	}
}

func TestReapLeavesOtherPeers(t *testing.T) {
	t.Parallel()
	d := newTestDocker(t)
	other := newTestDocker(t)
	handle, done := startLongTask(t, other, "others")

	if err := d.Reap(context.Background(), handle); err != nil {
		t.Fatalf("Reap: %v", err)
	}
	if !containerRunning(t, other, handle) {
		t.Errorf("Reap removed another peer's container")
	}
	if err := other.Reap(context.Background(), handle); err != nil {
		t.Fatalf("Reap by owner: %v", err)
	}
	awaitRun(t, done, time.Minute)
}

// TestSweepAfterCrash plays a peer that crashed with two tasks running:
// a new executor with the same peer ID keeps one and sweeps the other,
// and never touches a container of another peer.
func TestSweepAfterCrash(t *testing.T) {
	t.Parallel()
	crashed := newTestDocker(t)
	kept, keptDone := startLongTask(t, crashed, "kept")
	swept, sweptDone := startLongTask(t, crashed, "swept")
	other := newTestDocker(t)
	foreign, foreignDone := startLongTask(t, other, "foreign")

	restarted := newDockerFor(t, crashed.peerID)
	ctx := context.Background()
	removed, err := restarted.Sweep(ctx, func(h string) bool {
		return h == kept
	})
	if err != nil || removed != 1 {
		t.Fatalf("Sweep = %d, %v; want 1, nil", removed, err)
	}
	checks := []struct {
		name    string
		d       *Docker
		handle  string
		running bool
	}{
		{"kept", crashed, kept, true},
		{"swept", crashed, swept, false},
		{"foreign", other, foreign, true},
	}
	for _, c := range checks {
		if got := containerRunning(t, c.d, c.handle); got != c.running {
			t.Errorf("%s container running = %v, want %v",
				c.name, got, c.running)
		}
	}
	awaitRun(t, sweptDone, time.Minute)

	removed, err = restarted.Sweep(ctx, nil)
	if err != nil || removed != 1 {
		t.Errorf("second Sweep = %d, %v; want 1, nil", removed, err)
	}
	awaitRun(t, keptDone, time.Minute)
	if err := other.Reap(ctx, foreign); err != nil {
		t.Errorf("Reap foreign: %v", err)
	}
	awaitRun(t, foreignDone, time.Minute)
}
