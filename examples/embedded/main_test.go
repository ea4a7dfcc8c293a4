package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/blixard/blixard/scheduler"
)

func TestRun(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "peer")
	tests := []struct {
		name     string
		args     []string
		wantOut  []string // substrings of stdout, in order
		wantErr  string   // substring of the error; empty means none
		wantFile string   // a file run must leave behind
	}{
		{
			name: "default job",
			wantOut: []string{"peer ", "submitted job ",
				"output:\nhello from an embedded peer\n",
				"status: succeeded, exit code 0, ran on peer "},
		},
		{
			name: "own command and data dir",
			args: []string{"-data-dir", dataDir, "--",
				"sh", "-c", "printf 'a\\nb\\n'"},
			wantOut:  []string{"output:\na\nb\n", "status: succeeded"},
			wantFile: filepath.Join(dataDir, "identity.key"),
		},
		{
			name:    "failing job",
			args:    []string{"sh", "-c", "echo bye; exit 3"},
			wantOut: []string{"output:\nbye\n", "status: failed, exit code 3"},
			wantErr: "failed: exit status 3",
		},
		{
			name:    "bad flag",
			args:    []string{"-nope"},
			wantErr: "-nope",
		},
		{
			name:    "bad timeout",
			args:    []string{"-timeout", "-1s"},
			wantErr: "timeout: -1s",
		},
		{
			name:    "bad listen address",
			args:    []string{"-listen", "not-a-multiaddr"},
			wantErr: "listen[0]",
		},
		{
			name:    "help",
			args:    []string{"-h"},
			wantOut: []string{"usage: embedded", "-data-dir"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOnce(t, tt.args)
			checkErr(t, err, tt.wantErr)
			checkOut(t, got, tt.wantOut)
			if tt.wantFile != "" {
				if _, err := os.Stat(tt.wantFile); err != nil {
					t.Errorf("file %s: %v; want it kept", tt.wantFile, err)
				}
			}
		})
	}
}

// TestRunJoins runs the program against a mesh started here, with the
// mesh's join token.
func TestRunJoins(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := scheduler.New(ctx, scheduler.Config{
		DataDir: t.TempDir(),
		Listen:  []string{"/ip4/127.0.0.1/udp/0/quic-v1"},
	})
	if err != nil {
		t.Fatalf("start mesh peer: %v", err)
	}
	defer p.Close()

	got, err := runOnce(t, []string{"-join", p.Token()})
	checkErr(t, err, "")
	checkOut(t, got, []string{"joined a mesh of 2 peers\n",
		"output:\nhello from an embedded peer\n", "status: succeeded"})

	_, err = runOnce(t, []string{"-join", "garbage"})
	checkErr(t, err, "start peer: ")
}

// runOnce calls run with args and a deadline and returns its stdout.
func runOnce(t *testing.T, args []string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, args, &out)
	t.Logf("stdout:\n%s", out.String())
	return out.String(), err
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("err = %v, want none", err)
	case want != "" && err == nil:
		t.Errorf("err = nil, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("err = %v, want one containing %q", err, want)
	case err != nil && strings.Contains(err.Error(), "\n"):
		t.Errorf("err = %q, want one line", err)
	}
}

// checkOut reports a missing or misplaced part of got.
func checkOut(t *testing.T, got string, want []string) {
	t.Helper()
	rest := got
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Errorf("stdout lacks %q after the earlier parts; got:\n%s",
				w, got)
			return
		}
		rest = rest[i+len(w):]
	}
}
