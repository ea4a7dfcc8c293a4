package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// helperEnv selects what the test binary does when a test runs it as a
// helper process instead of as a test.
const helperEnv = "BLIXARD_EXEC_TEST_HELPER"

// TestMain lets the test binary act as a peer that starts a task process
// and crashes: with helperEnv set it starts a process, prints the handle
// Run would have reported and exits without waiting, leaving the process
// an orphan.
func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "orphan":
		os.Exit(orphanHelper("exec sleep 1000"))
	case "orphan-ignore-term":
		os.Exit(orphanHelper("trap '' TERM; exec sleep 1000"))
	default:
		fmt.Fprintf(os.Stderr, "unknown %s\n", helperEnv)
		os.Exit(2)
	}
}

// orphanHelper starts script in its own process group, waits until it
// runs sleep, prints its handle and returns the exit status for the
// helper.
func orphanHelper(script string) int {
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pid := cmd.Process.Pid
	deadline := time.Now().Add(20 * time.Second)
	for {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil && string(comm) == "sleep\n" {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "helper: sleep did not start")
			return 1
		}
		time.Sleep(5 * time.Millisecond)
	}
	st, err := ReadProcStat(pid)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(ProcHandle{Kind: "exec", PID: pid, PGID: pid,
		Start: st.Start})
	return 0
}

// startOrphan runs the helper named mode and returns the handle of the
// process it left behind. The process is killed when the test ends, in
// case the test did not end it.
func startOrphan(t *testing.T, mode string) ProcHandle {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper %s: %v: %s", mode, err, stderr.String())
	}
	h, err := ParseProcHandle("exec", strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("helper %s printed %q: %v", mode, out, err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-h.PGID, syscall.SIGKILL) })
	return h
}

// running reports whether pid exists and has not exited. An exited
// process not yet reaped by its parent counts as not running.
func running(t *testing.T, pid int) bool {
	t.Helper()
	st, err := ReadProcStat(pid)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		t.Fatalf("read stat of pid %d: %v", pid, err)
	}
	return st.State != 'Z' && st.State != 'X'
}

// waitFor polls cond until it holds, failing the test after a generous
// limit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
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

// testLogger returns a logger that writes to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t},
		&slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// newExec returns an exec adapter logging to t with base as BaseEnv.
func newExec(t *testing.T, base map[string]string) *Exec {
	return NewExec(ExecConfig{
		Logger:    testLogger(t),
		BaseEnv:   base,
		ReapGrace: 300 * time.Millisecond,
	})
}

// runTask runs task on e with a generous deadline, giving it a fresh
// directory if it has none.
func runTask(t *testing.T, e Executor, task Task) (Result, error) {
	t.Helper()
	if task.Dir == "" {
		task.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return e.Run(ctx, task)
}
