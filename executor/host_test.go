package executor

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestHost(t *testing.T) {
	h := Host()
	if h.OS != runtime.GOOS || h.Arch != runtime.GOARCH {
		t.Errorf("Host OS/Arch = %s/%s, want %s/%s", h.OS, h.Arch,
			runtime.GOOS, runtime.GOARCH)
	}
	if h.CPUs != runtime.NumCPU() || h.CPUs < 1 {
		t.Errorf("Host CPUs = %d, want %d", h.CPUs, runtime.NumCPU())
	}
	name, _ := os.Hostname()
	if h.Hostname != name {
		t.Errorf("Host Hostname = %q, want %q", h.Hostname, name)
	}
	if h.Memory <= 0 {
		t.Errorf("Host Memory = %d, want > 0", h.Memory)
	}
	if want, ok := memTotal(t); ok && h.Memory != want {
		t.Errorf("Host Memory = %d, want MemTotal %d", h.Memory, want)
	}
}

// memTotal reads MemTotal from /proc/meminfo, in bytes.
func memTotal(t *testing.T) (int64, bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(
			strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			t.Fatalf("parse MemTotal line %q: %v", sc.Text(), err)
		}
		return kb << 10, true
	}
	return 0, false
}
