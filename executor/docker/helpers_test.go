package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"

	"github.com/blixard/blixard/executor"
)

// testImage is built by the tests from the host's static busybox
// (Debian's busybox-static package); no registry is involved.
const testImage = "blixard-test-busybox:latest"

// testApplets are the busybox applets the test image links into /bin.
var testApplets = []string{"sh", "echo", "cat", "sleep", "dd", "head",
	"printf", "pwd", "true"}

var (
	setupOnce sync.Once
	setupErr  error // the daemon or busybox is missing: skip
)

// requireDocker skips t when no Docker daemon answers or busybox is not
// installed, and fails it instead when CI=true. The first call builds
// testImage.
func requireDocker(t *testing.T) {
	t.Helper()
	setupOnce.Do(func() { setupErr = setupImage() })
	if setupErr == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("docker tests need a daemon and busybox: %v", setupErr)
	}
	t.Skipf("skipping docker tests: %v", setupErr)
}

// setupImage checks that the daemon answers and builds testImage.
func setupImage() error {
	d, err := New(Config{PeerID: "blixard-test-setup"})
	if err != nil {
		return err
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := d.Probe(ctx); err != nil {
		return err
	}
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("read static busybox "+
			"(apt-get install busybox-static): %w", err)
	}
	buildCtx, err := buildContext(bin)
	if err != nil {
		return err
	}
	return buildImage(ctx, d.cli, buildCtx)
}

// buildContext returns a tar build context whose Dockerfile copies a
// root file system of busybox and links to it into a scratch image.
func buildContext(busybox []byte) (io.Reader, error) {
	dockerfile := "FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\n" +
		`CMD ["echo", "image-default"]` + "\n"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct {
		name string
		mode int64
		body []byte
	}{
		{"Dockerfile", 0o644, []byte(dockerfile)},
		{"rootfs/bin/busybox", 0o755, busybox},
	}
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body))}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	for _, applet := range testApplets {
		hdr := &tar.Header{Name: "rootfs/bin/" + applet,
			Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

// buildImage builds testImage from buildCtx and reports the first error
// in the daemon's build output.
func buildImage(ctx context.Context, cli *client.Client,
	buildCtx io.Reader) error {
	res, err := cli.ImageBuild(ctx, buildCtx, client.ImageBuildOptions{
		Tags:        []string{testImage},
		Remove:      true,
		ForceRemove: true,
	})
	if err != nil {
		return fmt.Errorf("build %s: %w", testImage, err)
	}
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("build %s: read output: %w", testImage, err)
		}
		if m.Error != nil {
			return fmt.Errorf("build %s: %s", testImage, m.Error.Message)
		}
	}
}

// newTestDocker returns an executor with a peer ID of its own, whose
// containers must all be gone when t ends.
func newTestDocker(t *testing.T) *Docker {
	t.Helper()
	requireDocker(t)
	d := newDockerFor(t, testPeerID(t))
	t.Cleanup(func() { checkNoContainers(t, d) })
	return d
}

// newDockerFor returns an executor for peerID that logs to t.
func newDockerFor(t *testing.T, peerID string) *Docker {
	t.Helper()
	d, err := New(Config{PeerID: peerID, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// testLogger returns a logger that writes to t's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(),
		&slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testPeerID returns a peer ID unique to this run of t.
func testPeerID(t *testing.T) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return "test-" + name + "-" + hex.EncodeToString(b[:])
}

// peerContainers lists the IDs of all containers labelled with d's peer.
func peerContainers(t *testing.T, d *Docker) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := d.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: client.Filters{}.Add("label", LabelPeer+"="+d.peerID),
	})
	if err != nil {
		t.Fatalf("list containers of %s: %v", d.peerID, err)
	}
	var ids []string
	for _, c := range list.Items {
		ids = append(ids, c.ID)
	}
	return ids
}

// checkNoContainers fails t if a container of d's peer is left, and
// removes it.
func checkNoContainers(t *testing.T, d *Docker) {
	t.Helper()
	ids := peerContainers(t, d)
	if len(ids) == 0 {
		return
	}
	t.Errorf("containers left behind for %s: %v", d.peerID, ids)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range ids {
		_, _ = d.cli.ContainerRemove(ctx, id,
			client.ContainerRemoveOptions{Force: true})
	}
}

// containerRunning reports whether the container id exists and runs.
func containerRunning(t *testing.T, d *Docker, id string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := d.cli.ContainerInspect(ctx, id,
		client.ContainerInspectOptions{})
	if err != nil {
		return false
	}
	return res.Container.State != nil && res.Container.State.Running
}

// waitFor polls cond until it holds, failing t after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string,
	cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent
// readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// handleRecorder keeps the handle a task reports through Started.
type handleRecorder struct {
	mu     sync.Mutex
	handle string
}

func (h *handleRecorder) started(handle string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.handle = handle
}

func (h *handleRecorder) get() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.handle
}

// runResult is what a Run in a goroutine returned.
type runResult struct {
	res executor.Result
	err error
}

// runAsync runs task on d in a goroutine and delivers what Run returned.
func runAsync(ctx context.Context, d *Docker,
	task executor.Task) <-chan runResult {
	out := make(chan runResult, 1)
	go func() {
		res, err := d.Run(ctx, task)
		out <- runResult{res, err}
	}()
	return out
}

// awaitRun waits for a Run started by runAsync, failing t after timeout.
func awaitRun(t *testing.T, ch <-chan runResult,
	timeout time.Duration) runResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(timeout):
		t.Fatalf("Run did not return within %v", timeout)
		return runResult{}
	}
}

// shTask returns a task that runs script with the test image's sh.
func shTask(job, script string) executor.Task {
	return executor.Task{
		JobID:   job,
		Attempt: 1,
		Image:   testImage,
		Command: []string{"sh", "-c", script},
	}
}
