package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/blixard/blixard/executor"
)

// drainTimeout bounds how long Run waits, after the container exited, for
// the daemon to finish sending its output.
const drainTimeout = 5 * time.Second

// ErrImageMissing is wrapped by the error Run returns when the task's
// image is not present locally and could not be pulled.
var ErrImageMissing = errors.New("image not present locally")

// Run runs t in a new container and blocks until the container has
// exited, its output has been copied to t.Stdout and t.Stderr, and it has
// been removed. It is safe for concurrent use.
//
// t.Command replaces the image's command when not empty; the image's
// entrypoint is kept. The timeout counts from the container's start.
// When it passes, or ctx is cancelled, the container gets its stop
// signal (SIGTERM unless the image sets another) and SIGKILL after
// t.Grace, rounded up to whole seconds. The main process of a container
// is PID 1, which ignores SIGTERM unless it handles it, so such a task
// ends only after the grace period.
//
// A non-nil error means the container could not be created or started,
// or the daemon could not say how it ended; the Result then carries
// ExitNotRun. If t.Stdin blocks, the goroutine
// copying it ends only when its Read returns.
func (d *Docker) Run(ctx context.Context, t executor.Task) (
	executor.Result, error) {
	if d.closed.Load() {
		return notRun(ErrClosed)
	}
	if err := validateTask(t); err != nil {
		return notRun(err)
	}
	if err := d.ensureImage(ctx, t.Image); err != nil {
		return d.setupFailed(ctx, err)
	}

	id, err := d.create(ctx, t)
	if err != nil {
		return d.setupFailed(ctx, err)
	}
	log := d.log.With("job_id", t.JobID, "attempt", t.Attempt,
		"container", shortID(id))
	defer d.remove(log, id)
	if t.Started != nil {
		t.Started(id)
	}

	a, err := d.begin(ctx, log, id, t)
	if err != nil {
		return d.setupFailed(ctx, err)
	}
	defer a.close()
	log.Debug("container started", "image", t.Image)
	return a.supervise(ctx)
}

// validateTask checks the fields of t that the Engine API would refuse
// with a less helpful message.
func validateTask(t executor.Task) error {
	if t.Image == "" {
		return errors.New("task image is empty")
	}
	if _, err := reference.ParseNormalizedNamed(t.Image); err != nil {
		return fmt.Errorf("task image %q: %w", t.Image, err)
	}
	if t.Workdir != "" && !path.IsAbs(t.Workdir) {
		return fmt.Errorf("task workdir %q is not an absolute path", t.Workdir)
	}
	for k := range t.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("task env key %q is empty or holds '=' or NUL", k)
		}
	}
	if t.Resources.CPU < 0 || math.IsNaN(t.Resources.CPU) ||
		math.IsInf(t.Resources.CPU, 0) {
		return fmt.Errorf("task cpu %v is not a finite number >= 0",
			t.Resources.CPU)
	}
	if t.Resources.Memory < 0 {
		return fmt.Errorf("task memory %d is negative", t.Resources.Memory)
	}
	for _, m := range t.Mounts {
		if !path.IsAbs(m.Source) || !path.IsAbs(m.Target) {
			return fmt.Errorf("task mount %q -> %q: paths must be absolute",
				m.Source, m.Target)
		}
	}
	return nil
}

// imageMissingError reports an image that is not present locally and
// could not be pulled; pullErr is nil when pulling is disabled.
type imageMissingError struct {
	ref     string
	pullErr error
}

func (e *imageMissingError) Error() string {
	msg := fmt.Sprintf("image %q is not present locally "+
		"and no registry is reachable", e.ref)
	if e.pullErr != nil {
		msg += ": pull: " + e.pullErr.Error()
	}
	return msg
}

func (e *imageMissingError) Is(target error) bool {
	return target == ErrImageMissing
}

func (e *imageMissingError) Unwrap() error { return e.pullErr }

// ensureImage makes sure ref is present locally, pulling it when the
// executor may.
func (d *Docker) ensureImage(ctx context.Context, ref string) error {
	_, err := d.cli.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return nil
	case !cerrdefs.IsNotFound(err):
		return fmt.Errorf("inspect image %q: %w", ref, unavailable(err))
	case !d.pull:
		return &imageMissingError{ref: ref}
	}

	d.log.Info("pulling image", "image", ref)
	resp, err := d.cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err == nil {
		err = resp.Wait(ctx)
		resp.Close()
	}
	if err != nil {
		return &imageMissingError{ref: ref, pullErr: err}
	}
	return nil
}

// create creates the container for t and returns its ID.
func (d *Docker) create(ctx context.Context, t executor.Task) (
	string, error) {
	res, err := d.cli.ContainerCreate(ctx, d.createOptions(t))
	if err != nil {
		return "", fmt.Errorf("create container: %w", unavailable(err))
	}
	if res.ID == "" {
		return "", errors.New("create container: daemon returned no id")
	}
	return res.ID, nil
}

