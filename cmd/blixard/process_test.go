package main

// Process-level tests: each test runs the real blixard binary, built once
// in TestMain, as peers on 127.0.0.1 and as the CLI that talks to them.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binPath is the blixard binary under test; testHome is the HOME its
// processes see, so that nothing lands in the real home directory.
var binPath, testHome string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "blixard-process-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "make temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "blixard")
	testHome = filepath.Join(dir, "home")
	if err := os.Mkdir(testHome, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "make home:", err)
		return 1
	}
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build blixard:", err)
		return 1
	}
	return m.Run()
}

// childEnv is the environment of every process a test starts: the
// test's own without BLIXARD_* settings, with HOME moved aside.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "BLIXARD_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+testHome)
}

// cliTimeout bounds one CLI invocation, generously: the machine is shared.
const cliTimeout = 60 * time.Second

// result is how one CLI invocation ended.
type result struct {
	args   []string
	code   int
	stdout string
	stderr string
}

func (r result) String() string {
	return fmt.Sprintf("blixard %s: exit %d, stdout %q, stderr %q",
		strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// runCLI runs the binary with args and returns how it ended. The error
// is for a binary that could not be run or did not end in time, never for
// a non-zero exit.
func runCLI(args ...string) (result, error) {
	return runCLIWithin(cliTimeout, args...)
}

// runCLIWithin is runCLI with a timeout of its own.
func runCLIWithin(timeout time.Duration, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = childEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return r, fmt.Errorf("blixard %s: no exit within %s",
			strings.Join(args, " "), timeout)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		return r, fmt.Errorf("run blixard: %w", err)
	}
	return r, nil
}

// blix runs the binary and fails the test if it could not be run.
func blix(t *testing.T, args ...string) result {
	t.Helper()
	r, err := runCLI(args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// blixOK runs the binary and fails the test unless it exits 0.
func blixOK(t *testing.T, args ...string) result {
	t.Helper()
	r := blix(t, args...)
	if r.code != 0 {
		t.Fatalf("%v; want exit 0", r)
	}
	return r
}

// blixJSON runs a command that prints JSON and decodes it into v.
func blixJSON(v any, args ...string) error {
	r, err := runCLI(args...)
	if err != nil {
		return err
	}
	if r.code != 0 {
		return fmt.Errorf("%v; want exit 0", r)
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		return fmt.Errorf("decode output of blixard %s: %w",
			strings.Join(args, " "), err)
	}
	return nil
}

// eventually calls check every 100ms until it returns nil, and fails the
// test with check's last error if that takes longer than timeout.
func eventually(t *testing.T, timeout time.Duration, what string,
	check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freeAddr returns a loopback TCP address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// peerProc is one `blixard peer` process. Its output goes to a log file
// that every restart appends to, and that a failed test prints.
type peerProc struct {
	t       *testing.T
	name    string
	dataDir string
	api     string
	logPath string
	extra   []string

	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has been waited for
	err  error         // cmd.Wait's error; read after done
}

// newPeer describes a peer with its own data dir; start runs it. extra
// are flags beyond those every test peer gets.
func newPeer(t *testing.T, name string, extra ...string) *peerProc {
	t.Helper()
	dir := t.TempDir()
	p := &peerProc{
		t:       t,
		name:    name,
		dataDir: filepath.Join(dir, "data"),
		logPath: filepath.Join(dir, "peer.log"),
		extra:   extra,
	}
	t.Cleanup(p.cleanup)
	return p
}

// startPeer starts a new peer and waits until its API answers.
func startPeer(t *testing.T, name string, extra ...string) *peerProc {
	t.Helper()
	p := newPeer(t, name, extra...)
	p.start()
	return p
}

// start runs the peer process on a fresh API port and waits until the
// API answers. It may be called again once the process has ended.
func (p *peerProc) start() {
	p.t.Helper()
	p.api = freeAddr(p.t)
	log, err := os.OpenFile(p.logPath,
		os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatalf("open peer log: %v", err)
	}
	defer log.Close()
	fmt.Fprintf(log, "==== %s: start, api %s\n", p.name, p.api)
	args := []string{"peer",
		"--data-dir", p.dataDir,
		"--listen", "/ip4/127.0.0.1/udp/0/quic-v1",
		"--no-mdns",
		"--api", p.api,
		"--log-level", "debug",
		"--executor", "exec", "--executor", "noop",
	}
	p.cmd = exec.Command(binPath, append(args, p.extra...)...)
	p.cmd.Env = childEnv()
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start peer %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.done = done
	cmd := p.cmd
	go func() {
		p.err = cmd.Wait()
		close(done)
	}()
	p.waitReady()
}

// waitReady waits until the peer's API answers, failing fast if the
// process ends first.
func (p *peerProc) waitReady() {
	p.t.Helper()
	eventually(p.t, 60*time.Second, p.name+" API answers", func() error {
		select {
		case <-p.done:
			p.t.Fatalf("peer %s ended before its API answered: %v",
				p.name, p.err)
		default:
		}
		r, err := runCLI("id", "--api", p.api)
		if err != nil {
			return err
		}
		if r.code != 0 {
			return errors.New(r.String())
		}
		return nil
	})
}

// running reports whether the process is still running.
func (p *peerProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends sig and waits for the process to end. It returns the
// process's wait error (nil for exit status 0).
func (p *peerProc) stop(sig syscall.Signal) error {
	p.t.Helper()
	if !p.running() {
		return p.err
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal peer %s: %v", p.name, err)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(30 * time.Second):
	}
	p.cmd.Process.Kill()
	<-p.done
	p.t.Fatalf("peer %s did not end within 30s of %v", p.name, sig)
	return nil
}

// cleanup stops a peer still running and, if the test failed, prints
// the end of its log.
func (p *peerProc) cleanup() {
	if p.cmd != nil && p.running() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	if p.t.Failed() {
		p.t.Logf("log of peer %s (%s), last lines:\n%s",
			p.name, p.dataDir, tail(p.logPath, 150))
	}
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// logHas reports whether a line of the peer's log contains every one of
// parts.
func (p *peerProc) logHas(parts ...string) bool {
	f, err := os.Open(p.logPath)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		all := true
		for _, s := range parts {
			all = all && strings.Contains(sc.Text(), s)
		}
		if all {
			return true
		}
	}
	return false
}

// id returns the peer's ID as `blixard id --data-dir` prints it.
func (p *peerProc) id() string {
	p.t.Helper()
	r := blixOK(p.t, "id", "--data-dir", p.dataDir)
	return strings.TrimSpace(r.stdout)
}

// jobStatus is the part of `blixard status -o json` the tests read.
type jobStatus struct {
	ID       string       `json:"id"`
	Name     string       `json:"name"`
	State    string       `json:"state"`
	Peer     string       `json:"peer"`
	Owner    string       `json:"owner"`
	ExitCode *int         `json:"exit_code"`
	Reason   string       `json:"reason"`
	Attempts []jobAttempt `json:"attempts"`
}

// jobAttempt is one attempt in a jobStatus.
type jobAttempt struct {
	N      int    `json:"n"`
	Peer   string `json:"peer"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

// status returns a job's status as the peer at api reports it.
func status(api, job string) (jobStatus, error) {
	var st jobStatus
	err := blixJSON(&st, "status", "--api", api, "-o", "json", job)
	return st, err
}

// jobEntry is one line of `blixard jobs -o json`.
type jobEntry struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

// jobs returns the jobs the peer at api knows of.
func jobs(api string) ([]jobEntry, error) {
	var out []jobEntry
	err := blixJSON(&out, "jobs", "--api", api, "-o", "json")
	return out, err
}

// member is one entry of `blixard peers -o json`.
type member struct {
	ID     string            `json:"id"`
	Addrs  []string          `json:"addrs"`
	Labels map[string]string `json:"labels"`
}

// members returns the mesh members the peer at api lists.
func members(api string) ([]member, error) {
	var out []member
	err := blixJSON(&out, "peers", "--api", api, "-o", "json")
	return out, err
}

// memberIDs returns the sorted IDs of the members the peer at api lists.
func memberIDs(api string) ([]string, error) {
	ms, err := members(api)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	slices.Sort(ids)
	return ids, nil
}

// procsWithArg returns the PIDs of live processes whose command line has
// arg as one of its arguments. Zombies have an empty command line and are
// not listed.
func procsWithArg(t *testing.T, arg string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("list processes: %v", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if hasArg(pid, arg) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// hasArg reports whether process pid is alive with arg among its
// arguments.
func hasArg(pid int, arg string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	for _, a := range bytes.Split(b, []byte{0}) {
		if string(a) == arg {
			return true
		}
	}
	return false
}
