package executor

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestExecExitCodes(t *testing.T) {
	tests := []struct {
		name    string
		command []string
		want    Result
	}{
		{"true", []string{"true"}, Result{}},
		{"false", []string{"false"}, Result{ExitCode: 1,
			Reason: "exit status 1"}},
		{"exit 3", []string{"sh", "-c", "exit 3"}, Result{ExitCode: 3,
			Reason: "exit status 3"}},
		{"exit 255", []string{"/bin/sh", "-c", "exit 255"},
			Result{ExitCode: 255, Reason: "exit status 255"}},
		{"SIGKILL", []string{"sh", "-c", "kill -KILL $$"},
			Result{ExitCode: 137, Reason: "killed by signal 9 (killed)"}},
		{"SIGTERM", []string{"sh", "-c", "kill -TERM $$"},
			Result{ExitCode: 143,
				Reason: "killed by signal 15 (terminated)"}},
	}
	e := newExec(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runTask(t, e, Task{Command: tt.command})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got != tt.want {
				t.Errorf("Run = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestExecOutputByteExact(t *testing.T) {
	random := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		b[0], b[n-1] = 0, 0 // NULs, and no trailing newline
		return b
	}
	tests := []struct {
		name       string
		data       []byte
		script     string // run by sh with data in the file "data"
		wantStdout bool
		wantStderr bool
	}{
		{"printf NULs", []byte("a\x00b\x00\x00c"),
			`printf 'a\000b\000\000c'`, true, false},
		{"small binary", random(1000), "cat data", true, false},
		{"3 MiB to stdout", random(3 << 20), "cat data", true, false},
		{"3 MiB to stderr", random(3 << 20), "cat data >&2", false, true},
		{"both", random(2 << 20), "cat data; cat data >&2", true, true},
	}
	e := newExec(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			err := os.WriteFile(filepath.Join(dir, "data"), tt.data, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			res, err := runTask(t, e, Task{
				Command: []string{"sh", "-c", tt.script},
				Dir:     dir,
				Stdout:  &stdout,
				Stderr:  &stderr,
			})
			if err != nil || res != (Result{}) {
				t.Fatalf("Run = %+v, %v; want a clean exit", res, err)
			}
			checkBytes(t, "stdout", stdout.Bytes(), tt.data, tt.wantStdout)
			checkBytes(t, "stderr", stderr.Bytes(), tt.data, tt.wantStderr)
		})
	}
}

// checkBytes checks that got is want if wanted, and empty otherwise.
func checkBytes(t *testing.T, name string, got, want []byte, wanted bool) {
	t.Helper()
	if !wanted {
		want = nil
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: got %d bytes, want %d bytes equal to the input",
			name, len(got), len(want))
	}
}

func TestExecSharedWriterKeepsOrder(t *testing.T) {
	var out bytes.Buffer
	res, err := runTask(t, newExec(t, nil), Task{
		Command: []string{"sh", "-c", "echo a; echo b >&2; echo c"},
		Stdout:  &out,
		Stderr:  &out,
	})
	if err != nil || res != (Result{}) {
		t.Fatalf("Run = %+v, %v; want a clean exit", res, err)
	}
	if got, want := out.String(), "a\nb\nc\n"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
}

func TestExecStdin(t *testing.T) {
	big := make([]byte, 2<<20)
	_, _ = rand.Read(big)
	tests := []struct {
		name  string
		stdin io.Reader
		want  []byte
	}{
		{"nil is empty", nil, nil},
		{"text", strings.NewReader("hello\x00world"),
			[]byte("hello\x00world")},
		{"2 MiB", bytes.NewReader(big), big},
	}
	e := newExec(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			res, err := runTask(t, e, Task{
				Command: []string{"cat"},
				Stdin:   tt.stdin,
				Stdout:  &stdout,
			})
			if err != nil || res != (Result{}) {
				t.Fatalf("Run = %+v, %v; want a clean exit", res, err)
			}
			if !bytes.Equal(stdout.Bytes(), tt.want) {
				t.Errorf("stdout: got %d bytes, want %d equal to stdin",
					stdout.Len(), len(tt.want))
			}
		})
	}
}

