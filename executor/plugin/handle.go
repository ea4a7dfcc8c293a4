package plugin

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// maxHandleLen bounds the length of a handle Reap accepts.
const maxHandleLen = 64

// procHandle names one plugin process that Run started: its pid, its
// process group and its start time in clock ticks after boot (field 22 of
// /proc/PID/stat), which tells it apart from a later process that reuses
// the pid.
type procHandle struct {
	pid   int
	pgid  int
	start uint64
}

// String formats h as "plugin:PID:PGID:START".
func (h procHandle) String() string {
	return fmt.Sprintf("plugin:%d:%d:%d", h.pid, h.pgid, h.start)
}

// parseHandle parses a handle made by procHandle.String. It refuses pids
// and groups below 2, which signals would turn into "every process" or
// "init".
func parseHandle(s string) (procHandle, error) {
	bad := func(why string) (procHandle, error) {
		return procHandle{}, fmt.Errorf("plugin: handle %q: %s",
			clip([]byte(s), maxHandleLen), why)
	}
	if len(s) > maxHandleLen {
		return bad(fmt.Sprintf("longer than %d bytes", maxHandleLen))
	}
	rest, ok := strings.CutPrefix(s, "plugin:")
	parts := strings.Split(rest, ":")
	if !ok || len(parts) != 3 {
		return bad("want plugin:PID:PGID:START")
	}
	pid, err1 := strconv.Atoi(parts[0])
	pgid, err2 := strconv.Atoi(parts[1])
	start, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return bad("want plugin:PID:PGID:START with decimal numbers")
	}
	if pid < 2 || pgid < 2 {
		return bad("pid and pgid must be at least 2")
	}
	return procHandle{pid: pid, pgid: pgid, start: start}, nil
}
