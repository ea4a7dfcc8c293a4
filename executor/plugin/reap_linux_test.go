package plugin

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blixard/blixard/executor"
)

// peerEnv makes the test binary act as a peer that runs one task through
// a plugin and prints the task's handle, so that a test can kill it the
// way a crash would.
const peerEnv = "PLUGIN_TEST_PEER"

func TestMain(m *testing.M) {
	if path := os.Getenv(peerEnv); path != "" {
		os.Exit(runPeer(path))
	}
	os.Exit(m.Run())
}

// runPeer runs a long task through the plugin at path and never returns
// while the task runs.
func runPeer(path string) int {
	p, err := New(Config{Name: "peer", Path: path})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "blixard-plugin-peer-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_, err = p.Run(context.Background(), executor.Task{
		Command: []string{"sleep", "300"},
		Dir:     dir,
		Started: func(h string) { fmt.Println(h) },
	})
	fmt.Fprintln(os.Stderr, "task ended:", err)
	return 1
}

// crashedPeer starts a peer that runs a task through the plugin at path,
// kills the peer with SIGKILL once the task runs and returns the task's
// handle.
func crashedPeer(t *testing.T, path string) executor.ProcHandle {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), peerEnv+"="+path)
	cmd.Stderr = testWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if err != nil {
		t.Fatalf("read handle from the peer: %v", err)
	}
	h, err := executor.ParseProcHandle("plugin", strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = executor.KillGroup(h.PGID, syscall.SIGKILL) })
	return h
}

func TestReapAfterCrash(t *testing.T) {
	tests := []struct {
		name string
		path string
	}{
		{"plugin stops on TERM", sandboxPath},
		{"plugin ignores TERM", testdata("stubborn")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := crashedPeer(t, tt.path)
			if live, err := h.Live(); !live || err != nil {
				t.Fatalf("plugin after the peer died: live %v, %v; want "+
					"it still running", live, err)
			}

			p := newPlugin(t, "peer", tt.path)
			p.reapGrace = time.Second
			ctx, cancel := context.WithTimeout(context.Background(),
				time.Minute)
			defer cancel()
			if err := p.Reap(ctx, h.String()); err != nil {
				t.Fatalf("Reap: %v", err)
			}
			if live, _ := h.Live(); live {
				t.Error("plugin still runs after Reap")
			}
			if m := groupMembers(t, h.PGID); len(m) > 0 {
				t.Errorf("processes left in the group after Reap: %v", m)
			}
			if err := p.Reap(ctx, h.String()); err != nil {
				t.Errorf("second Reap: %v", err)
			}
		})
	}
}

func TestReapOtherProcess(t *testing.T) {
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	st, err := executor.ReadProcStat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}

	// A handle whose start time differs names an earlier process that
	// had the same pid: Reap must leave this one alone.
	h := executor.ProcHandle{Kind: "plugin", PID: cmd.Process.Pid,
		PGID: cmd.Process.Pid, Start: st.Start + 1}
	p := newPlugin(t, "sandbox", sandboxPath)
	if err := p.Reap(context.Background(), h.String()); err != nil {
		t.Fatalf("Reap: %v", err)
	}
	got, err := executor.ReadProcStat(cmd.Process.Pid)
	if err != nil || got.State == 'Z' {
		t.Errorf("the unrelated process was killed: %+v, %v", got, err)
	}
}

func TestReapBadHandle(t *testing.T) {
	p := newPlugin(t, "sandbox", sandboxPath)
	own := executor.ProcHandle{Kind: "plugin", PID: os.Getpid(),
		PGID: syscall.Getpgrp(), Start: 1}
	tests := []struct {
		handle string
		want   string
	}{
		{"exec:100:100:5", "want plugin:PID:PGID:START"},
		{"plugin:100:100", "want plugin:PID:PGID:START"},
		{"plugin:a:b:c", "with decimal numbers"},
		{"plugin:1:1:5", "pid and pgid must be at least 2"},
		{"plugin:" + strings.Repeat("9", 80), "longer than 64 bytes"},
		{own.String(), "names this peer's own process group"},
	}
	for _, tt := range tests {
		t.Run(tt.handle, func(t *testing.T) {
			err := p.Reap(context.Background(), tt.handle)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Reap: got %v, want an error containing %q",
					err, tt.want)
			}
		})
	}
}

func TestReapFinishedTask(t *testing.T) {
	p := newPlugin(t, "sandbox", sandboxPath)
	got := run(context.Background(), t, p,
		executor.Task{Command: []string{"true"}})
	if got.err != nil {
		t.Fatal(got.err)
	}
	if err := p.Reap(context.Background(), got.handle); err != nil {
		t.Errorf("Reap of a finished task: %v", err)
	}
}