func TestExecEnv(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		base map[string]string
		env  map[string]string
		want map[string]string
	}{
		{
			name: "default base is the peer's PATH",
			want: map[string]string{
				"PATH": os.Getenv("PATH"), "HOME": dir, "TMPDIR": dir,
				"BLIXARD_JOB_ID": "job-1", "BLIXARD_ATTEMPT": "2",
			},
		},
		{
			name: "task env wins",
			base: map[string]string{"PATH": "/usr/bin:/bin", "LANG": "C"},
			env: map[string]string{"LANG": "C.UTF-8", "HOME": "/nowhere",
				"MULTI": "a\nb=c", "EMPTY": ""},
			want: map[string]string{
				"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
				"HOME": "/nowhere", "TMPDIR": dir, "MULTI": "a\nb=c",
				"EMPTY": "", "BLIXARD_JOB_ID": "job-1",
				"BLIXARD_ATTEMPT": "2",
			},
		},
	}
	t.Setenv("BLIXARD_TEST_SECRET", "must not leak")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			res, err := runTask(t, newExec(t, tt.base), Task{
				JobID:   "job-1",
				Attempt: 2,
				Command: []string{"env", "-0"},
				Env:     tt.env,
				Dir:     dir,
				Stdout:  &stdout,
			})
			if err != nil || res != (Result{}) {
				t.Fatalf("Run = %+v, %v; want a clean exit", res, err)
			}
			got := parseEnv0(stdout.String())
			if len(got) != len(tt.want) {
				t.Errorf("env has %d variables, want %d: %q",
					len(got), len(tt.want), got)
			}
			for k, want := range tt.want {
				if v, ok := got[k]; !ok || v != want {
					t.Errorf("env %s = %q (set %v), want %q", k, v, ok, want)
				}
			}
		})
	}
}

