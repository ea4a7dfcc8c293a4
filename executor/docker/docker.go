// Package docker runs a job's task as a container through the Docker
// Engine API, and finds and removes the containers a peer left behind.
package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/moby/moby/client"

	"github.com/blixard/blixard/executor"
)

// Name is the name jobs select this executor by.
const Name = "docker"

// Labels put on every container this package creates. Sweep and Reap
// touch only containers that carry LabelManaged and this peer's
// LabelPeer.
const (
	LabelManaged = "blixard"         // always "1"
	LabelPeer    = "blixard.peer"    // Config.PeerID
	LabelJob     = "blixard.job"     // Task.JobID
	LabelAttempt = "blixard.attempt" // Task.Attempt in decimal
)

const (
	// probeTimeout bounds one Probe when ctx has no earlier deadline.
	probeTimeout = 3 * time.Second
	// cleanupTimeout bounds the removal of a container after Run, and
	// the inspection that follows its exit.
	cleanupTimeout = 30 * time.Second
	// maxPeerID is the longest PeerID accepted, in bytes.
	maxPeerID = 256
	// maxLabelValue is the longest value taken from the daemon into a
	// capability label; longer values are cut.
	maxLabelValue = 128
)

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("docker executor closed")

// Config configures a Docker executor.
type Config struct {
	// Host is the daemon address, such as unix:///var/run/docker.sock or
	// tcp://127.0.0.1:2375. Empty means DOCKER_HOST (with DOCKER_TLS_VERIFY
	// and DOCKER_CERT_PATH) from the environment, or the default socket.
	Host string

	// PeerID labels every container as blixard.peer=<PeerID>, so that a
	// peer restarted with the same identity finds what it left running.
	// It is required, at most 256 bytes, without control characters.
	PeerID string

	// Pull lets Run pull an image that is not present locally. The default
	// false never contacts a registry: a missing image fails the task at
	// once, which is right on machines that cannot reach one.
	Pull bool

	// Logger receives lifecycle and cleanup messages. Nil discards them.
	Logger *slog.Logger
}

// Validate reports the first field of c that New would refuse, naming it
// and its limit.
func (c Config) Validate() error {
	switch {
	case c.PeerID == "":
		return errors.New("docker: PeerID is empty")
	case len(c.PeerID) > maxPeerID:
		return fmt.Errorf("docker: PeerID is %d bytes, limit %d",
			len(c.PeerID), maxPeerID)
	case strings.IndexFunc(c.PeerID, unicode.IsControl) >= 0:
		return errors.New("docker: PeerID contains a control character")
	}
	return nil
}

// Docker is an executor that runs each task in a fresh container and
// removes the container when the task ends. It implements
// [executor.Executor] and [executor.Reaper], and is safe for concurrent
// use.
type Docker struct {
	cli    *client.Client
	peerID string
	pull   bool
	log    *slog.Logger
	closed atomic.Bool
}

var (
	_ executor.Executor = (*Docker)(nil)
	_ executor.Reaper   = (*Docker)(nil)
)

// New returns a Docker executor for cfg. It does not contact the daemon;
// Probe does.
func New(cfg Config) (*Docker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := []client.Opt{
		client.FromEnv,
		client.WithUserAgent("blixard"),
	}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: Host %q: %w", cfg.Host, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Docker{
		cli:    cli,
		peerID: cfg.PeerID,
		pull:   cfg.Pull,
		log:    log.With("component", "executor.docker"),
	}, nil
}

// Name returns "docker".
func (d *Docker) Name() string { return Name }

// Probe pings the daemon and reports its engine version as the daemon
// gives it (such as 20.10.24, or 20.10.24+dfsg1 from a distribution),
// with the labels docker.os, docker.arch and docker.api (the API version
// the client negotiated).
// It blocks for at most a few seconds and returns an error wrapping
// [executor.ErrUnavailable] when the daemon does not answer or speaks an
// API older than the client supports.
func (d *Docker) Probe(ctx context.Context) (executor.Info, error) {
	if d.closed.Load() {
		return executor.Info{}, ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()

	ping, err := d.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		return executor.Info{}, fmt.Errorf("%w: ping docker daemon at %s: %w",
			executor.ErrUnavailable, d.cli.DaemonHost(), err)
	}
	v, err := d.cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return executor.Info{}, fmt.Errorf("%w: docker daemon version: %w",
			executor.ErrUnavailable, err)
	}

	labels := make(map[string]string, 3)
	addLabel(labels, "docker.os", v.Os)
	addLabel(labels, "docker.arch", v.Arch)
	addLabel(labels, "docker.api", ping.APIVersion)
	return executor.Info{Version: cleanLabel(v.Version), Labels: labels}, nil
}

// Close releases the client's idle connections. It does not stop tasks
// in flight; cancel their contexts first. Every later call returns
// ErrClosed. Close is idempotent and returns nil.
func (d *Docker) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	return d.cli.Close()
}

// addLabel sets labels[key] to the cleaned value, unless that is empty.
func addLabel(labels map[string]string, key, value string) {
	if v := cleanLabel(value); v != "" {
		labels[key] = v
	}
}

// cleanLabel makes a value reported by the daemon fit a capability label:
// printable, without spaces, commas or parentheses, and short.
func cleanLabel(s string) string {
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) ||
			strings.ContainsRune(",()=", r) {
			return -1
		}
		return r
	}, s)
	if len(s) > maxLabelValue {
		s = strings.ToValidUTF8(s[:maxLabelValue], "")
	}
	return s
}
