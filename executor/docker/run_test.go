package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/blixard/blixard/executor"
)

func TestRunOutputByteExact(t *testing.T) {
	t.Parallel()
	d := newTestDocker(t)

	// Every byte value, then random data larger than any one frame.
	in := make([]byte, 256+1<<20)
	for i := range 256 {
		in[i] = byte(i)
	}
	_, _ = rand.Read(in[256:])
	task := shTask("output", `cat; printf 'err\000\377\n' >&2`)
	task.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	task.Stdout, task.Stderr = &stdout, &stderr

	res, err := d.Run(context.Background(), task)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res != (executor.Result{}) {
		t.Errorf("Result = %+v, want a clean exit", res)
	}
	if !bytes.Equal(stdout.Bytes(), in) {
		t.Errorf("stdout: got %d bytes, want the %d bytes of stdin",
			stdout.Len(), len(in))
	}
	if got, want := stderr.String(), "err\x00\xff\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}

func TestRunExits(t *testing.T) {
	t.Parallel()
	d := newTestDocker(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("mounted"),
		0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		task       executor.Task
		wantStdout string
		wantCode   int
		wantReason string
	}{{
		name:     "exit status",
		task:     shTask("exit", "echo out; exit 3"),
		wantCode: 3, wantReason: "exit status 3", wantStdout: "out\n",
	}, {
		name: "env",
		task: func() executor.Task {
			t := shTask("env", `echo "$GREETING|$EMPTY|$EQ"`)
			t.Env = map[string]string{"GREETING": "hello world",
				"EMPTY": "", "EQ": "a=b"}
			return t
		}(),
		wantStdout: "hello world||a=b\n",
	}, {
		name: "workdir",
		task: func() executor.Task {
			t := shTask("workdir", "pwd")
			t.Workdir = "/work/sub"
			return t
		}(),
		wantStdout: "/work/sub\n",
	}, {
		name:       "image command",
		task:       executor.Task{JobID: "default", Image: testImage},
		wantStdout: "image-default\n",
	}, {
		name: "bind mount",
		task: func() executor.Task {
			t := shTask("mount", "cat /in/in.txt")
			t.Mounts = []executor.Mount{{Source: dir, Target: "/in",
				ReadOnly: true}}
			return t
		}(),
		wantStdout: "mounted",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout syncBuffer
			tt.task.Stdout = &stdout
			res, err := d.Run(context.Background(), tt.task)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.ExitCode != tt.wantCode || res.Reason != tt.wantReason {
				t.Errorf("Result = %+v, want exit %d reason %q",
					res, tt.wantCode, tt.wantReason)
			}
			if got := stdout.String(); got != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", got, tt.wantStdout)
			}
		})
	}
}

func TestRunResourcesApplied(t *testing.T) {
	t.Parallel()
	d := newTestDocker(t)
	var rec handleRecorder
	task := shTask("resources", "trap 'exit 0' TERM; sleep 60 & wait")
	task.Resources = executor.Resources{CPU: 0.5, Memory: 64 << 20}
	task.Started = rec.started
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := runAsync(ctx, d, task)

	waitFor(t, 30*time.Second, "the container to start", func() bool {
		return rec.get() != "" && containerRunning(t, d, rec.get())
	})
	got, err := d.cli.ContainerInspect(ctx, rec.get(),
		client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	host := got.Container.HostConfig
	if host.Memory != 64<<20 || host.NanoCPUs != 5e8 {
		t.Errorf("Memory, NanoCPUs = %d, %d; want %d, %d",
			host.Memory, host.NanoCPUs, 64<<20, int64(5e8))
	}
	labels := got.Container.Config.Labels
	want := map[string]string{LabelManaged: "1", LabelPeer: d.peerID,
		LabelJob: "resources", LabelAttempt: "1"}
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, labels[k], v)
		}
	}

	cancel()
	if r := awaitRun(t, done, time.Minute); !r.res.Cancelled {
		t.Errorf("Result = %+v, want cancelled", r.res)
	}
}

func TestRunOutOfMemory(t *testing.T) {
	t.Parallel()
	d := newTestDocker(t)
	// dd's 100 MiB block buffer cannot fit under a 64 MiB limit.
	task := shTask("oom", "dd if=/dev/zero of=/dev/null bs=100M count=1")
	task.Resources.Memory = 64 << 20

	res, err := d.Run(context.Background(), task)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if want := "out of memory (limit 64MiB)"; res.Reason != want ||
		res.ExitCode == 0 {
		t.Errorf("Result = %+v, want a non-zero exit with reason %q",
			res, want)
	}
}

func TestRunTimeoutAfterGrace(t *testing.T) {
	t.Parallel()
	d := newTestDocker(t)
	// The script notes SIGTERM and carries on, so only SIGKILL ends it.
	task := shTask("timeout",
		"trap 'echo term' TERM; echo ready; while true; do sleep 0.1; done")
	task.Timeout = time.Second
	task.Grace = time.Second
	var stdout syncBuffer
	task.Stdout = &stdout

	start := time.Now()
	res, err := d.Run(context.Background(), task)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := executor.Result{ExitCode: executor.ExitTimeout,
		Reason: "timeout after 1s", TimedOut: true}
	if res != want {
		t.Errorf("Result = %+v, want %+v", res, want)
	}
	if !strings.Contains(stdout.String(), "term") {
		t.Errorf("stdout = %q, want the trap's %q: no SIGTERM was sent",
			stdout.String(), "term")
	}
	if elapsed < task.Timeout+task.Grace {
		t.Errorf("Run returned after %v, before timeout plus grace %v",
			elapsed, task.Timeout+task.Grace)
	}
}