// parseEnv0 parses the output of env -0.
func parseEnv0(s string) map[string]string {
	env := make(map[string]string)
	for _, kv := range strings.Split(strings.TrimSuffix(s, "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

func TestExecDirAndPathLookup(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "hello.sh")
	err := os.WriteFile(script, []byte("#!/bin/sh\npwd -P\n"), 0o755)
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink("/bin/sh", filepath.Join(bin, "mysh")); err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		base    map[string]string
		command []string
	}{
		{"pwd", nil, []string{"pwd", "-P"}},
		{"relative path is in dir", nil, []string{"./hello.sh"}},
		{"absolute path", map[string]string{}, []string{script}},
		{"task PATH, not peer PATH",
			map[string]string{"PATH": "relative:" + bin},
			[]string{"mysh", "-c", "pwd -P"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			res, err := runTask(t, newExec(t, tt.base), Task{
				Command: tt.command,
				Dir:     dir,
				Stdout:  &stdout,
			})
			if err != nil || res != (Result{}) {
				t.Fatalf("Run = %+v, %v; want a clean exit", res, err)
			}
			if got := strings.TrimSpace(stdout.String()); got != real {
				t.Errorf("working dir = %q, want %q", got, real)
			}
		})
	}
}

func TestExecNotRun(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "data.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		base    map[string]string
		command []string
		dir     string
		env     map[string]string
		want    string // in Reason and the error
	}{
		{"not found", nil, []string{"no-such-command-blx"}, dir, nil,
			`start: "no-such-command-blx": executable file not found`},
		{"not on task PATH", map[string]string{"PATH": "/nonexistent"},
			[]string{"sh", "-c", "true"}, dir, nil, `start: "sh": `},
		{"no PATH at all", map[string]string{}, []string{"true"}, dir,
			nil, `start: "true": `},
		{"not executable", nil, []string{"./data.txt"}, dir, nil,
			`start: "./data.txt": permission denied`},
		{"directory", nil, []string{"./sub"}, dir, nil,
			`start: "./sub": is a directory`},
		{"missing path", nil, []string{"/nonexistent/prog"}, dir, nil,
			`start: "/nonexistent/prog": `},
		{"empty command", nil, nil, dir, nil, "start: command: "},
		{"relative dir", nil, []string{"true"}, "rel", nil,
			`start: dir "rel": must be an absolute directory`},
		{"bad env key", nil, []string{"true"}, dir,
			map[string]string{"A=B": "x"}, `start: env key "A=B"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := false
			res, err := newExec(t, tt.base).Run(context.Background(), Task{
				Command: tt.command,
				Dir:     tt.dir,
				Env:     tt.env,
				Started: func(string) { started = true },
			})
			if err == nil {
				t.Fatalf("Run = %+v, nil error; want an error", res)
			}
			if res.ExitCode != ExitNotRun {
				t.Errorf("ExitCode = %d, want %d", res.ExitCode, ExitNotRun)
			}
			if !strings.HasPrefix(res.Reason, tt.want) {
				t.Errorf("Reason = %q, want prefix %q", res.Reason, tt.want)
			}
			if err.Error() != res.Reason {
				t.Errorf("error = %q, want the Reason %q", err, res.Reason)
			}
			if started {
				t.Error("Started was called for a task that did not start")
			}
		})
	}
}

// ignoreTerm is a script that ignores SIGTERM, as does the sleep it
// starts in the background, prints the sleep's pid and waits.
const ignoreTerm = `trap '' TERM; sleep 1000 & echo $!; wait`

func TestExecTimeout(t *testing.T) {
	tests := []struct {
		name    string
		command []string
		timeout time.Duration
		grace   time.Duration
	}{
		{"cooperative", []string{"sleep", "1000"}, 300 * time.Millisecond,
			0},
		{"ignores TERM", []string{"sh", "-c", ignoreTerm}, time.Second,
			300 * time.Millisecond},
	}
	e := newExec(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout syncBuffer
			start := time.Now()
			got, err := runTask(t, e, Task{
				Command: tt.command,
				Stdout:  &stdout,
				Timeout: tt.timeout,
				Grace:   tt.grace,
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			want := Result{ExitCode: ExitTimeout, TimedOut: true,
				Reason: "timeout after " + tt.timeout.String()}
			if got != want {
				t.Errorf("Run = %+v, want %+v", got, want)
			}
			if el := time.Since(start); el < tt.timeout+tt.grace {
				t.Errorf("Run took %s, want at least timeout+grace %s",
					el, tt.timeout+tt.grace)
			}
			checkGone(t, stdout.String())
		})
	}
}

// checkGone checks that the pids listed in out, one a line, end. Run has
// sent them SIGKILL when it returns, but the kernel may take a moment to
// finish them off.
func checkGone(t *testing.T, out string) {
	t.Helper()
	for _, line := range strings.Fields(out) {
		pid, err := strconv.Atoi(line)
		if err != nil {
			t.Fatalf("output line %q is not a pid", line)
		}
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
		waitFor(t, fmt.Sprintf("pid %d to end", pid), func() bool {
			return !running(t, pid)
		})
	}
}

func TestExecCancel(t *testing.T) {
	tests := []struct {
		name    string
		command []string
		grace   time.Duration
	}{
		{"cooperative", []string{"sh", "-c", "sleep 1000 & echo $!; wait"},
			time.Minute},
		{"ignores TERM", []string{"sh", "-c", ignoreTerm},
			300 * time.Millisecond},
	}
	e := newExec(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stdout syncBuffer
			type ran struct {
				res Result
				err error
			}
			done := make(chan ran, 1)
			finished := make(chan struct{})
			t.Cleanup(func() { cancel(); <-finished })
			go func() {
				defer close(finished)
				res, err := e.Run(ctx, Task{
					Command: tt.command,
					Dir:     t.TempDir(),
					Stdout:  &stdout,
					Grace:   tt.grace,
				})
				done <- ran{res, err}
			}()
			waitFor(t, "the task to print its child's pid", func() bool {
				return strings.HasSuffix(stdout.String(), "\n")
			})
			cancel()
			cancelled := time.Now()
			got := <-done
			if got.err != nil {
				t.Fatalf("Run: %v", got.err)
			}
			want := Result{ExitCode: ExitCancelled, Cancelled: true,
				Reason: "cancelled"}
			if got.res != want {
				t.Errorf("Run = %+v, want %+v", got.res, want)
			}
			el := time.Since(cancelled)
			if tt.grace < time.Minute && el < tt.grace {
				t.Errorf("Run returned %s after cancel, before the %s "+
					"grace", el, tt.grace)
			}
			if tt.grace == time.Minute && el > tt.grace/2 {
				t.Errorf("Run returned %s after cancel; SIGTERM should "+
					"have ended it", el)
			}
			checkGone(t, stdout.String())
		})
	}
}

func TestExecCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	got, err := newExec(t, nil).Run(ctx, Task{
		Command: []string{"touch", marker},
		Dir:     dir,
	})
	want := Result{ExitCode: ExitCancelled, Cancelled: true,
		Reason: "cancelled"}
	if err != nil || got != want {
		t.Errorf("Run = %+v, %v; want %+v, nil", got, err, want)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran although the context was done")
	}
}

func TestExecKillsProcessGroup(t *testing.T) {
	tests := []struct {
		name   string
		script string
	}{
		{"background child holds stdout", "sleep 1000 & echo $!"},
		{"background child without output",
			"sleep 1000 >/dev/null 2>&1 & echo $!"},
		{"nested shells", "sh -c 'sleep 1000 & echo $!' & wait"},
	}
	e := newExec(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout syncBuffer
			got, err := runTask(t, e, Task{
				Command: []string{"sh", "-c", tt.script},
				Stdout:  &stdout,
			})
			if err != nil || got != (Result{}) {
				t.Fatalf("Run = %+v, %v; want a clean exit", got, err)
			}
			checkGone(t, stdout.String())
		})
	}
}

func TestExecEscapedChildDoesNotHang(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid on this system")
	}
	// The child leaves the group with setsid and keeps stdout open; the
	// script ends once the child runs sleep, so after it left the group.
	const script = `setsid sleep 1000 & pid=$!
while [ "$(cat /proc/$pid/comm)" != sleep ]; do sleep 0.01; done
echo $pid`
	var stdout syncBuffer
	got, err := runTask(t, newExec(t, nil), Task{
		Command: []string{"sh", "-c", script},
		Stdout:  &stdout,
	})
	pid, perr := strconv.Atoi(strings.TrimSpace(stdout.String()))
	if perr != nil {
		t.Fatalf("stdout %q, want the escaped child's pid", stdout.String())
	}
	defer func() { _ = syscall.Kill(pid, syscall.SIGKILL) }()
	if err != nil || got != (Result{}) {
		t.Fatalf("Run = %+v, %v; want a clean exit", got, err)
	}
	if !running(t, pid) {
		t.Errorf("escaped pid %d does not run; the test proves nothing", pid)
	}
}

func TestExecStartedBeforeOutput(t *testing.T) {
	var stdout syncBuffer
	var handle string
	calls := 0
	var outAtStart string
	res, err := runTask(t, newExec(t, nil), Task{
		Command: []string{"sh", "-c", "echo $$"},
		Stdout:  &stdout,
		Started: func(h string) {
			calls++
			handle = h
			// Give the task time to write; none of it may arrive yet.
			time.Sleep(100 * time.Millisecond)
			outAtStart = stdout.String()
		},
	})
	if err != nil || res != (Result{}) {
		t.Fatalf("Run = %+v, %v; want a clean exit", res, err)
	}
	if calls != 1 {
		t.Fatalf("Started called %d times, want 1", calls)
	}
	if outAtStart != "" {
		t.Errorf("output before Started returned: %q", outAtStart)
	}
	h, err := ParseProcHandle("exec", handle)
	if err != nil {
		t.Fatalf("Started handle: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(stdout.String()))
	if h.PID != pid || h.PGID != pid {
		t.Errorf("handle %q, want pid and pgid %d", handle, pid)
	}
	if h.Start == 0 {
		t.Errorf("handle %q has no start time", handle)
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) {
	return 0, errors.New("disk full")
}

func TestExecFailingWriterDoesNotBlockTask(t *testing.T) {
	res, err := runTask(t, newExec(t, nil), Task{
		Command: []string{"head", "-c", "4000000", "/dev/zero"},
		Stdout:  failWriter{},
	})
	if err != nil || res != (Result{}) {
		t.Errorf("Run = %+v, %v; want a clean exit", res, err)
	}
}

func TestExecConcurrentRuns(t *testing.T) {
	e := newExec(t, nil)
	const n = 8
	var wg sync.WaitGroup
	outs := make([]bytes.Buffer, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := runTask(t, e, Task{
				Attempt: i,
				Command: []string{"sh", "-c", "echo $BLIXARD_ATTEMPT; " +
					"exit $BLIXARD_ATTEMPT"},
				Stdout: &outs[i],
			})
			if err == nil && res != exitResult(i) {
				err = fmt.Errorf("Run = %+v, want %+v", res, exitResult(i))
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("task %d: %v", i, errs[i])
		}
		if got, want := outs[i].String(), fmt.Sprintf("%d\n", i); got != want {
			t.Errorf("task %d: stdout %q, want %q", i, got, want)
		}
	}
}

func TestExecReap(t *testing.T) {
	tests := []struct {
		name string
		mode string
	}{
		{"orphan", "orphan"},
		{"orphan ignoring TERM", "orphan-ignore-term"},
	}
	e := newExec(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startOrphan(t, tt.mode)
			if !running(t, h.PID) {
				t.Fatalf("helper's pid %d is not running", h.PID)
			}
			if err := e.Reap(context.Background(), h.String()); err != nil {
				t.Fatalf("Reap: %v", err)
			}
			if running(t, h.PID) {
				t.Errorf("pid %d still runs after Reap", h.PID)
			}
		})
	}
}

func TestExecReapDuringRun(t *testing.T) {
	e := newExec(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	handles := make(chan string, 1)
	type ran struct {
		res Result
		err error
	}
	done := make(chan ran, 1)
	go func() {
		res, err := e.Run(ctx, Task{
			Command: []string{"sleep", "1000"},
			Dir:     t.TempDir(),
			Started: func(h string) { handles <- h },
		})
		done <- ran{res, err}
	}()
	if err := e.Reap(context.Background(), <-handles); err != nil {
		t.Fatalf("Reap: %v", err)
	}
	got := <-done
	want := Result{ExitCode: 143, Reason: "killed by signal 15 (terminated)"}
	if got.err != nil || got.res != want {
		t.Errorf("Run = %+v, %v; want %+v, nil", got.res, got.err, want)
	}
}

func TestExecReapGoneOrReused(t *testing.T) {
	e := newExec(t, nil)

	var dead string
	_, err := runTask(t, e, Task{
		Command: []string{"true"},
		Started: func(h string) { dead = h },
	})
	if err != nil {
		t.Fatal(err)
	}

	other := exec.Command("sleep", "1000")
	other.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = other.Process.Kill()
		_ = other.Wait()
	}()
	st, err := ReadProcStat(other.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	pid := other.Process.Pid
	reused := ProcHandle{Kind: "exec", PID: pid, PGID: pid,
		Start: st.Start + 1}

	tests := []struct {
		name   string
		handle string
	}{
		{"exited", dead},
		{"pid with another start time", reused.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := e.Reap(context.Background(), tt.handle); err != nil {
				t.Errorf("Reap(%q) = %v, want nil", tt.handle, err)
			}
		})
	}
	if !running(t, pid) {
		t.Errorf("Reap of a handle with a wrong start time ended pid %d",
			pid)
	}
}

func TestExecReapBadHandle(t *testing.T) {
	own := syscall.Getpgrp()
	tests := []struct {
		handle string
		want   string
	}{
		{"", "want exec:PID:PGID:START"},
		{"exec:", "want exec:PID:PGID:START"},
		{"docker:abc", "want exec:PID:PGID:START"},
		{"exec:1:2", "want exec:PID:PGID:START"},
		{"exec:1:2:3:4", "want exec:PID:PGID:START"},
		{"exec:a:b:c", "decimal numbers"},
		{"exec:-1:-1:0", "at least 2"},
		{"exec:0:0:0", "at least 2"},
		{"exec:1:1:0", "at least 2"},
		{"exec:99999999999999999999:2:3", "decimal numbers"},
		{"exec:" + strings.Repeat("9", 100), "longer than 64 bytes"},
		{fmt.Sprintf("exec:%d:%d:0", own, own), "own process group"},
	}
	e := newExec(t, nil)
	for _, tt := range tests {
		t.Run(tt.handle, func(t *testing.T) {
			err := e.Reap(context.Background(), tt.handle)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Reap(%q) = %v, want an error containing %q",
					tt.handle, err, tt.want)
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	tail := " 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 4242 20 21"
	tests := []struct {
		name      string
		in        string
		wantState byte
		wantStart uint64
		wantErr   bool
	}{
		{"plain", "123 (sleep) S" + tail, 'S', 4242, false},
		{"odd name", "123 (a) (b c) Z" + tail, 'Z', 4242, false},
		{"no name", "123 sleep S" + tail, 0, 0, true},
		{"short", "123 (sleep) S 1 2 3", 0, 0, true},
		{"bad start", "123 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 " +
			"17 18 x 20", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStat error = %v, want error %v", err,
					tt.wantErr)
			}
			if got.State != tt.wantState || got.Start != tt.wantStart {
				t.Errorf("parseStat = %+v, want state %q start %d", got,
					tt.wantState, tt.wantStart)
			}
		})
	}
}

func TestExecProbe(t *testing.T) {
	info, err := newExec(t, nil).Probe(context.Background())
	if err != nil || info.Version != "" || len(info.Labels) != 0 {
		t.Errorf("Probe = %+v, %v; want empty Info, nil", info, err)
	}
}

func BenchmarkExecTrue(b *testing.B) {
	e := NewExec(ExecConfig{})
	dir := b.TempDir()
	ctx := context.Background()
	for b.Loop() {
		res, err := e.Run(ctx, Task{Command: []string{"true"}, Dir: dir})
		if err != nil || res.ExitCode != 0 {
			b.Fatalf("Run = %+v, %v", res, err)
		}
	}
}
