package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blixard/blixard/executor"
)

// guest is the test program in testdata/guest, built for wasip1 once per
// test binary.
var guest struct {
	path string
	hash string
}

// sharedCacheDir is a compilation cache shared by the tests' executors, so
// that each new executor loads the guest's machine code instead of
// compiling it again.
var sharedCacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "blixard-wasm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if err := buildGuest(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		sharedCacheDir = filepath.Join(dir, "cache")
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildGuest(dir string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build guest: %w", err)
	}
	out := filepath.Join(dir, "guest.wasm")
	cmd := exec.Command(gobin, "build", "-o", out, ".")
	cmd.Dir = filepath.Join("testdata", "guest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm",
		"CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build guest: %w\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return err
	}
	guest.path, guest.hash = out, hashOf(b)
	return nil
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// newWasm returns an executor that is closed when the test ends. An empty
// cfg.CacheDir is replaced by the shared one.
func newWasm(t testing.TB, cfg Config) *Wasm {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = sharedCacheDir
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(),
			30*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return w
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t},
		&slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// guestTask is a task that runs the guest with args after argv[0].
func guestTask(args ...string) executor.Task {
	return executor.Task{
		JobID:      "job-1",
		Attempt:    1,
		Module:     guest.path,
		ModuleHash: guest.hash,
		Command:    append([]string{"guest"}, args...),
		Timeout:    time.Minute,
	}
}

// outcome is what a run produced.
type outcome struct {
	res    executor.Result
	err    error
	stdout string
	stderr string
}

func run(t *testing.T, w *Wasm, task executor.Task) outcome {
	t.Helper()
	return runCtx(context.Background(), t, w, task)
}

func runCtx(ctx context.Context, t *testing.T, w *Wasm,
	task executor.Task) outcome {
	t.Helper()
	var stdout, stderr bytes.Buffer
	task.Stdout, task.Stderr = &stdout, &stderr
	res, err := w.Run(ctx, task)
	t.Logf("result %+v err %v stderr %q", res, err, stderr.String())
	return outcome{res, err, stdout.String(), stderr.String()}
}

func TestRunIO(t *testing.T) {
	w := newWasm(t, Config{})
	binary := make([]byte, 200_000)
	rand.Read(binary)
	binary[0], binary[len(binary)-1] = 0, '\r' // no trailing newline

	tests := []struct {
		name       string
		task       executor.Task
		wantCode   int
		wantReason string
		wantOut    string
		wantErr    string
	}{
		{
			name:    "argv",
			task:    withCommand("prog-name", "args", "a b", "", "ü"),
			wantOut: "prog-name\nargs\na b\n\nü\n",
		},
		{
			name: "env",
			task: withEnv(guestTask("env"),
				map[string]string{"B": "two words", "A": "1", "EMPTY": ""}),
			wantOut: "A=1\nB=two words\nEMPTY=\n",
		},
		{
			name:    "stdin to stdout",
			task:    withStdin(guestTask("cat"), bytes.NewReader(binary)),
			wantOut: string(binary),
		},
		{
			name: "stdin to stderr",
			task: withStdin(guestTask("cat-err"),
				strings.NewReader("to stderr")),
			wantErr: "to stderr",
		},
		{
			name: "stdin through a pipe",
			task: withStdin(guestTask("cat"),
				io.MultiReader(onlyReader{bytes.NewReader(binary)})),
			wantOut: string(binary),
		},
		{name: "no stdin", task: guestTask("cat")},
		{name: "exit 0", task: guestTask("exit", "0")},
		{
			name:       "exit 3",
			task:       guestTask("exit", "3"),
			wantCode:   3,
			wantReason: "exit status 3",
		},
		{
			name:       "exit 255",
			task:       guestTask("exit", "255"),
			wantCode:   255,
			wantReason: "exit status 255",
		},
		{
			name:       "trap",
			task:       guestTask("trap"),
			wantCode:   ExitTrap,
			wantReason: "trap: out of bounds memory access",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(t, w, tt.task)
			if got.err != nil {
				t.Fatalf("Run error: %v", got.err)
			}
			if got.res.ExitCode != tt.wantCode {
				t.Errorf("exit code: got %d, want %d",
					got.res.ExitCode, tt.wantCode)
			}
			if got.res.Reason != tt.wantReason {
				t.Errorf("reason: got %q, want %q",
					got.res.Reason, tt.wantReason)
			}
			if got.stdout != tt.wantOut {
				t.Errorf("stdout: got %d bytes %.60q, want %d bytes %.60q",
					len(got.stdout), got.stdout, len(tt.wantOut), tt.wantOut)
			}
			if tt.wantErr != "" && got.stderr != tt.wantErr {
				t.Errorf("stderr: got %q, want %q", got.stderr, tt.wantErr)
			}
		})
	}
}

