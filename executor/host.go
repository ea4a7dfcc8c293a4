package executor

import (
	"math"
	"os"
	"runtime"

	"github.com/pbnjay/memory"
)

// HostInfo describes this machine. The scheduler advertises it as the
// labels os, arch, cpus and memory.
type HostInfo struct {
	OS       string // runtime.GOOS: linux, darwin, ...
	Arch     string // runtime.GOARCH: amd64, arm64, ...
	CPUs     int    // logical CPUs usable by this process
	Memory   int64  // total physical memory in bytes; 0 if unknown
	Hostname string // empty if unknown
}

// Host returns a description of this machine. It does not block and is
// safe for concurrent use.
func Host() HostInfo {
	hostname, err := os.Hostname()
	if err != nil {
		hostname = ""
	}
	mem := memory.TotalMemory()
	if mem > math.MaxInt64 {
		mem = 0
	}
	return HostInfo{
		OS:       runtime.GOOS,
		Arch:     runtime.GOARCH,
		CPUs:     runtime.NumCPU(),
		Memory:   int64(mem),
		Hostname: hostname,
	}
}
