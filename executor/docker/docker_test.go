package docker

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/blixard/blixard/executor"
)

func TestProbe(t *testing.T) {
	t.Parallel()
	d := newTestDocker(t)
	info, err := d.Probe(context.Background())
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if info.Version == "" || strings.ContainsAny(info.Version, " \n") {
		t.Errorf("Version = %q, want an engine version", info.Version)
	}
	if got := info.Labels["docker.os"]; got != "linux" {
		t.Errorf("docker.os = %q, want linux", got)
	}
	for _, key := range []string{"docker.arch", "docker.api"} {
		if info.Labels[key] == "" {
			t.Errorf("label %s missing from %v", key, info.Labels)
		}
	}
	if got := d.Name(); got != "docker" {
		t.Errorf("Name = %q, want docker", got)
	}
}

func TestProbeUnavailable(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, host string }{
		{"missing socket", "unix:///nonexistent/blixard-docker.sock"},
		{"closed port", "tcp://127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := New(Config{Host: tt.host, PeerID: "unavailable"})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer d.Close()
			if _, err := d.Probe(context.Background()); !errors.Is(err,
				executor.ErrUnavailable) {
				t.Errorf("Probe err = %v, want ErrUnavailable", err)
			}
			res, err := d.Run(context.Background(),
				executor.Task{JobID: "j", Image: "busybox:latest"})
			if !errors.Is(err, executor.ErrUnavailable) ||
				res.ExitCode != executor.ExitNotRun {
				t.Errorf("Run = %+v, %v; want ExitNotRun and ErrUnavailable",
					res, err)
			}
		})
	}
}

func TestNewInvalidConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no peer", Config{}, "PeerID is empty"},
		{"long peer", Config{PeerID: strings.Repeat("p", 257)},
			"limit 256"},
		{"control peer", Config{PeerID: "a\nb"}, "control character"},
		{"bad host", Config{PeerID: "p", Host: "no-scheme"}, "Host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	d, err := New(Config{PeerID: "closed"})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := context.Background()
	if _, err := d.Probe(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Probe err = %v, want ErrClosed", err)
	}
	if _, err := d.Run(ctx, executor.Task{Image: "x"}); !errors.Is(err,
		ErrClosed) {
		t.Errorf("Run err = %v, want ErrClosed", err)
	}
	if err := d.Reap(ctx, "abc"); !errors.Is(err, ErrClosed) {
		t.Errorf("Reap err = %v, want ErrClosed", err)
	}
	if _, err := d.Sweep(ctx, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Sweep err = %v, want ErrClosed", err)
	}
}

func TestCleanLabel(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"20.10.24+dfsg1", "20.10.24+dfsg1"},
		{"x86_64", "x86_64"},
		{"a b,c(d)=e\n\x00", "abcde"},
		{strings.Repeat("v", 200), strings.Repeat("v", maxLabelValue)},
	}
	for _, tt := range tests {
		if got := cleanLabel(tt.in); got != tt.want {
			t.Errorf("cleanLabel(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   int64
		want string
	}{
		{64 << 20, "64MiB"}, {1 << 30, "1GiB"}, {1536 << 10, "1536KiB"},
		{1000, "1000B"}, {3 << 30, "3GiB"},
	}
	for _, tt := range tests {
		if got := formatBytes(tt.in); got != tt.want {
			t.Errorf("formatBytes(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
