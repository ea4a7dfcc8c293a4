package scheduler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blixard/blixard/executor"
	"github.com/blixard/blixard/scheduler/memnet"
	"github.com/blixard/blixard/store"
)

// canonicalSpec is s as a JSON value, so that specs compare the way they
// travel: an empty map and a missing one are the same, and so are two
// payloads that hold one JSON value.
func canonicalSpec(t *testing.T, s Spec) any {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("encode %+v: %v", s, err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// specSeeds are the specs of the tests in spec_test.go, less the large
// ones and those that show a known bug.
func specSeeds() [][]byte {
	seeds := [][]byte{
		[]byte("command: [echo, hi]"),
		[]byte("executor: docker\nimage: busybox:1.36\ncommand: [sh, -c, 'echo $A']\n" +
			"env: {A: b}\nrequire: [os=linux, 'docker>=24']\ntimeout: 1m\n" +
			"resources: {cpu: 0.5, memory: 64MiB}\nretries: 2\nbackoff: 1s"),
		[]byte("executor: noop\ncommand: [stdout=hi, sleep=10ms, exit=3]"),
		[]byte("executor: wasm\nmodule: " + testModule + "\nstdin: |\n  line\n"),
		[]byte("command: [x]\npayload:\n  a: [1, {b: null}]\n  c: 'd'"),
		[]byte(`{"command": ["x"], "payload": {"k": [1.5, "s", true]}}`),
		[]byte(`{"name": "n", "command": ["x"], "env": {"A_1": ""}, "grace": "2s"}`),
		[]byte("command: [x]\npayload: {a: &x [1], b: *x}"),
	}
	for _, r := range specRefusals() {
		if r.bug == "" && len(r.in) < 4<<10 {
			seeds = append(seeds, r.in)
		}
	}
	return seeds
}

// FuzzParseSpec checks that ParseSpec never panics, that its errors are
// one line, and that a spec it accepts survives the trip the CLI makes:
// encoded as JSON and parsed again, it is the same spec.
func FuzzParseSpec(f *testing.F) {
	for _, s := range specSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := ParseSpec(data)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error is more than one line: %q", err)
			}
			return
		}
		b, err := json.Marshal(spec)
		if err != nil {
			t.Fatalf("accepted spec does not encode: %v", err)
		}
		again, err := ParseSpec(b)
		if err != nil {
			t.Fatalf("accepted spec re-encoded as %s is refused: %v", b, err)
		}
		got, want := canonicalSpec(t, again), canonicalSpec(t, spec)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip changed the spec:\n got %v\nwant %v", got, want)
		}
	})
}

// The peer that FuzzWireMessages feeds: "me" on an in-memory network
// with three other members that serve nothing, owning a pending, a
// running and a finished job, and holding a copy of a fourth.
var (
	fuzzPending = "00000000000000000000000000a1"
	fuzzRunning = "00000000000000000000000000a2"
	fuzzDone    = "00000000000000000000000000a3"
	fuzzHeld    = "00000000000000000000000000a4"
	fuzzFrom    = []string{"runner", "thief", "other"}
	fuzzModule  = []byte("\x00asm\x01\x00\x00\x00")
)

// gossip topics fuzzed next to the request handlers.
const (
	fuzzAnnounce = "gossip " + topicAnnounce
	fuzzEvents   = "gossip " + topicEvents
)

// wireRequests makes the value each request decodes into, for the
// requests and gossip that take a JSON body.
var wireRequests = map[string]func() any{
	rpcSteal:         func() any { return new(stealReq) },
	rpcHeartbeat:     func() any { return new(heartbeatReq) },
	rpcOutput:        func() any { return new(outputReq) },
	rpcResult:        func() any { return new(resultReq) },
	rpcStop:          func() any { return new(attemptRef) },
	rpcReplicate:     func() any { return new(replicateReq) },
	rpcJob:           func() any { return new(jobReq) },
	rpcLogs:          func() any { return new(logsReq) },
	rpcSince:         func() any { return new(sinceReq) },
	rpcModule:        func() any { return new(moduleReq) },
	rpcCancel:        func() any { return new(jobReq) },
	"replica-output": func() any { return new(outputReq) },
	fuzzAnnounce:     func() any { return new(Announce) },
	fuzzEvents:       func() any { return new([]Event) },
}

// wireHarness rebuilds the fuzzed peer before every input, on one store
// and one network, so that each input meets the same state.
type wireHarness struct {
	db   *store.Store
	node *memnet.Node
}

func newWireHarness(t testing.TB) *wireHarness {
	net := memnet.New()
	node := net.Add("me")
	for _, id := range fuzzFrom {
		net.Add(id)
	}
	return &wireHarness{db: openTestStore(t), node: node}
}

