// Package scheduler is a Blixard peer: the job model and lifecycle,
// ownership, leases, work stealing, capability matching, events, and the
// API a program or the CLI uses to submit and watch jobs.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/blixard/blixard/executor"
	"github.com/blixard/blixard/scheduler/constraint"
	"github.com/blixard/blixard/store"
)

// Defaults of Config.
const (
	DefaultLease    = 10 * time.Second
	DefaultReplicas = 2
	// DefaultAnnounceInterval is how often a peer gossips its capabilities
	// and load when nothing changes.
	DefaultAnnounceInterval = time.Second
)

// Errors returned by a Peer.
var (
	// ErrNotFound is returned for a job no reachable peer knows.
	ErrNotFound = errors.New("job not found")
	// ErrClosed is returned by calls on a closed Peer.
	ErrClosed = errors.New("peer closed")
)

// Config configures a Peer. The zero value of each field means its
// default.
type Config struct {
	// DataDir holds the peer's identity, the mesh secret, its store and the
	// working directories of its tasks. Required; created 0700.
	DataDir string
	// Listen are libp2p multiaddrs to listen on. Default: QUIC on a random
	// UDP port on every IPv4 and IPv6 address.
	Listen []string
	// Join is a join token (see Peer.Token). Without it a peer that has no
	// mesh secret yet creates a new mesh.
	Join string
	// Bootstrap are multiaddrs (with /p2p/ID) of peers to connect to,
	// besides those in the token.
	Bootstrap []string
	// MDNS turns on discovery of peers on the local network.
	MDNS bool
	// Executors the peer offers. Nil means exec and noop.
	Executors []executor.Executor
	// Labels are the operator's labels; os, arch, cpus, memory and one
	// label per executor are added.
	Labels map[string]string
	// Slots is how many tasks run at once. Default: the number of CPUs.
	Slots int
	// Lease is how long a runner holds a job without renewing. A shorter
	// lease notices a dead runner sooner and costs more heartbeats.
	// Default 10 s; at least 500 ms.
	Lease time.Duration
	// Heartbeat is how often a runner renews its leases. Default Lease/4.
	Heartbeat time.Duration
	// Replicas is how many other peers keep a copy of each job record.
	// Default 2. Negative means none.
	Replicas int
	// OwnerTimeout is how long a job's owner may be unreachable before a
	// replica takes the job over. Shorter recovers sooner; longer makes it
	// less likely that both sides of a brief split run the job. Default
	// 3 × Lease; at least the lease.
	OwnerTimeout time.Duration
	// AnnounceInterval is how often the peer gossips its load when nothing
	// changes. Default 1 s.
	AnnounceInterval time.Duration
	// Store sizes the store; nil means store.DefaultConfig, sized for a
	// small peer.
	Store *store.Config
	// Transport replaces the libp2p network, for tests.
	Transport Transport
	// Logger receives the peer's logs; nil discards them.
	Logger *slog.Logger
}

// Validate checks c and names the first field out of bounds.
func (c *Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("data dir: required")
	case c.Slots < 0 || c.Slots > 4096:
		return fmt.Errorf("slots: %d, want 1 to 4096", c.Slots)
	case c.Lease != 0 && (c.Lease < 500*time.Millisecond || c.Lease > time.Hour):
		return fmt.Errorf("lease: %s, want 500ms to 1h", c.Lease)
	case c.Heartbeat < 0 || (c.Heartbeat > 0 && c.Lease > 0 && c.Heartbeat >= c.Lease):
		return fmt.Errorf("heartbeat: %s, want less than the lease", c.Heartbeat)
	case c.OwnerTimeout != 0 && c.OwnerTimeout < max(c.Lease, 500*time.Millisecond):
		return fmt.Errorf("owner timeout: %s, want at least the lease", c.OwnerTimeout)
	case c.Replicas > 16:
		return fmt.Errorf("replicas: %d, limit 16", c.Replicas)
	}
	for k, v := range c.Labels {
		if err := constraint.ValidLabel(k, v); err != nil {
			return fmt.Errorf("label %s=%s: %w", k, v, err)
		}
	}
	return nil
}

