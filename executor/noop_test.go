package executor

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestNoopRun(t *testing.T) {
	tests := []struct {
		name       string
		command    []string
		timeout    time.Duration
		want       Result
		wantStdout string
		wantStderr string
	}{
		{name: "empty", want: Result{}},
		{name: "exit", command: []string{"exit=3"},
			want: Result{ExitCode: 3, Reason: "exit status 3"}},
		{name: "exit 0", command: []string{"exit=0"}, want: Result{}},
		{name: "exit 255", command: []string{"exit=255"},
			want: Result{ExitCode: 255, Reason: "exit status 255"}},
		{name: "output as given",
			command: []string{"stdout=a b\x00", "stderr=e=1",
				"stdout=", "stdout=c"},
			wantStdout: "a b\x00c", wantStderr: "e=1"},
		{name: "combined in order",
			command: []string{"stdout=x", "sleep=10ms", "exit=2",
				"stderr=y", "exit=4"},
			want:       Result{ExitCode: 4, Reason: "exit status 4"},
			wantStdout: "x", wantStderr: "y"},
		{name: "timeout during sleep",
			command: []string{"stdout=before", "sleep=1h", "stdout=after"},
			timeout: 50 * time.Millisecond,
			want: Result{ExitCode: ExitTimeout, TimedOut: true,
				Reason: "timeout after 50ms"},
			wantStdout: "before"},
		{name: "sleep within timeout",
			command: []string{"sleep=1ms", "exit=1"},
			timeout: time.Hour,
			want:    Result{ExitCode: 1, Reason: "exit status 1"}},
	}
	n := NewNoop()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			var handle string
			got, err := n.Run(context.Background(), Task{
				JobID:   "j",
				Attempt: 1,
				Command: tt.command,
				Stdout:  &stdout,
				Stderr:  &stderr,
				Timeout: tt.timeout,
				Started: func(h string) { handle = h },
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got != tt.want {
				t.Errorf("Run = %+v, want %+v", got, tt.want)
			}
			if stdout.String() != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout.String(),
					tt.wantStdout)
			}
			if stderr.String() != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", stderr.String(),
					tt.wantStderr)
			}
			if handle != "noop:j:1" {
				t.Errorf("Started handle = %q, want %q", handle, "noop:j:1")
			}
		})
	}
}

func TestNoopNilOutput(t *testing.T) {
	got, err := NewNoop().Run(context.Background(), Task{
		Command: []string{"stdout=x", "stderr=y"},
	})
	if err != nil || got != (Result{}) {
		t.Errorf("Run = %+v, %v; want a clean exit", got, err)
	}
}

func TestNoopCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result, 1)
	started := make(chan struct{})
	go func() {
		res, _ := NewNoop().Run(ctx, Task{
			Command: []string{"sleep=1h"},
			Started: func(string) { close(started) },
		})
		done <- res
	}()
	<-started
	cancel()
	want := Result{ExitCode: ExitCancelled, Cancelled: true,
		Reason: "cancelled"}
	if got := <-done; got != want {
		t.Errorf("Run = %+v, want %+v", got, want)
	}

	got, err := NewNoop().Run(ctx, Task{Command: []string{"exit=1"}})
	if err != nil || got != want {
		t.Errorf("Run with done context = %+v, %v; want %+v, nil", got,
			err, want)
	}
}

func TestNoopBadDirective(t *testing.T) {
	tests := []struct {
		command []string
		want    string
	}{
		{[]string{"sleep=1s", "slep=1s"}, `noop: command[1] "slep=1s": ` +
			"unknown directive; want sleep=, exit=, stdout= or stderr="},
		{[]string{"exit"}, `noop: command[0] "exit": bad exit status; ` +
			"want 0 to 255"},
		{[]string{"exit=256"}, `noop: command[0] "exit=256": bad exit ` +
			"status; want 0 to 255"},
		{[]string{"exit=-1"}, `noop: command[0] "exit=-1": bad exit ` +
			"status; want 0 to 255"},
		{[]string{"sleep=abc"}, `noop: command[0] "sleep=abc": bad ` +
			"duration; want one such as 1s or 250ms"},
		{[]string{"sleep=-1s"}, `noop: command[0] "sleep=-1s": negative ` +
			"duration; want >= 0"},
		{[]string{""}, `noop: command[0] "": unknown directive`},
		{[]string{"STDOUT=x"}, `noop: command[0] "STDOUT=x": unknown`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.command, " "), func(t *testing.T) {
			err := ValidateNoop(tt.command)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("ValidateNoop = %v, want %q", err, tt.want)
			}
			var stdout bytes.Buffer
			res, err := NewNoop().Run(context.Background(), Task{
				Command: append([]string{"stdout=x"}, tt.command...),
				Stdout:  &stdout,
			})
			if err == nil || res.ExitCode != ExitNotRun ||
				res.Reason != err.Error() {
				t.Errorf("Run = %+v, %v; want ExitNotRun and the error",
					res, err)
			}
			if stdout.Len() != 0 {
				t.Errorf("Run wrote %q before rejecting the command",
					stdout.String())
			}
		})
	}
}

func TestValidateNoopAccepts(t *testing.T) {
	for _, cmd := range [][]string{
		nil,
		{"sleep=0s", "sleep=1h2m", "exit=0", "stdout=", "stderr=a=b"},
	} {
		if err := ValidateNoop(cmd); err != nil {
			t.Errorf("ValidateNoop(%q) = %v, want nil", cmd, err)
		}
	}
}

func TestNoopProbe(t *testing.T) {
	n := NewNoop()
	info, err := n.Probe(context.Background())
	if err != nil || info.Version != "" || len(info.Labels) != 0 {
		t.Errorf("Probe = %+v, %v; want empty Info, nil", info, err)
	}
	if n.Name() != "noop" {
		t.Errorf("Name = %q, want noop", n.Name())
	}
}

func BenchmarkNoopRun(b *testing.B) {
	n := NewNoop()
	ctx := context.Background()
	var out bytes.Buffer
	task := Task{Command: []string{"stdout=x", "exit=0"}, Stdout: &out}
	for b.Loop() {
		out.Reset()
		if _, err := n.Run(ctx, task); err != nil {
			b.Fatal(err)
		}
	}
}
