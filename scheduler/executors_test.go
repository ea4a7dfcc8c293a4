package scheduler_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blixard/blixard/executor"
	"github.com/blixard/blixard/executor/docker"
	"github.com/blixard/blixard/executor/plugin"
	"github.com/blixard/blixard/executor/wasm"
	"github.com/blixard/blixard/scheduler"
)

// requireDocker skips without a Docker daemon, except under CI, where a
// missing daemon is a failure.
func requireDocker(t *testing.T) {
	t.Helper()
	if err := exec.Command("docker", "info").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no Docker daemon answers (CI=true): %v", err)
		}
		t.Skipf("no Docker daemon answers: %v", err)
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("/bin/busybox missing (install busybox-static): %v", err)
		}
		t.Skip("/bin/busybox missing (install busybox-static)")
	}
}

// buildBusyboxImage builds the image examples/docker/Dockerfile describes.
func buildBusyboxImage(t *testing.T, tag string) {
	t.Helper()
	ctxDir := t.TempDir()
	data, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker", "build", "-q", "-t", tag, "-f", "../examples/docker/Dockerfile", ctxDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
}

// buildWordcount compiles the wasm example and returns its bytes.
func buildWordcount(t *testing.T) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "wordcount.wasm")
	cmd := exec.Command("go", "build", "-o", out, "../examples/wasm/wordcount")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build wasm module: %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// One mesh, four peers, each offering a different executor: every job
// runs on the peer whose executor it names, for real.
func TestEveryExecutorInOneMesh(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an image and a wasm module")
	}
	requireDocker(t)
	buildBusyboxImage(t, "blixard-example-busybox:latest")
	module := buildWordcount(t)

	dk, err := docker.New(docker.Config{PeerID: "mesh-test-docker"})
	if err != nil {
		t.Fatal(err)
	}
	wa, err := wasm.New(wasm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pl, err := plugin.New(plugin.Config{Name: "sandbox", Path: "../examples/plugins/blixard-plugin-sandbox"})
	if err != nil {
		t.Fatal(err)
	}
	m := newMesh(t)
	owner := m.add("exec", scheduler.Config{Executors: []executor.Executor{executor.NewExec(executor.ExecConfig{})}})
	m.add("docker", scheduler.Config{Executors: []executor.Executor{dk}})
	m.add("wasm", scheduler.Config{Executors: []executor.Executor{wa}})
	m.add("plugin", scheduler.Config{Executors: []executor.Executor{pl}})
	m.waitConverged()

	ref, err := owner.AddModule(module)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		peer string
		spec scheduler.Spec
		want string
	}{
		{"exec", scheduler.Spec{Command: []string{"echo", "from exec"}}, "from exec\n"},
		{"docker", scheduler.Spec{Executor: "docker", Image: "blixard-example-busybox:latest",
			Command: []string{"sh", "-c", "echo from $WHERE"}, Env: map[string]string{"WHERE": "docker"},
			Require: []string{"docker>=20"}}, "from docker\n"},
		{"wasm", scheduler.Spec{Executor: "wasm", Module: ref, Command: []string{"wordcount"},
			Stdin: "one two three\nfour\n", Require: []string{"wasm.wasi=preview1"}}, "2 4 19\n"},
		{"plugin", scheduler.Spec{Executor: "sandbox", Command: []string{"sh", "-c", "echo from plugin"}},
			"from plugin\n"},
	} {
		t.Run(tc.peer, func(t *testing.T) {
			id, err := owner.Submit(ctx, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			// Compiling a Go-built module takes long under -race.
			j := waitJobFor(t, owner, id, 5*time.Minute)
			if j.State != scheduler.Succeeded {
				t.Fatalf("state = %s (%s), want succeeded", j.State, j.Reason)
			}
			if got := j.Current().Peer; got != tc.peer {
				t.Errorf("ran on %s, want %s", got, tc.peer)
			}
			got := readAll(t, owner, id, scheduler.Stdout)
			if strings.TrimSpace(got) != strings.TrimSpace(tc.want) {
				t.Errorf("stdout = %q, want %q", got, tc.want)
			}
		})
	}
}