func (c *Config) fill() {
	if c.Slots == 0 {
		c.Slots = runtime.NumCPU()
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = c.Lease / 4
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.OwnerTimeout == 0 {
		c.OwnerTimeout = 3 * c.Lease
	}
	if c.Replicas < 0 {
		c.Replicas = 0
	}
	if c.AnnounceInterval == 0 {
		c.AnnounceInterval = DefaultAnnounceInterval
	}
	if c.Executors == nil {
		c.Executors = []executor.Executor{
			executor.NewExec(executor.ExecConfig{Logger: c.Logger}),
			executor.NewNoop(),
		}
	}
}

// Peer is one member of a mesh: it owns the jobs submitted to it, runs
// jobs it or other peers own, and answers for both. Its methods are safe
// for concurrent use.
type Peer struct {
	cfg   Config
	log   *slog.Logger
	id    string
	tr    Transport
	net   io.Closer // the libp2p node, when the peer made one
	db    *store.Store
	token string
	addrs []string

	host executor.HostInfo
	feed changeFeed

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	kick      chan struct{} // wakes the placement loop
	stealKick chan struct{} // wakes the steal loop
	annKick   chan struct{} // asks for an announcement soon
	replKick  chan struct{} // wakes the replication loop
	handlers  map[string]func(context.Context, string, []byte) ([]byte, error)
	pub       chan Event   // events waiting to be gossiped
	heard     chan []Event // events heard, waiting to be stored

	mu         sync.Mutex
	closed     bool                         // guarded by mu
	owned      map[string]*owned            // guarded by mu; jobs owned here
	queue      []string                     // guarded by mu; owned job IDs in submission order
	tasks      map[attemptRef]*task         // guarded by mu; attempts running here
	reserved   int                          // guarded by mu; slots held for steals in flight
	peers      map[string]*peerState        // guarded by mu; other members
	changed    chan struct{}                // guarded by mu; closed on any job change
	labels     map[string]string            // guarded by mu; advertised labels
	executors  []ExecutorInfo               // guarded by mu; executors that probed fine
	execs      map[string]executor.Executor // guarded by mu; the same, by name
	annSeq     uint64                       // guarded by mu
	cursors    map[string]uint64            // guarded by mu; anti-entropy position per owner
	draining   bool                         // guarded by mu
	victims    map[string]victimBackoff     // guarded by mu; steal backoff per owner
	modules    map[string]*sync.Mutex       // guarded by mu; module fetches in flight
	stats      Stats                        // guarded by mu
	lastAnn    time.Time                    // guarded by mu
	outLen     map[outKey]int64             // guarded by mu; stored output length per stream
	repl       map[string][]chan struct{}   // guarded by mu; jobs to send to replicas, and who waits
	held       map[string]*heldJob          // guarded by mu; unfinished jobs held for other owners
	known      map[string]time.Time         // guarded by mu; when each peer was last heard
	savedAddrs map[string][]string          // guarded by mu; addresses stored per peer
}

// Stats counts what a peer dropped or refused.
type Stats struct {
	BadMessages uint64 `json:"bad_messages"`
	Stale       uint64 `json:"stale"`
	Duplicates  uint64 `json:"duplicates"`
	Steals      uint64 `json:"steals"`
	Granted     uint64 `json:"granted"`
}

type outKey struct {
	job     string
	attempt int
	stream  byte
}

// owned is the owner's live view of a job it owns.
type owned struct {
	job *Job
	// committed is the latest version of job on disk (and, once finished,
	// at the replicas): what readers are shown.
	committed *Job
	// leaseUntil is when the current attempt's lease ends, on this peer's
	// monotonic clock.
	leaseUntil time.Time
	// started is when the current attempt was granted, on this peer's
	// monotonic clock; zero after a restart.
	started time.Time
	// notBefore delays a retry (backoff).
	notBefore time.Time
}

// peerState is what this peer knows of another member.
type peerState struct {
	ann   Announce
	heard time.Time
}

// New starts a peer: it opens the store, joins or creates the mesh,
// recovers the jobs and tasks it had before a restart, and begins to take
// work. It returns once the peer is listening. Close stops it.
func New(ctx context.Context, cfg Config) (*Peer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.fill()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Peer{
		cfg:        cfg,
		log:        log.With("component", "scheduler"),
		kick:       make(chan struct{}, 1),
		stealKick:  make(chan struct{}, 1),
		annKick:    make(chan struct{}, 1),
		replKick:   make(chan struct{}, 1),
		pub:        make(chan Event, 4096),
		heard:      make(chan []Event, 1024),
		owned:      make(map[string]*owned),
		tasks:      make(map[attemptRef]*task),
		peers:      make(map[string]*peerState),
		changed:    make(chan struct{}),
		cursors:    make(map[string]uint64),
		victims:    make(map[string]victimBackoff),
		modules:    make(map[string]*sync.Mutex),
		outLen:     make(map[outKey]int64),
		repl:       make(map[string][]chan struct{}),
		held:       make(map[string]*heldJob),
		known:      make(map[string]time.Time),
		savedAddrs: make(map[string][]string),
		host:       executor.Host(),
	}
	if err := p.openDataDir(); err != nil {
		return nil, err
	}
	if err := p.openNetwork(ctx); err != nil {
		p.db.Close()
		return nil, err
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if err := p.start(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Peer) openDataDir() error {
	dir := p.cfg.DataDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	probe := filepath.Join(dir, ".write-test")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		return fmt.Errorf("data dir %s: not writable: %w", dir, err)
	}
	os.Remove(probe)
	sc := store.DefaultConfig(filepath.Join(dir, "db"))
	if p.cfg.Store != nil {
		sc = *p.cfg.Store
		if sc.Dir == "" && !sc.InMemory {
			sc.Dir = filepath.Join(dir, "db")
		}
	}
	if sc.Logger == nil {
		sc.Logger = p.cfg.Logger
	}
	db, err := store.Open(sc)
	if err != nil {
		return err
	}
	p.db = db
	return nil
}

// start registers the protocol, recovers state and starts the loops.
func (p *Peer) start(ctx context.Context) error {
	p.id = p.tr.ID()
	seq, err := p.loadSeq()
	if err != nil {
		return err
	}
	p.feed.last = seq
	p.probeExecutors(ctx)
	p.registerHandlers()
	if err := p.tr.Subscribe(topicAnnounce, p.onAnnounce); err != nil {
		return fmt.Errorf("subscribe %s: %w", topicAnnounce, err)
	}
	if err := p.tr.Subscribe(topicEvents, p.onEvents); err != nil {
		return fmt.Errorf("subscribe %s: %w", topicEvents, err)
	}
	p.tr.Notify(p.onMember)
	for _, m := range p.tr.Members() {
		p.onMember(m, true)
	}
	if err := p.recover(ctx); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	loops := []func(){
		p.placeLoop, p.stealLoop, p.heartbeatLoop, p.announceLoop,
		p.publishLoop, p.recordLoop, p.antiEntropyLoop, p.replicateLoop, p.takeoverLoop,
	}
	for _, loop := range loops {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			loop()
		}()
	}
	p.log.Info("peer started", "peer", p.id, "slots", p.cfg.Slots,
		"executors", p.executorNames())
	return nil
}

// Close stops the peer: running tasks are stopped and reported as lost so
// their owners re-run them, and the store is closed. It is idempotent.
func (p *Peer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	tasks := make([]*task, 0, len(p.tasks))
	for _, t := range p.tasks {
		tasks = append(tasks, t)
	}
	p.mu.Unlock()

	for _, t := range tasks {
		t.stop(stopShutdown)
	}
	for _, t := range tasks {
		<-t.done
	}
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	var errs []error
	if p.net != nil {
		errs = append(errs, p.net.Close())
	}
	for _, e := range p.cfg.Executors {
		switch c := e.(type) {
		case interface{ Close() error }:
			errs = append(errs, c.Close())
		case interface{ Close(context.Context) error }:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			errs = append(errs, c.Close(ctx))
			cancel()
		}
	}
	errs = append(errs, p.db.Close())
	p.log.Info("peer stopped", "peer", p.id)
	return errors.Join(errs...)
}

// Run blocks until ctx ends, then closes the peer.
func (p *Peer) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-p.ctx.Done():
	}
	return p.Close()
}

