package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/blixard/blixard/executor"
)

const (
	// maxHandle is the longest handle Reap accepts; container IDs are 64
	// hex digits.
	maxHandle = 128
	// sweepParallel is how many containers Sweep stops at once.
	sweepParallel = 4
)

// Reap stops the container that Task.Started reported as handle, with
// executor.DefaultGrace between its stop signal and SIGKILL, and removes
// it. It blocks until the container is gone or ctx ends, and is safe for
// concurrent use. A container already gone, or one that does not carry
// this peer's labels, is left alone and is not an error.
func (d *Docker) Reap(ctx context.Context, handle string) error {
	if d.closed.Load() {
		return ErrClosed
	}
	if err := validHandle(handle); err != nil {
		return err
	}
	res, err := d.cli.ContainerInspect(ctx, handle,
		client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reap: inspect container %s: %w",
			shortID(handle), unavailable(err))
	}

	var labels map[string]string
	if cfg := res.Container.Config; cfg != nil {
		labels = cfg.Labels
	}
	if !d.owns(labels) {
		d.log.Debug("reap: container is not this peer's",
			"container", shortID(handle))
		return nil
	}
	return d.stopAndRemove(ctx, handle)
}

// Sweep stops and removes every container labelled with this peer's ID
// for which keep returns false; a nil keep keeps none. keep receives the
// container ID, the handle Task.Started reported. Sweep is meant for a
// peer's start, before it runs tasks: a container that Run is still
// supervising is removed like any other unless keep spares it.
//
// Sweep blocks until every rejected container is gone or ctx ends. It
// returns how many it removed and the errors of the others, joined.
func (d *Docker) Sweep(ctx context.Context, keep func(handle string) bool) (
	removed int, err error) {
	if d.closed.Load() {
		return 0, ErrClosed
	}
	filters := client.Filters{}.Add("label",
		LabelManaged+"=1", LabelPeer+"="+d.peerID)
	list, err := d.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: filters,
	})
	if err != nil {
		return 0, fmt.Errorf("sweep: list containers: %w", unavailable(err))
	}

	var doomed []string
	for _, c := range list.Items {
		// The daemon filtered already; checking again costs nothing and
		// keeps a confused daemon from costing another peer a container.
		if c.ID == "" || !d.owns(c.Labels) || (keep != nil && keep(c.ID)) {
			continue
		}
		doomed = append(doomed, c.ID)
	}
	return d.removeAll(ctx, doomed)
}

// removeAll stops and removes ids, a few at a time.
func (d *Docker) removeAll(ctx context.Context, ids []string) (int, error) {
	var (
		mu      sync.Mutex
		removed int
		errs    []error
		wg      sync.WaitGroup
		slots   = make(chan struct{}, sweepParallel)
	)
	for _, id := range ids {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			err := d.stopAndRemove(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			removed++
			d.log.Info("swept container", "container", shortID(id))
		}()
	}
	wg.Wait()
	return removed, errors.Join(errs...)
}

// stopAndRemove stops the container politely, then removes it by force.
// A container that is already gone is not an error.
func (d *Docker) stopAndRemove(ctx context.Context, id string) error {
	secs := int(executor.DefaultGrace.Seconds())
	_, err := d.cli.ContainerStop(ctx, id,
		client.ContainerStopOptions{Timeout: &secs})
	if err != nil && !cerrdefs.IsNotFound(err) {
		d.log.Debug("stop container", "container", shortID(id), "err", err)
	}
	return d.removeContainer(ctx, id)
}

// owns reports whether labels mark a container as created by this peer.
func (d *Docker) owns(labels map[string]string) bool {
	return labels[LabelManaged] == "1" && labels[LabelPeer] == d.peerID
}

// validHandle checks that handle can name a container.
func validHandle(handle string) error {
	switch {
	case handle == "":
		return errors.New("reap: handle is empty")
	case len(handle) > maxHandle:
		return fmt.Errorf("reap: handle is %d bytes, limit %d",
			len(handle), maxHandle)
	case strings.IndexFunc(handle, notNameChar) >= 0:
		return fmt.Errorf("reap: handle %q holds a character outside "+
			"[A-Za-z0-9_.-]", handle)
	}
	return nil
}
