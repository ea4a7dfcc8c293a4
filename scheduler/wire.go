package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Transport is what a peer needs from the network: the mesh's members,
// acknowledged request/response calls, and best-effort gossip. p2p.Node
// provides it over libp2p; tests use an in-memory mesh.
type Transport interface {
	// ID is this peer's ID.
	ID() string
	// Members lists the other peers that proved the mesh secret and are
	// connected now.
	Members() []string
	// IsMember reports whether p is in Members.
	IsMember(p string) bool
	// Notify registers f to hear of members joining and leaving.
	Notify(f func(p string, up bool))
	// Handle serves requests named name.
	Handle(name string, h func(ctx context.Context, from string, req []byte) ([]byte, error))
	// Request sends req to peer to and blocks for its answer.
	Request(ctx context.Context, to, name string, req []byte) ([]byte, error)
	// Publish gossips data on topic; delivery is not guaranteed.
	Publish(ctx context.Context, topic string, data []byte) error
	// Subscribe delivers gossip on topic from other peers to h.
	Subscribe(topic string, h func(from string, data []byte)) error
}

// Request names and gossip topics of the scheduler's protocol.
const (
	rpcSteal     = "steal"     // runner asks an owner for work
	rpcHeartbeat = "heartbeat" // runner renews its leases
	rpcOutput    = "output"    // runner ships a chunk of output
	rpcResult    = "result"    // runner reports an attempt's end
	rpcStop      = "stop"      // owner tells a runner to stop an attempt
	rpcReplicate = "replicate" // owner sends a job record to a replica
	rpcJob       = "job"       // any peer asks for a job record
	rpcLogs      = "logs"      // any peer asks for a job's output
	rpcInfo      = "info"      // any peer asks for an announcement
	rpcSince     = "since"     // anti-entropy: summaries changed since
	rpcModule    = "module"    // runner fetches a WASM module by hash
	rpcCancel    = "cancel"    // any peer forwards a cancel to the owner

	rpcReplicaOutput = "replica-output" // owner copies finished output to a replica

	topicAnnounce = "announce"
	topicEvents   = "events"
)

// Limits on what a remote peer may send, besides the transport's frame
// limit.
const (
	maxBatch      = 64
	maxChunkBytes = 256 << 10
	maxLabels     = 256
	maxReason     = 1024
)

// Announce is what a peer gossips about itself.
type Announce struct {
	Peer      string            `json:"peer"`
	Addrs     []string          `json:"addrs,omitempty"`
	Executors []ExecutorInfo    `json:"executors"`
	Labels    map[string]string `json:"labels"`
	Slots     int               `json:"slots"`
	Running   int               `json:"running"`
	// Pending counts the jobs this peer owns that wait for a runner.
	Pending  int     `json:"pending"`
	CPU      float64 `json:"cpu"`
	FreeCPU  float64 `json:"free_cpu"`
	Memory   int64   `json:"memory"`
	FreeMem  int64   `json:"free_memory"`
	Draining bool    `json:"draining,omitempty"`
	Seq      uint64  `json:"seq"`
}

// ExecutorInfo names an executor a peer offers and its version.
type ExecutorInfo struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// free returns how many more tasks a can take.
func (a *Announce) free() int {
	if a.Draining {
		return 0
	}
	return max(a.Slots-a.Running, 0)
}

// Event is a change in a job's life, gossiped to every peer.
type Event struct {
	Job      string   `json:"job"`
	Name     string   `json:"name,omitempty"`
	Owner    string   `json:"owner"`
	Kind     string   `json:"kind"` // submitted, started, finished, retrying, lost, cancelled
	Attempt  int      `json:"attempt,omitempty"`
	Peer     string   `json:"peer,omitempty"`
	State    State    `json:"state"`
	ExitCode *int     `json:"exit_code,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Executor string   `json:"executor,omitempty"`
	Require  []string `json:"require,omitempty"`
	Epoch    uint64   `json:"epoch"`
	Version  uint64   `json:"version"`
	// Time is the owner's wall clock, for display only.
	Time time.Time `json:"time"`
}

type stealReq struct {
	Free      int               `json:"free"`
	Executors []string          `json:"executors"`
	Labels    map[string]string `json:"labels"`
	FreeCPU   float64           `json:"free_cpu"`
	FreeMem   int64             `json:"free_memory"`
}

// grant hands one attempt of a job to a runner under a lease.
type grant struct {
	Job     *Job          `json:"job"`
	Attempt int           `json:"attempt"`
	Epoch   uint64        `json:"epoch"`
	Lease   time.Duration `json:"lease"`
}

type stealResp struct {
	Grants []grant `json:"grants"`
}

// attemptRef names one attempt of one job under one epoch.
type attemptRef struct {
	Job     string `json:"job"`
	Attempt int    `json:"attempt"`
	Epoch   uint64 `json:"epoch"`
}

type heartbeatReq struct {
	Attempts []attemptRef `json:"attempts"`
}

// Verdicts an owner gives on a heartbeat.
const (
	verdictOK     = "ok"     // lease renewed
	verdictCancel = "cancel" // stop the attempt: the job was cancelled
	verdictStale  = "stale"  // stop the attempt: it is not current
)

type heartbeatResp struct {
	Verdicts []string `json:"verdicts"`
}

type outputReq struct {
	attemptRef
	Stream byte   `json:"stream"` // 1 stdout, 2 stderr
	Offset int64  `json:"offset"`
	Data   []byte `json:"data"`
}

type outputResp struct {
	// Length is how many bytes of the stream the owner now holds; the
	// runner resends from there.
	Length int64  `json:"length"`
	Stale  bool   `json:"stale,omitempty"`
	Error  string `json:"error,omitempty"`
}

type resultReq struct {
	attemptRef
	ExitCode  int    `json:"exit_code"`
	Reason    string `json:"reason,omitempty"`
	Cancelled bool   `json:"cancelled,omitempty"`
	// Lost reports that the runner ended the attempt without a verdict of
	// the workload's own (it shut down, or restarted); the owner re-runs it.
	Lost bool `json:"lost,omitempty"`
}

type resultResp struct {
	// Applied is false when the result was counted as a duplicate.
	Applied bool `json:"applied"`
	Stale   bool `json:"stale,omitempty"`
}

type jobReq struct {
	ID string `json:"id"`
}

type logsReq struct {
	ID      string `json:"id"`
	Attempt int    `json:"attempt"`
	Stream  byte   `json:"stream"`
	Offset  int64  `json:"offset"`
	Max     int    `json:"max"`
}

type logsResp struct {
	Data []byte `json:"data"`
	// Next is the offset after Data; Length the stream's length now.
	Next int64 `json:"next"`
	// Done is true when the attempt has ended and Data reaches its end.
	Done bool `json:"done"`
}

type sinceReq struct {
	Seq uint64 `json:"seq"`
	Max int    `json:"max"`
}

type sinceResp struct {
	Events []Event `json:"events"`
	Seq    uint64  `json:"seq"`
	More   bool    `json:"more"`
}

type moduleReq struct {
	Hash string `json:"hash"`
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Every message type marshals; a failure is a programming error.
		panic(fmt.Sprintf("scheduler: encode %T: %v", v, err))
	}
	return b
}

func decode(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %T: %w", v, err)
	}
	return nil
}

// checkRef validates an attempt reference a remote peer sent.
func checkRef(r attemptRef) error {
	if !validJobID(r.Job) {
		return fmt.Errorf("bad job id %q", truncate(r.Job, 40))
	}
	if r.Attempt < 1 {
		return fmt.Errorf("bad attempt %d", r.Attempt)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