// ID returns the peer's ID.
func (p *Peer) ID() string { return p.id }

// Token returns the join token of the mesh: its secret and this peer's
// addresses. Anyone holding it can join, so treat it as a password.
func (p *Peer) Token() string { return p.token }

// Addrs returns the addresses other peers can reach this one at.
func (p *Peer) Addrs() []string { return append([]string(nil), p.addrs...) }

func (p *Peer) executorNames() []string {
	names := make([]string, 0, len(p.cfg.Executors))
	for _, e := range p.cfg.Executors {
		names = append(names, e.Name())
	}
	return names
}

// probeExecutors asks each executor whether it can run now and builds the
// labels the peer advertises.
func (p *Peer) probeExecutors(ctx context.Context) {
	labels := map[string]string{
		"os":     p.host.OS,
		"arch":   p.host.Arch,
		"cpus":   strconv.Itoa(p.host.CPUs),
		"memory": strconv.FormatInt(p.host.Memory, 10),
	}
	execs := make(map[string]executor.Executor)
	var infos []ExecutorInfo
	for _, e := range p.cfg.Executors {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := e.Probe(pctx)
		cancel()
		if err != nil {
			p.mu.Lock()
			_, was := p.execs[e.Name()]
			first := p.execs == nil
			p.mu.Unlock()
			if was || first {
				p.log.Warn("executor unavailable", "executor", e.Name(), "err", err)
			}
			continue
		}
		execs[e.Name()] = e
		infos = append(infos, ExecutorInfo{Name: e.Name(), Version: info.Version})
		v := info.Version
		if v == "" {
			v = "true"
		}
		labels[e.Name()] = v
		for k, val := range info.Labels {
			labels[k] = val
		}
	}
	for k, v := range p.cfg.Labels {
		labels[k] = v
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	p.mu.Lock()
	p.labels = labels
	p.executors = infos
	p.execs = execs
	p.mu.Unlock()
}

// notify wakes everyone waiting for a job change and the work loops.
// Callers hold p.mu.
func (p *Peer) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// wake nudges the placement and steal loops.
func (p *Peer) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// jitter returns a random duration in [0, d).
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d)))
}