// createOptions translates t into the Engine API's container spec.
func (d *Docker) createOptions(t executor.Task) client.ContainerCreateOptions {
	cfg := &container.Config{
		Image:        t.Image,
		Cmd:          t.Command,
		Env:          envList(t.Env),
		WorkingDir:   t.Workdir,
		AttachStdout: true,
		AttachStderr: true,
		Labels: map[string]string{
			LabelManaged: "1",
			LabelPeer:    d.peerID,
			LabelJob:     t.JobID,
			LabelAttempt: strconv.Itoa(t.Attempt),
		},
	}
	if t.Stdin != nil {
		cfg.AttachStdin, cfg.OpenStdin, cfg.StdinOnce = true, true, true
	}

	host := &container.HostConfig{}
	host.NanoCPUs = int64(math.Round(t.Resources.CPU * 1e9))
	if mem := t.Resources.Memory; mem > 0 {
		// Memory and swap together: the task gets no swap beyond its limit.
		host.Memory, host.MemorySwap = mem, mem
	}
	for _, m := range t.Mounts {
		host.Mounts = append(host.Mounts, mount.Mount{
			Type:     mount.TypeBind,
			Source:   m.Source,
			Target:   m.Target,
			ReadOnly: m.ReadOnly,
		})
	}
	return client.ContainerCreateOptions{
		Config:     cfg,
		HostConfig: host,
		Name:       containerName(t),
	}
}

// envList renders env as sorted KEY=VALUE pairs.
func envList(env map[string]string) []string {
	keys := slices.Sorted(maps.Keys(env))
	list := make([]string, 0, len(keys))
	for _, k := range keys {
		list = append(list, k+"="+env[k])
	}
	return list
}

// containerName returns blixard-<job>-a<attempt>-<random>, with the job
// ID cut to the characters and length Docker accepts in a name.
func containerName(t executor.Task) string {
	job := strings.Map(func(r rune) rune {
		if notNameChar(r) {
			return '-'
		}
		return r
	}, t.JobID)
	if len(job) > 40 {
		job = job[:40]
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	return fmt.Sprintf("blixard-%s-a%d-%s", job, t.Attempt,
		hex.EncodeToString(suffix[:]))
}

// notNameChar reports whether r may not appear in a container name.
func notNameChar(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9',
		r == '_', r == '.', r == '-':
		return false
	}
	return true
}

// remove force-removes the container, whatever its state, on a context
// of its own so that a cancelled task still cleans up.
func (d *Docker) remove(log *slog.Logger, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := d.removeContainer(ctx, id); err != nil {
		log.Warn("remove container", "err", err)
		return
	}
	log.Debug("container removed")
}

// removeContainer force-removes the container and returns once it is
// gone. A container already gone is not an error; one that another
// caller is removing is waited for.
func (d *Docker) removeContainer(ctx context.Context, id string) error {
	_, err := d.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{
		Force:         true,
		RemoveVolumes: true,
	})
	switch {
	case err == nil, cerrdefs.IsNotFound(err):
		return nil
	case !cerrdefs.IsConflict(err):
		return fmt.Errorf("remove container %s: %w", shortID(id), err)
	}

	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := d.cli.ContainerInspect(ctx, id,
			client.ContainerInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for removal of container %s: %w",
				shortID(id), ctx.Err())
		case <-tick.C:
		}
	}
}

// setupFailed turns an error before the container ran into a Result. An
// error caused by ctx ending is reported as a cancellation.
func (d *Docker) setupFailed(ctx context.Context, err error) (
	executor.Result, error) {
	res, err := notRun(err)
	if ctx.Err() != nil {
		res.Cancelled = true
		res.Reason = "cancelled before the container started"
		err = fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	return res, err
}

// notRun returns the Result and error for a task that did not run.
func notRun(err error) (executor.Result, error) {
	return executor.Result{
		ExitCode: executor.ExitNotRun,
		Reason:   oneLine(err.Error()),
	}, err
}

// unavailable marks an error as executor.ErrUnavailable when it says the
// daemon could not be reached.
func unavailable(err error) error {
	if client.IsErrConnectionFailed(err) {
		return fmt.Errorf("%w: %w", executor.ErrUnavailable, err)
	}
	return err
}

// oneLine joins the lines of a daemon or client message, so that it fits
// a one-line reason.
func oneLine(s string) string {
	lines := strings.FieldsFunc(s, func(r rune) bool {
		return r == '\n' || r == '\r'
	})
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, " ")
}

// shortID returns the 12-character form of a container ID used in logs.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// formatBytes writes n in the largest binary unit that divides it.
func formatBytes(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%dB", n)
}