// onlyReader hides every method but Read, so the adapter cannot tell the
// reader is in memory.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func withCommand(argv ...string) executor.Task {
	task := guestTask()
	task.Command = argv
	return task
}

func withEnv(task executor.Task, env map[string]string) executor.Task {
	task.Env = env
	return task
}

func withStdin(task executor.Task, r io.Reader) executor.Task {
	task.Stdin = r
	return task
}

func TestRunNotRun(t *testing.T) {
	w := newWasm(t, Config{})
	other := filepath.Join(t.TempDir(), "other.wasm")
	if err := os.WriteFile(other, minimalModule(1, false), 0o644); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.wasm")
	if err := os.WriteFile(garbage, []byte("not wasm"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		modify func(*executor.Task)
		want   string
	}{
		{"hash mismatch", func(task *executor.Task) {
			task.Module = other
		}, "has sha256 " + hashOf(minimalModule(1, false)) +
			", task module_hash wants " + guest.hash},
		{"missing module", func(task *executor.Task) {
			task.Module = filepath.Join(t.TempDir(), "missing.wasm")
		}, "read module: open"},
		{"no module", func(task *executor.Task) {
			task.Module = ""
		}, "task module is empty"},
		{"bad hash", func(task *executor.Task) {
			task.ModuleHash = "abc"
		}, `task module_hash "abc" is not a hex sha256`},
		{"not wasm", func(task *executor.Task) {
			task.Module = garbage
			task.ModuleHash = hashOf([]byte("not wasm"))
		}, "compile module " + garbage},
		{"memory below a page", func(task *executor.Task) {
			task.Resources.Memory = 1000
		}, "task resources.memory 1000 is below one 64 KiB page"},
		{"relative mount", func(task *executor.Task) {
			task.Mounts = []executor.Mount{{Source: "data", Target: "/d"}}
		}, `task mounts[0]: source "data" is not an absolute path`},
		{"mount of a file", func(task *executor.Task) {
			task.Mounts = []executor.Mount{{Source: notDir, Target: "/d"}}
		}, "task mounts[0]: source " + notDir + " is not a directory"},
		{"relative target", func(task *executor.Task) {
			task.Mounts = []executor.Mount{{Source: "/", Target: "d"}}
		}, `task mounts[0]: target "d" is not a clean absolute`},
		{"env name with =", func(task *executor.Task) {
			task.Env = map[string]string{"A=B": "c"}
		}, `task env "A=B"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := guestTask("exit", "0")
			tt.modify(&task)
			started := false
			task.Started = func(string) { started = true }
			got := run(t, w, task)
			if got.err == nil || !strings.Contains(got.err.Error(), tt.want) {
				t.Fatalf("error: got %v, want one containing %q",
					got.err, tt.want)
			}
			if got.res.ExitCode != executor.ExitNotRun {
				t.Errorf("exit code: got %d, want %d",
					got.res.ExitCode, executor.ExitNotRun)
			}
			if got.res.Reason != got.err.Error() {
				t.Errorf("reason: got %q, want the error %q",
					got.res.Reason, got.err)
			}
			if started {
				t.Error("Started was called for a task that did not start")
			}
		})
	}
}

func TestRunFilesystem(t *testing.T) {
	w := newWasm(t, Config{})
	rw, ro, secret := t.TempDir(), t.TempDir(), t.TempDir()
	mustWrite(t, filepath.Join(ro, "in.txt"), "read me")
	mustWrite(t, filepath.Join(secret, "secret.txt"), "hidden")
	mounts := []executor.Mount{
		{Source: rw, Target: "/out"},
		{Source: ro, Target: "/in", ReadOnly: true},
	}

	tests := []struct {
		name     string
		args     []string
		mounts   []executor.Mount
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"write granted", []string{"write", "/out/f.txt", "hello"},
			mounts, 0, "", ""},
		{"read granted", []string{"read", "/in/in.txt"},
			mounts, 0, "read me", ""},
		{"write read-only", []string{"write", "/in/new.txt", "x"},
			mounts, 3, "", "write: open /in/new.txt"},
		{"read outside mounts", []string{"read", secret + "/secret.txt"},
			mounts, 4, "", "read: open " + secret},
		{"escape a mount", []string{"read", "/in/../../" + secret +
			"/secret.txt"}, mounts, 4, "", "read: open"},
		{"read host file without mounts", []string{"read", "/etc/hostname"},
			nil, 4, "", "read: open /etc/hostname"},
		{"write without mounts", []string{"write", "/tmp/x", "x"},
			nil, 3, "", "write: open /tmp/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := guestTask(tt.args...)
			task.Mounts = tt.mounts
			got := run(t, w, task)
			if got.err != nil {
				t.Fatalf("Run error: %v", got.err)
			}
			if got.res.ExitCode != tt.wantCode {
				t.Errorf("exit code: got %d, want %d",
					got.res.ExitCode, tt.wantCode)
			}
			if got.stdout != tt.wantOut {
				t.Errorf("stdout: got %q, want %q", got.stdout, tt.wantOut)
			}
			if !strings.Contains(got.stderr, tt.wantErr) {
				t.Errorf("stderr: got %q, want it to contain %q",
					got.stderr, tt.wantErr)
			}
		})
	}

	b, err := os.ReadFile(filepath.Join(rw, "f.txt"))
	if err != nil || string(b) != "hello" {
		t.Errorf("host file written through /out: got %q, %v; want hello",
			b, err)
	}
	if _, err := os.Stat(filepath.Join(ro, "new.txt")); err == nil {
		t.Error("a file was created in the read-only mount")
	}
}

func mustWrite(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRunMemoryLimit(t *testing.T) {
	w := newWasm(t, Config{MaxMemory: 48 << 20})
	tests := []struct {
		name       string
		memory     int64
		allocMiB   int
		wantOK     bool
		wantReason string
	}{
		{"within task limit", 32 << 20, 8, true, ""},
		{"past task limit", 32 << 20, 64, false, "memory limit 32MiB exceeded"},
		{"rounded down to pages", 32<<20 + 1000, 64, false,
			"memory limit 32MiB exceeded"},
		{"capped by max memory", 1 << 30, 64, false,
			"memory limit 48MiB exceeded"},
		{"no task limit", 0, 64, false, "memory limit 48MiB exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := guestTask("alloc", strconv.Itoa(tt.allocMiB))
			task.Resources.Memory = tt.memory
			got := run(t, w, task)
			if got.err != nil {
				t.Fatalf("Run error: %v", got.err)
			}
			if tt.wantOK {
				want := fmt.Sprintf("allocated %d MiB\n", tt.allocMiB)
				if got.res.ExitCode != 0 || got.stdout != want {
					t.Errorf("got exit %d stdout %q, want exit 0 stdout %q",
						got.res.ExitCode, got.stdout, want)
				}
				return
			}
			if got.res.ExitCode == 0 {
				t.Errorf("exit code: got 0, want a failure")
			}
			if !strings.HasPrefix(got.res.Reason, tt.wantReason) {
				t.Errorf("reason: got %q, want prefix %q",
					got.res.Reason, tt.wantReason)
			}
		})
	}
}

func TestRunInitialMemoryTooLarge(t *testing.T) {
	w := newWasm(t, Config{})
	bin := minimalModule(2, false)
	path := filepath.Join(t.TempDir(), "two-pages.wasm")
	if err := os.WriteFile(path, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	task := executor.Task{Module: path, ModuleHash: hashOf(bin),
		Resources: executor.Resources{Memory: 64 << 10}}
	got := run(t, w, task)
	want := `module memory "memory" starts at 128KiB, above the memory ` +
		`limit 64KiB`
	if got.err == nil || got.err.Error() != want {
		t.Errorf("error: got %v, want %q", got.err, want)
	}
	if got.res.ExitCode != executor.ExitNotRun {
		t.Errorf("exit code: got %d, want %d", got.res.ExitCode,
			executor.ExitNotRun)
	}

	task.Resources.Memory = 128 << 10
	if got := run(t, w, task); got.err != nil || got.res.ExitCode != 0 {
		t.Errorf("with room for 2 pages: got %+v, %v; want exit 0",
			got.res, got.err)
	}
}

func TestRunHandmadeModules(t *testing.T) {
	w := newWasm(t, Config{})
	tests := []struct {
		name       string
		trap       bool
		wantCode   int
		wantReason string
	}{
		{"start returns", false, 0, ""},
		{"unreachable", true, ExitTrap, "trap: unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := minimalModule(1, tt.trap)
			path := filepath.Join(t.TempDir(), "m.wasm")
			if err := os.WriteFile(path, bin, 0o644); err != nil {
				t.Fatal(err)
			}
			got := run(t, w, executor.Task{Module: path,
				ModuleHash: hashOf(bin)})
			if got.err != nil {
				t.Fatalf("Run error: %v", got.err)
			}
			if got.res.ExitCode != tt.wantCode ||
				got.res.Reason != tt.wantReason {
				t.Errorf("got exit %d reason %q, want exit %d reason %q",
					got.res.ExitCode, got.res.Reason, tt.wantCode,
					tt.wantReason)
			}
		})
	}
}

// minimalModule encodes a module that exports a memory of pages pages and
// a _start that returns, or executes unreachable when trap is set.
func minimalModule(pages byte, trap bool) []byte {
	section := func(id byte, body ...byte) []byte {
		return append([]byte{id, byte(len(body))}, body...)
	}
	code := []byte{0x00} // no locals
	if trap {
		code = append(code, 0x00) // unreachable
	}
	code = append(code, 0x0b) // end
	m := []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}
	m = append(m, section(1, 0x01, 0x60, 0x00, 0x00)...) // type () -> ()
	m = append(m, section(3, 0x01, 0x00)...)             // func 0: type 0
	m = append(m, section(5, 0x01, 0x00, pages)...)      // memory, min
	m = append(m, section(7, 0x02,                       // exports
		0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00,
		0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00)...)
	body := append([]byte{byte(len(code))}, code...)
	m = append(m, section(10, append([]byte{0x01}, body...)...)...)
	return m
}

func TestRunTimeout(t *testing.T) {
	w := newWasm(t, Config{})
	blocked, unblock := io.Pipe()
	defer unblock.Close()
	tests := []struct {
		name string
		task executor.Task
	}{
		{"busy loop", guestTask("spin")},
		{"sleep", guestTask("sleep", "1h")},
		{"waiting for stdin", withStdin(guestTask("cat"), blocked)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.task.Timeout = time.Second
			got := runWithin(t, w, context.Background(), tt.task)
			want := executor.Result{ExitCode: executor.ExitTimeout,
				Reason: "timeout after 1s", TimedOut: true}
			if got.err != nil || got.res != want {
				t.Errorf("got %+v, %v; want %+v", got.res, got.err, want)
			}
		})
	}
}

// runWithin runs task and fails the test if Run does not return within a
// bound far longer than any stop should take.
func runWithin(t *testing.T, w *Wasm, ctx context.Context,
	task executor.Task) outcome {
	t.Helper()
	done := make(chan outcome, 1)
	go func() { done <- runCtx(ctx, t, w, task) }()
	select {
	case got := <-done:
		return got
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return 60s after the task should have stopped")
		return outcome{}
	}
}

func TestRunCancel(t *testing.T) {
	w := newWasm(t, Config{})
	for _, mode := range [][]string{{"spin"}, {"sleep", "1h"}} {
		t.Run(mode[0], func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			task := guestTask(mode...)
			var handle *string
			task.Started = func(h string) {
				handle = &h
				time.AfterFunc(200*time.Millisecond, cancel)
			}
			got := runWithin(t, w, ctx, task)
			want := executor.Result{ExitCode: executor.ExitCancelled,
				Reason: "cancelled", Cancelled: true}
			if got.err != nil || got.res != want {
				t.Errorf("got %+v, %v; want %+v", got.res, got.err, want)
			}
			if handle == nil || *handle != "" {
				t.Errorf("Started: got %v, want a call with \"\"", handle)
			}
		})
	}
}

func TestClock(t *testing.T) {
	w := newWasm(t, Config{})
	got := run(t, w, guestTask("clock"))
	sec, err := strconv.ParseInt(strings.TrimSpace(got.stdout), 10, 64)
	if err != nil {
		t.Fatalf("guest clock output %q: %v", got.stdout, err)
	}
	if d := time.Since(time.Unix(sec, 0)); d < -time.Minute ||
		d > time.Minute {
		t.Errorf("guest clock: got %s, %s away from the host's",
			time.Unix(sec, 0), d)
	}
}

func TestRandom(t *testing.T) {
	w := newWasm(t, Config{})
	a, b := run(t, w, guestTask("rand")), run(t, w, guestTask("rand"))
	if len(a.stdout) != 33 || a.stdout == b.stdout {
		t.Errorf("random bytes of two runs: got %q and %q, want two "+
			"different 16-byte values", a.stdout, b.stdout)
	}
}

func TestCompileCache(t *testing.T) {
	w := newWasm(t, Config{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if got := run(t, w, guestTask("exit", "0")); got.err != nil {
				t.Errorf("Run: %v", got.err)
			}
		})
	}
	wg.Wait()
	run(t, w, guestTask("exit", "0"))
	if got := w.compiles.Load(); got != 1 {
		t.Errorf("compiles after 5 runs of one module: got %d, want 1", got)
	}

	other := minimalModule(1, false)
	path := filepath.Join(t.TempDir(), "other.wasm")
	if err := os.WriteFile(path, other, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, w, executor.Task{Module: path, ModuleHash: hashOf(other)})
	if got := w.compiles.Load(); got != 2 {
		t.Errorf("compiles after a second module: got %d, want 2", got)
	}
}

func TestCompileCacheEviction(t *testing.T) {
	w := newWasm(t, Config{})
	dir := t.TempDir()
	hashes := make([]string, maxCachedModules+1)
	for i := range hashes {
		// Modules with different memory sizes hash differently.
		bin := minimalModule(byte(i+1), false)
		path := filepath.Join(dir, fmt.Sprintf("m%d.wasm", i))
		if err := os.WriteFile(path, bin, 0o644); err != nil {
			t.Fatal(err)
		}
		hashes[i] = hashOf(bin)
		got := run(t, w, executor.Task{Module: path, ModuleHash: hashes[i]})
		if got.err != nil || got.res.ExitCode != 0 {
			t.Fatalf("run module %d: %+v, %v", i, got.res, got.err)
		}
	}
	w.modules.mu.Lock()
	n := len(w.modules.entries)
	_, firstKept := w.modules.entries[hashes[0]]
	w.modules.mu.Unlock()
	if n != maxCachedModules || firstKept {
		t.Errorf("cache after %d modules: got %d entries (first kept: %v), "+
			"want %d without the least recently used", len(hashes), n,
			firstKept, maxCachedModules)
	}
}

func TestDiskCache(t *testing.T) {
	dir := t.TempDir()
	bin := minimalModule(1, true)
	path := filepath.Join(t.TempDir(), "m.wasm")
	if err := os.WriteFile(path, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	task := executor.Task{Module: path, ModuleHash: hashOf(bin)}

	w1 := newWasm(t, Config{CacheDir: dir})
	if got := run(t, w1, task); got.res.ExitCode != ExitTrap {
		t.Fatalf("first run: got %+v, %v, want exit %d", got.res, got.err,
			ExitTrap)
	}
	before := cacheFiles(t, dir)
	if len(before) == 0 {
		t.Fatalf("cache dir %s is empty after a compile", dir)
	}
	if err := w1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A second executor on the same directory loads the machine code
	// and writes nothing new.
	w2 := newWasm(t, Config{CacheDir: dir})
	if got := run(t, w2, task); got.res.ExitCode != ExitTrap {
		t.Fatalf("run from the disk cache: got %+v, %v, want exit %d",
			got.res, got.err, ExitTrap)
	}
	after := cacheFiles(t, dir)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("cache files changed on a hit:\nbefore %v\nafter  %v",
			before, after)
	}
}

// cacheFiles lists the files under dir with their modification times.
func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry,
		err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, fmt.Sprintf("%s@%d", p, fi.ModTime().UnixNano()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestProbe(t *testing.T) {
	w := newWasm(t, Config{})
	info, err := w.Probe(context.Background())
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if info.Version != "1.12.0" {
		t.Errorf("version: got %q, want 1.12.0", info.Version)
	}
	if got := info.Labels["wasm.wasi"]; got != "preview1" {
		t.Errorf("label wasm.wasi: got %q, want preview1", got)
	}
	if w.Name() != "wasm" {
		t.Errorf("Name: got %q, want wasm", w.Name())
	}
}

func TestClose(t *testing.T) {
	w := newWasm(t, Config{})
	started := make(chan struct{})
	task := guestTask("spin")
	task.Started = func(string) { close(started) }
	done := make(chan outcome, 1)
	go func() { done <- run(t, w, task) }()
	<-started

	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := <-done
	want := executor.Result{ExitCode: executor.ExitCancelled,
		Reason: "cancelled: wasm executor closed", Cancelled: true}
	if got.res != want {
		t.Errorf("task running at Close: got %+v, want %+v", got.res, want)
	}

	after := run(t, w, guestTask("exit", "0"))
	if after.err == nil || after.res.ExitCode != executor.ExitNotRun {
		t.Errorf("Run after Close: got %+v, %v; want ExitNotRun",
			after.res, after.err)
	}
	if _, err := w.Probe(context.Background()); !errors.Is(err,
		executor.ErrUnavailable) {
		t.Errorf("Probe after Close: got %v, want ErrUnavailable", err)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	mustWrite(t, file, "")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative memory", Config{MaxMemory: -1},
			"wasm config: max_memory -1 is negative"},
		{"memory below a page", Config{MaxMemory: 100},
			"wasm config: max_memory 100 is below one 64 KiB page"},
		{"memory past 4 GiB", Config{MaxMemory: 5 << 30},
			"wasm config: max_memory 5368709120 is above 4 GiB"},
		{"cache dir is a file", Config{CacheDir: file},
			"open wasm cache dir " + file},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := New(tt.cfg)
			if err == nil {
				w.Close(context.Background())
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("New: got %v, want an error starting %q", err, tt.want)
			}
		})
	}
}

func BenchmarkRunCached(b *testing.B) {
	w := newWasm(b, Config{Logger: slog.New(slog.DiscardHandler)})
	task := guestTask("exit", "0")
	task.Stdout, task.Stderr = io.Discard, io.Discard
	if _, err := w.Run(context.Background(), task); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if res, err := w.Run(context.Background(), task); err != nil ||
			res.ExitCode != 0 {
			b.Fatalf("Run: %+v, %v", res, err)
		}
	}
	b.StopTimer()
	if got := w.compiles.Load(); got != 1 {
		b.Errorf("compiles: got %d, want 1", got)
	}
}