func TestRunCancel(t *testing.T) {
	t.Parallel()
	d := newTestDocker(t)
	task := shTask("cancel", "trap 'exit 0' TERM; echo ready; sleep 60 & wait")
	var stdout syncBuffer
	task.Stdout = &stdout
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	start := time.Now()
	done := runAsync(ctx, d, task)
	waitFor(t, 30*time.Second, "the task to print ready", func() bool {
		return strings.Contains(stdout.String(), "ready")
	})
	cancel()
	r := awaitRun(t, done, time.Minute)
	if r.err != nil {
		t.Fatalf("Run: %v", r.err)
	}
	want := executor.Result{ExitCode: executor.ExitCancelled,
		Reason: "cancelled", Cancelled: true}
	if r.res != want {
		t.Errorf("Result = %+v, want %+v", r.res, want)
	}
	if elapsed := time.Since(start); elapsed > 50*time.Second {
		t.Errorf("Run took %v: the sleep was not stopped", elapsed)
	}
}

func TestRunMissingImage(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	tests := []struct {
		name  string
		image string
		pull  bool
	}{
		{"pull disabled", "blixard-no-such-image:never", false},
		// A registry on a closed loopback port: the pull fails at once.
		{"pull fails", "127.0.0.1:1/blixard-no-such-image:never", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(Config{PeerID: testPeerID(t), Pull: tt.pull,
				Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			defer checkNoContainers(t, d)

			task := executor.Task{JobID: "missing", Image: tt.image}
			res, err := d.Run(context.Background(), task)
			if !errors.Is(err, ErrImageMissing) {
				t.Errorf("err = %v, want ErrImageMissing", err)
			}
			want := executor.Result{ExitCode: executor.ExitNotRun,
				Reason: `image "` + tt.image + `" is not present locally ` +
					"and no registry is reachable"}
			if tt.pull {
				if !strings.HasPrefix(res.Reason, want.Reason+": pull: ") {
					t.Errorf("Reason = %q, want %q and the pull error",
						res.Reason, want.Reason)
				}
				res.Reason = want.Reason
			}
			if res != want {
				t.Errorf("Result = %+v, want %+v", res, want)
			}
		})
	}
}

func TestRunCannotStart(t *testing.T) {
	t.Parallel()
	d := newTestDocker(t)
	var rec handleRecorder
	task := executor.Task{JobID: "nostart", Image: testImage,
		Command: []string{"/no/such/program"}, Started: rec.started}

	res, err := d.Run(context.Background(), task)
	if err == nil {
		t.Fatalf("Run: got nil error, want a start failure")
	}
	if res.ExitCode != executor.ExitNotRun ||
		!strings.HasPrefix(res.Reason, "start container: ") {
		t.Errorf("Result = %+v, want ExitNotRun with a start reason", res)
	}
	if rec.get() == "" {
		t.Errorf("Started was not called for the created container")
	}
}

func TestRunInvalidTask(t *testing.T) {
	t.Parallel()
	// Validation happens before the daemon is contacted.
	d, err := New(Config{PeerID: "invalid-task"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	base := executor.Task{JobID: "bad", Image: testImage}
	tests := []struct {
		name   string
		modify func(*executor.Task)
		want   string
	}{
		{"empty image", func(t *executor.Task) { t.Image = "" }, "image"},
		{"bad image", func(t *executor.Task) { t.Image = "UPPER:x" }, "image"},
		{"relative workdir", func(t *executor.Task) { t.Workdir = "w" },
			"workdir"},
		{"env key", func(t *executor.Task) {
			t.Env = map[string]string{"A=B": "x"}
		}, "env key"},
		{"negative cpu", func(t *executor.Task) { t.Resources.CPU = -1 },
			"cpu"},
		{"negative memory", func(t *executor.Task) {
			t.Resources.Memory = -1
		}, "memory"},
		{"relative mount", func(t *executor.Task) {
			t.Mounts = []executor.Mount{{Source: "rel", Target: "/x"}}
		}, "mount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := base
			tt.modify(&task)
			res, err := d.Run(context.Background(), task)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one naming %q", err, tt.want)
			}
			if res.ExitCode != executor.ExitNotRun || res.Reason == "" {
				t.Errorf("Result = %+v, want ExitNotRun with a reason", res)
			}
		})
	}
}

func TestRunCancelledBeforeStart(t *testing.T) {
	t.Parallel()
	d := newTestDocker(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	res, err := d.Run(ctx, shTask("early", "echo never"))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if res.ExitCode != executor.ExitNotRun || !res.Cancelled {
		t.Errorf("Result = %+v, want ExitNotRun and Cancelled", res)
	}
}