// peer wipes the store and returns a fresh peer with the seeded jobs.
func (h *wireHarness) peer(t testing.TB) *Peer {
	t.Helper()
	if err := wipe(h.db); err != nil {
		t.Fatalf("wipe store: %v", err)
	}
	p := &Peer{
		cfg: Config{Slots: 2, Lease: time.Second, Heartbeat: 250 * time.Millisecond,
			OwnerTimeout: 3 * time.Second},
		log:        slog.New(slog.DiscardHandler),
		id:         "me",
		tr:         h.node,
		db:         h.db,
		host:       executor.HostInfo{OS: "linux", Arch: "amd64", CPUs: 2, Memory: 1 << 30},
		owned:      make(map[string]*owned),
		tasks:      make(map[attemptRef]*task),
		peers:      make(map[string]*peerState),
		changed:    make(chan struct{}),
		heard:      make(chan []Event, 16),
		known:      make(map[string]time.Time),
		savedAddrs: make(map[string][]string),
		labels:     map[string]string{"os": "linux", "noop": "true"},
		execs:      map[string]executor.Executor{},
		cursors:    make(map[string]uint64),
		victims:    make(map[string]victimBackoff),
		modules:    make(map[string]*sync.Mutex),
		outLen:     make(map[outKey]int64),
		repl:       make(map[string][]chan struct{}),
		held:       make(map[string]*heldJob),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.registerHandlers()
	if err := seedFuzzPeer(p); err != nil {
		t.Fatalf("seed peer: %v", err)
	}
	return p
}

// wipe deletes every key in db.
func wipe(db *store.Store) error {
	var keys [][]byte
	err := db.Scan(nil, func(k, _ []byte) error {
		keys = append(keys, append([]byte(nil), k...))
		return nil
	})
	if err != nil || len(keys) == 0 {
		return err
	}
	return db.Update(func(tx *store.Txn) error {
		for _, k := range keys {
			if err := tx.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

func seedFuzzPeer(p *Peer) error {
	spec := Spec{Name: "f", Executor: "noop", Command: []string{"stdout=x"}, Retries: 1}
	mk := func(id, owner string) *Job {
		return &Job{ID: id, Spec: spec, Owner: owner, Epoch: 1, Version: 1,
			State: Pending, Submitted: t0}
	}
	pending, running, done, held := mk(fuzzPending, "me"), mk(fuzzRunning, "me"),
		mk(fuzzDone, "me"), mk(fuzzHeld, "other")
	if _, err := running.startAttempt("runner", t0); err != nil {
		return err
	}
	if _, err := done.startAttempt("runner", t0); err != nil {
		return err
	}
	done.applyResult(1, 1, outcome{ExitCode: 0}, t0)
	for _, j := range []*Job{pending, running, done, held} {
		ev := eventOf(j, "seed")
		if err := p.saveJob(j, &ev); err != nil {
			return err
		}
	}
	p.owned[fuzzPending] = &owned{job: pending}
	p.owned[fuzzRunning] = &owned{job: running, leaseUntil: t0.Add(time.Hour)}
	p.queue = []string{fuzzPending}
	p.held[fuzzHeld] = &heldJob{owner: "other"}
	p.peers["runner"] = &peerState{ann: Announce{Peer: "runner", Slots: 1, Pending: 1}}
	for _, k := range [][]byte{
		outputKey(fuzzDone, 1, Stdout, 0), outputKey(fuzzRunning, 1, Stderr, 0),
	} {
		if err := p.db.Put(k, []byte("out\n")); err != nil {
			return err
		}
	}
	_, err := p.AddModule(fuzzModule)
	return err
}

// handlerNames lists what FuzzWireMessages can call, in a fixed order.
func handlerNames(p *Peer) []string {
	names := []string{fuzzAnnounce, fuzzEvents}
	for name := range p.handlers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// call feeds data from a remote peer to the handler or gossip topic
// name.
func call(p *Peer, name, from string, data []byte) ([]byte, error) {
	switch name {
	case fuzzAnnounce:
		p.onAnnounce(from, data)
		return nil, nil
	case fuzzEvents:
		p.onEvents(from, data)
		// What recordLoop does in a running peer.
		for len(p.heard) > 0 {
			p.record(<-p.heard)
		}
		return nil, nil
	}
	return p.handlers[name](context.Background(), from, data)
}

// wireSeed is a valid message for the seeded peer, who sends it, and a
// part of the answer that shows the handler did its work.
type wireSeed struct {
	name, from string
	body       []byte
	want       string
}

func wireSeeds() []wireSeed {
	ref := attemptRef{Job: fuzzRunning, Attempt: 1, Epoch: 1}
	doneRef := attemptRef{Job: fuzzDone, Attempt: 1, Epoch: 1}
	held := &Job{ID: fuzzHeld, Owner: "other", Epoch: 1, Version: 2, State: Running,
		Spec: Spec{Name: "f", Executor: "noop"}, Submitted: t0,
		Attempts: []Attempt{{N: 1, Peer: "thief", Epoch: 1,
			State: AttemptRunning, Started: t0}}}
	return []wireSeed{
		{rpcSteal, "thief", encode(stealReq{Free: 2, Executors: []string{"noop", "exec"},
			Labels: map[string]string{"os": "linux"}, FreeCPU: 2, FreeMem: 1 << 30}),
			`"id":"` + fuzzPending},
		{rpcHeartbeat, "runner", encode(heartbeatReq{Attempts: []attemptRef{ref, doneRef}}),
			`{"verdicts":["ok","stale"]}`},
		{rpcOutput, "runner", encode(outputReq{attemptRef: ref, Stream: Stdout,
			Data: []byte("hello")}), `{"length":5}`},
		{rpcOutput, "runner", encode(outputReq{attemptRef: ref, Stream: Stderr, Offset: 2,
			Data: []byte("t\nmore")}), `{"length":8}`},
		{rpcResult, "runner", encode(resultReq{attemptRef: ref}), `{"applied":true}`},
		{rpcResult, "runner", encode(resultReq{attemptRef: ref, ExitCode: 3, Reason: "boom"}),
			`{"applied":true}`},
		{rpcResult, "runner", encode(resultReq{attemptRef: ref, ExitCode: -1, Lost: true,
			Reason: "gone"}), `{"applied":true}`},
		{rpcResult, "runner", encode(resultReq{attemptRef: doneRef}), `{"applied":false}`},
		{rpcStop, "other", encode(ref), `{"stopped":false}`},
		{rpcReplicate, "other", encode(replicateReq{Jobs: []*Job{held}}), `{}`},
		{rpcJob, "other", encode(jobReq{ID: fuzzDone}), `"state":"succeeded"`},
		{rpcLogs, "other", encode(logsReq{ID: fuzzDone, Attempt: 1, Stream: Stdout, Max: 2}),
			`"data":"b3U="`},
		{rpcLogs, "other", encode(logsReq{ID: fuzzRunning, Stream: Stderr, Offset: 1}),
			`"data":"dXQK"`},
		{rpcInfo, "other", nil, `"peer":"me"`},
		{rpcSince, "other", encode(sinceReq{Seq: 1, Max: 2}), `"seq":3,"more":false`},
		{rpcModule, "runner", encode(moduleReq{Hash: sha256Hex(fuzzModule)}),
			string(fuzzModule)},
		{rpcCancel, "other", encode(jobReq{ID: fuzzPending}), `{}`},
		{rpcCancel, "other", encode(jobReq{ID: fuzzRunning}), `{}`},
		{"replica-output", "other", encode(outputReq{attemptRef: attemptRef{Job: fuzzHeld,
			Attempt: 1, Epoch: 1}, Stream: Stdout, Data: []byte("copy")}), `{}`},
		{fuzzAnnounce, "runner", encode(Announce{Peer: "runner",
			Executors: []ExecutorInfo{{Name: "noop"}},
			Labels:    map[string]string{"os": "linux"},
			Slots:     2, Pending: 1, Seq: 9}), ""},
		{fuzzEvents, "other", encode([]Event{{Job: fuzzHeld, Owner: "other", Kind: "started",
			State: Running, Epoch: 1, Version: 3}, {Job: fuzzRunning, Owner: "other",
			Kind: "takeover", State: Pending, Epoch: 2, Version: 9}}), ""},
	}
}

// FuzzWireMessages feeds bytes from a remote member to every request
// handler and gossip topic of a peer. Nothing may panic; a body that is
// not the request's JSON is refused and counted; an answer is JSON; the
// owned jobs keep the lifecycle's invariants; and the finished job keeps
// its outcome.
func FuzzWireMessages(f *testing.F) {
	h := newWireHarness(f)
	names := handlerNames(h.peer(f))
	junk := [][]byte{nil, []byte("{"), []byte("null"), []byte("[]"), []byte(`"x"`),
		[]byte(`{"attempts":[{"job":1}]}`)}
	for _, s := range wireSeeds() {
		i := slices.Index(names, s.name)
		if i < 0 {
			f.Fatalf("no handler %s among %v", s.name, names)
		}
		from := slices.Index(fuzzFrom, s.from)
		f.Add(uint8(i), uint8(from), s.body)
		for _, b := range junk {
			f.Add(uint8(i), uint8(from), b)
		}
	}
	f.Fuzz(func(t *testing.T, which, fromIdx uint8, data []byte) {
		p := h.peer(t)
		defer func() {
			p.cancel()
			p.wg.Wait()
		}()
		name := names[int(which)%len(names)]
		from := fuzzFrom[int(fromIdx)%len(fuzzFrom)]
		badBefore := p.Stats().BadMessages
		resp, err := call(p, name, from, data)

		if mk := wireRequests[name]; mk != nil && json.Unmarshal(data, mk()) != nil {
			gossip := strings.HasPrefix(name, "gossip ")
			if !gossip && err == nil {
				t.Errorf("%s accepted a body that is not its JSON: %q", name, data)
			}
			if got := p.Stats().BadMessages; got != badBefore+1 {
				t.Errorf("%s: bad messages = %d after a body that is not JSON, want %d",
					name, got, badBefore+1)
			}
		}
		if err == nil && resp != nil && name != rpcModule && !json.Valid(resp) {
			t.Errorf("%s answered %q, not JSON", name, resp)
		}
		p.mu.Lock()
		for id, o := range p.owned {
			if bad := checkShape(o.job); bad != "" {
				t.Errorf("%s from %s left job %s broken: %s: %s", name, from, id, bad,
					describe(o.job))
			}
		}
		p.mu.Unlock()
		j, err := p.loadJob(fuzzDone)
		if err != nil || j.State != Succeeded || codeString(j.ExitCode) != "0" {
			t.Errorf("%s from %s changed the finished job: %v %v", name, from,
				err, describeOrNil(j))
		}
	})
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func describeOrNil(j *Job) string {
	if j == nil {
		return "<nil>"
	}
	return describe(j)
}

// TestWireSeedsServed checks that every seed message reaches the part of
// its handler that does the work, so that fuzzing starts deep.
func TestWireSeedsServed(t *testing.T) {
	h := newWireHarness(t)
	for i, s := range wireSeeds() {
		t.Run(strconv.Itoa(i)+" "+s.name, func(t *testing.T) {
			p := h.peer(t)
			defer func() {
				p.cancel()
				p.wg.Wait()
			}()
			resp, err := call(p, s.name, s.from, s.body)
			if err != nil {
				t.Fatalf("%s(%s) from %s: %v", s.name, s.body, s.from, err)
			}
			if !strings.Contains(string(resp), s.want) {
				t.Errorf("%s(%s) = %s, want it to hold %s", s.name, s.body, resp, s.want)
			}
			if n := p.Stats().BadMessages; n != 0 {
				t.Errorf("%s(%s): %d bad messages, want 0", s.name, s.body, n)
			}
		})
	}
	t.Run("gossip heard", func(t *testing.T) {
		p := h.peer(t)
		defer func() {
			p.cancel()
			p.wg.Wait()
		}()
		for _, s := range wireSeeds() {
			if strings.HasPrefix(s.name, "gossip ") {
				call(p, s.name, s.from, s.body)
			}
		}
		if ps := p.peers["runner"]; ps == nil || ps.ann.Seq != 9 {
			t.Errorf("announcement not learnt: %+v", ps)
		}
		if ev, err := p.summary(fuzzHeld); err != nil || ev.Version != 3 {
			t.Errorf("summary of the held job = %+v, %v; want version 3", ev, err)
		}
	})
	t.Run("every handler seeded", func(t *testing.T) {
		p := h.peer(t)
		defer p.cancel()
		seeded := make(map[string]bool)
		for _, s := range wireSeeds() {
			seeded[s.name] = true
		}
		for _, name := range handlerNames(p) {
			if !seeded[name] {
				t.Errorf("handler %s has no seed", name)
			}
		}
	})
}

const bugResultFromAnyone = "BUG: handleResult applies a result for an " +
	"attempt from any member, not only from its runner, while heartbeats " +
	"and output check the sender (owner.go handleResult)"

// TestResultFromOtherPeer checks that only the runner of an attempt can
// end it: a result from another member is stale and changes nothing.
func TestResultFromOtherPeer(t *testing.T) {
	h := newWireHarness(t)
	p := h.peer(t)
	defer func() {
		p.cancel()
		p.wg.Wait()
	}()
	ref := attemptRef{Job: fuzzRunning, Attempt: 1, Epoch: 1}
	resp, err := call(p, rpcResult, "thief", encode(resultReq{attemptRef: ref}))
	if err != nil {
		t.Fatal(err)
	}
	var got resultResp
	if err := decode(resp, &got); err != nil {
		t.Fatal(err)
	}
	j, err := p.findLocal(fuzzRunning)
	if err != nil {
		t.Fatal(err)
	}
	if got.Applied || j.State != Running {
		t.Errorf("result from a peer that does not run the attempt: applied %v, "+
			"job %s; want refused, job running", got.Applied, describe(j))
	}
}
