package plugin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blixard/blixard/executor"
)

// sandboxPath is the example plugin shipped in examples/plugins.
var sandboxPath = filepath.Join("..", "..", "examples", "plugins",
	"blixard-plugin-sandbox")

func testdata(name string) string { return filepath.Join("testdata", name) }

func newPlugin(t testing.TB, name, path string) *Plugin {
	t.Helper()
	p, err := New(Config{Name: name, Path: path, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
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

// outcome is what a run produced.
type outcome struct {
	res    executor.Result
	err    error
	stdout string
	stderr string
	handle string
}

// run runs task with a fresh Dir (unless set) and captured output, and
// fails the test if Run takes longer than a minute.
func run(ctx context.Context, t *testing.T, p *Plugin,
	task executor.Task) outcome {
	t.Helper()
	if task.Dir == "" {
		task.Dir = t.TempDir()
	}
	var stdout, stderr bytes.Buffer
	task.Stdout, task.Stderr = &stdout, &stderr
	var handle string
	started := task.Started
	task.Started = func(h string) {
		handle = h
		if started != nil {
			started(h)
		}
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := p.Run(ctx, task)
		done <- outcome{res, err, stdout.String(), stderr.String(), handle}
	}()
	select {
	case got := <-done:
		t.Logf("result %+v err %v stderr %q", got.res, got.err,
			clip([]byte(got.stderr), 500))
		return got
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute")
		return outcome{}
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"empty name", Config{Path: sandboxPath},
			`plugin config: name "": want a lowercase letter`},
		{"upper case name", Config{Name: "Sandbox", Path: sandboxPath},
			`plugin config: name "Sandbox"`},
		{"long name", Config{Name: strings.Repeat("a", 33),
			Path: sandboxPath}, "plugin config: name"},
		{"missing path", Config{Name: "x", Path: "testdata/missing"},
			`plugin config: path "testdata/missing": stat `},
		{"empty path", Config{Name: "x"}, `plugin config: path "": empty`},
		{"not executable", Config{Name: "x", Path: testdata("noexec")},
			`plugin config: path "testdata/noexec": not executable`},
		{"directory", Config{Name: "x", Path: dir},
			"not a regular file"},
		{"not in PATH", Config{Name: "x",
			Path: "blixard-plugin-nonexistent"}, `executable file not ` +
			`found in $PATH`},
		{"bad env", Config{Name: "x", Path: sandboxPath,
			Env: map[string]string{"A=B": ""}}, `plugin config: env "A=B"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: got %v, want an error containing %q",
					err, tt.want)
			}
		})
	}

	p := newPlugin(t, "sandbox", sandboxPath)
	if !filepath.IsAbs(p.Path()) || p.Name() != "sandbox" {
		t.Errorf("got name %q path %q, want sandbox and an absolute path",
			p.Name(), p.Path())
	}
}

func TestProbe(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		want    executor.Info
		wantErr string
	}{
		{"sandbox", sandboxPath, executor.Info{Version: "1.0.0",
			Labels: map[string]string{"sandbox.nice": "10",
				"sandbox.env": "clean"}}, ""},
		{"pre-release, no labels", testdata("inspect"),
			executor.Info{Version: "0.1.0-rc.1"}, ""},
		{"junk", testdata("junk"), executor.Info{},
			`plugin p: describe: output is not a JSON object: invalid ` +
				`character 'h' looking for beginning of value (got ` +
				`"hello, I am not JSON\n"): executor unavailable`},
		{"failing", testdata("failing"), executor.Info{},
			"plugin p: describe: exit status 3 (stderr: cannot reach the " +
				"cluster at 127.0.0.1:6443): executor unavailable"},
		{"protocol 2", testdata("protocol2"), executor.Info{},
			"plugin p: describe: protocol 2: want 1: executor unavailable"},
		{"bad label", testdata("badlabel"), executor.Info{},
			`plugin p: describe: label key "has space": want at most 64`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPlugin(t, "p", tt.path)
			got, err := p.Probe(context.Background())
			if tt.wantErr != "" {
				if !errors.Is(err, executor.ErrUnavailable) ||
					!strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Errorf("Probe error: got %v, want ErrUnavailable "+
						"starting %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Probe: %v", err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Probe: got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestProbeTimeout(t *testing.T) {
	p := newPlugin(t, "slow", testdata("slow"))
	start := time.Now()
	_, err := p.Probe(context.Background())
	want := "plugin slow: describe: no answer within 5s: executor unavailable"
	if err == nil || err.Error() != want {
		t.Errorf("Probe: got %v, want %q", err, want)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Probe took %s, want about %s", d, DescribeTimeout)
	}
}

func TestRunOutput(t *testing.T) {
	p := newPlugin(t, "sandbox", sandboxPath)
	data := make([]byte, 1<<20)
	rand.Read(data)
	data[0], data[len(data)-1] = 0, 0 // NULs and no trailing newline

	tests := []struct {
		name       string
		command    []string
		stdin      []byte
		wantStdout []byte
		wantStderr []byte
	}{
		{"stdin to stdout", []string{"cat"}, data, data, nil},
		{"stdin to stderr", []string{"sh", "-c", "cat >&2"}, data, nil,
			data},
		{"printf", []string{"printf", `a\000b\nc`}, nil,
			[]byte("a\x00b\nc"), nil},
		{"argv kept apart", []string{"printf", "[%s]", "a b", "", "*"},
			nil, []byte("[a b][][*]"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := executor.Task{Command: tt.command,
				Stdin: bytes.NewReader(tt.stdin)}
			got := run(context.Background(), t, p, task)
			if got.err != nil || got.res != (executor.Result{}) {
				t.Fatalf("Run: got %+v, %v; want a clean exit",
					got.res, got.err)
			}
			if got.stdout != string(tt.wantStdout) {
				t.Errorf("stdout: got %d bytes, want %d bytes",
					len(got.stdout), len(tt.wantStdout))
			}
			if got.stderr != string(tt.wantStderr) {
				t.Errorf("stderr: got %d bytes %.60q, want %d bytes",
					len(got.stderr), got.stderr, len(tt.wantStderr))
			}
		})
	}
}

func TestRunExitCodes(t *testing.T) {
	sandbox := newPlugin(t, "sandbox", sandboxPath)
	reasoned := newPlugin(t, "reasoned", testdata("reasoned"))
	// local is the minimal plugin of PROTOCOL.md.
	local := newPlugin(t, "local", testdata("local"))
	tests := []struct {
		name    string
		p       *Plugin
		command []string
		want    executor.Result
		wantErr string
	}{
		{"exit 0", sandbox, []string{"true"}, executor.Result{}, ""},
		{"exit 1", sandbox, []string{"false"},
			executor.Result{ExitCode: 1, Reason: "exit status 1"}, ""},
		{"exit 42", sandbox, []string{"sh", "-c", "exit 42"},
			executor.Result{ExitCode: 42, Reason: "exit status 42"}, ""},
		{"killed", sandbox, []string{"sh", "-c", "kill -KILL $$"},
			executor.Result{ExitCode: 137,
				Reason: "killed by signal 9 (killed)"}, ""},
		{"command not found", sandbox, []string{"no-such-command"},
			executor.Result{ExitCode: executor.ExitNotRun,
				Reason: "plugin sandbox: command no-such-command not found"},
			"plugin sandbox: command no-such-command not found"},
		{"empty command", sandbox, nil,
			executor.Result{ExitCode: executor.ExitNotRun,
				Reason: "plugin sandbox: command is empty"},
			"plugin sandbox: command is empty"},
		{"minimal plugin", local, []string{"sh", "-c", `exit $CODE`},
			executor.Result{ExitCode: 9, Reason: "exit status 9"}, ""},
		{"reason from result file", reasoned, []string{"5"},
			executor.Result{ExitCode: 5, Reason: "backend said no"}, ""},
		{"not run from result file", reasoned, []string{"not-run"},
			executor.Result{ExitCode: executor.ExitNotRun,
				Reason: "plugin reasoned: no node has a GPU"},
			"plugin reasoned: no node has a GPU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(context.Background(), t, tt.p,
				executor.Task{Command: tt.command,
					Env: map[string]string{"CODE": "9"}})
			if got.res != tt.want {
				t.Errorf("result: got %+v, want %+v", got.res, tt.want)
			}
			gotErr := ""
			if got.err != nil {
				gotErr = got.err.Error()
			}
			if gotErr != tt.wantErr {
				t.Errorf("error: got %q, want %q", gotErr, tt.wantErr)
			}
		})
	}
}

func TestRunNotRun(t *testing.T) {
	p := newPlugin(t, "sandbox", sandboxPath)
	tests := []struct {
		name string
		task executor.Task
		want string
	}{
		{"relative dir", executor.Task{Command: []string{"true"},
			Dir: "rel"}, `start: dir "rel": must be an absolute directory`},
		{"bad payload", executor.Task{Command: []string{"true"},
			Payload: json.RawMessage("{")}, "start: payload: not valid JSON"},
		{"bad env", executor.Task{Command: []string{"true"},
			Env: map[string]string{"": "x"}}, `start: env key ""`},
		{"missing dir", executor.Task{Command: []string{"true"},
			Dir: "/nonexistent/blixard"}, "start: plugin "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(context.Background(), t, p, tt.task)
			if got.err == nil || !strings.HasPrefix(got.err.Error(), tt.want) {
				t.Errorf("error: got %v, want prefix %q", got.err, tt.want)
			}
			if got.res.ExitCode != executor.ExitNotRun ||
				got.err != nil && got.res.Reason != got.err.Error() {
				t.Errorf("result: got %+v, want ExitNotRun with the error",
					got.res)
			}
			if got.handle != "" {
				t.Errorf("Started called with %q for a task not run",
					got.handle)
			}
		})
	}
}

func TestRunEnvAndPayload(t *testing.T) {
	t.Setenv("BLIXARD_PEER_SECRET", "do-not-leak")
	t.Setenv("PEER_ONLY", "peer")
	p := newPlugin(t, "sandbox", sandboxPath)
	dir := t.TempDir()
	task := executor.Task{
		JobID:   "job-7",
		Attempt: 3,
		Dir:     dir,
		Command: []string{"sh", "-c", `
			printf 'greeting=%s\n' "$GREETING"
			printf 'quote=%s\n' "$QUOTE"
			printf 'job=%s attempt=%s\n' "$BLIXARD_JOB_ID" "$BLIXARD_ATTEMPT"
			printf 'home=%s pwd=%s\n' "$HOME" "$PWD"
			printf 'peer=%s secret=%s result=%s\n' "${PEER_ONLY:-}" \
				"${BLIXARD_PEER_SECRET:-}" "${BLIXARD_RESULT:-}"
			printf 'payload='; cat "$BLIXARD_PAYLOAD"`},
		Env: map[string]string{
			"GREETING": "hello world",
			"QUOTE":    `it's "quoted" $HOME` + "\nline 2",
		},
		Payload: json.RawMessage(`{"shards": [1, 2], "name": "x"}`),
	}
	got := run(context.Background(), t, p, task)
	if got.err != nil || got.res.ExitCode != 0 {
		t.Fatalf("Run: %+v, %v", got.res, got.err)
	}
	want := "greeting=hello world\n" +
		"quote=it's \"quoted\" $HOME\nline 2\n" +
		"job=job-7 attempt=3\n" +
		"home=" + dir + " pwd=" + dir + "\n" +
		"peer= secret= result=\n" +
		`payload={"shards": [1, 2], "name": "x"}`
	if got.stdout != want {
		t.Errorf("stdout:\ngot  %q\nwant %q", got.stdout, want)
	}
}

func TestRunProtocolFiles(t *testing.T) {
	t.Setenv("BLIXARD_PEER_SECRET", "do-not-leak")
	p, err := New(Config{Name: "inspect", Path: testdata("inspect"),
		Env: map[string]string{"KUBECONFIG": "/etc/kube"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	task := executor.Task{
		JobID: "job-9", Attempt: 2, Dir: dir, Workdir: "/work",
		Image:     "alpine:3",
		Command:   []string{"-c", "echo hi"},
		Env:       map[string]string{"A": "it's", "not-a-shell-name": "x"},
		Mounts:    []executor.Mount{{Source: "/src", Target: "/dst"}},
		Resources: executor.Resources{CPU: 1.5, Memory: 64 << 20},
		Timeout:   90 * time.Second,
		Payload:   json.RawMessage(`[1,2,3]`),
	}
	got := run(context.Background(), t, p, task)
	if got.err != nil || got.res.ExitCode != 0 {
		t.Fatalf("Run: %+v, %v", got.res, got.err)
	}

	if want := "run\n--\n-c\necho hi\n"; got.stderr != want {
		t.Errorf("plugin argv: got %q, want %q", got.stderr, want)
	}
	vars, rest, _ := strings.Cut(got.stdout, "task:\n")
	taskJSON, envSH, _ := strings.Cut(rest, "env.sh:\n")
	for _, want := range []string{
		"pwd=" + dir, "BLIXARD_JOB_ID=job-9", "BLIXARD_ATTEMPT=2",
		"BLIXARD_PROTOCOL=1", "BLIXARD_DIR=" + dir, "BLIXARD_WORKDIR=/work",
		"BLIXARD_IMAGE=alpine:3", "BLIXARD_CPU=1.5",
		"BLIXARD_MEMORY=67108864", "BLIXARD_TIMEOUT_MS=90000",
		"BLIXARD_GRACE_MS=10000",
	} {
		if !strings.Contains(vars, want+"\n") {
			t.Errorf("plugin env lacks %s:\n%s", want, vars)
		}
	}
	if strings.Contains(vars, "do-not-leak") {
		t.Errorf("the peer's BLIXARD_ variable reached the plugin:\n%s", vars)
	}

	var doc map[string]any
	if err := json.Unmarshal([]byte(taskJSON), &doc); err != nil {
		t.Fatalf("task file %q: %v", taskJSON, err)
	}
	want := map[string]any{
		"protocol": 1.0, "job_id": "job-9", "attempt": 2.0,
		"command": []any{"-c", "echo hi"},
		"env":     map[string]any{"A": "it's", "not-a-shell-name": "x"},
		"dir":     dir, "workdir": "/work", "image": "alpine:3",
		"module": "", "module_hash": "",
		"mounts": []any{map[string]any{"source": "/src",
			"target": "/dst", "read_only": false}},
		"resources":  map[string]any{"cpu": 1.5, "memory": 67108864.0},
		"timeout_ms": 90000.0, "grace_ms": 10000.0,
		"payload": []any{1.0, 2.0, 3.0},
	}
	if fmt.Sprint(doc) != fmt.Sprint(want) {
		t.Errorf("task file:\ngot  %v\nwant %v", doc, want)
	}
	if want := "export A='it'\\''s'\n"; envSH != want {
		t.Errorf("env.sh: got %q, want %q", envSH, want)
	}
}

func TestRunResources(t *testing.T) {
	p := newPlugin(t, "sandbox", sandboxPath)
	tests := []struct {
		name    string
		task    executor.Task
		command string
		want    string
	}{
		{"memory limit", executor.Task{Resources: executor.Resources{
			Memory: 512 << 20}}, "ulimit -v", "524288\n"},
		{"no memory limit", executor.Task{}, "ulimit -v", "unlimited\n"},
		{"nice", executor.Task{}, "nice", "10\n"},
		{"workdir", executor.Task{Workdir: "sub/dir"}, "basename $PWD",
			"dir\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.task.Command = []string{"sh", "-c", tt.command}
			got := run(context.Background(), t, p, tt.task)
			if got.err != nil || got.stdout != tt.want {
				t.Errorf("got %q, %v; want %q", got.stdout, got.err, tt.want)
			}
		})
	}
}

func TestRunStop(t *testing.T) {
	sandbox := newPlugin(t, "sandbox", sandboxPath)
	stubborn := newPlugin(t, "stubborn", testdata("stubborn"))
	ignoreTerm := []string{"sh", "-c",
		"trap '' TERM; echo started; while :; do sleep 1; done"}
	timedOut := executor.Result{ExitCode: executor.ExitTimeout,
		Reason: "timeout after 1s", TimedOut: true}
	cancelled := executor.Result{ExitCode: executor.ExitCancelled,
		Reason: "cancelled", Cancelled: true}

	tests := []struct {
		name    string
		p       *Plugin
		command []string
		cancel  bool
		grace   time.Duration
		want    executor.Result
	}{
		{"timeout", sandbox, []string{"sleep", "300"}, false, 0, timedOut},
		{"timeout, command ignores TERM", sandbox, ignoreTerm, false,
			time.Second, timedOut},
		{"timeout, plugin ignores TERM", stubborn, nil, false,
			time.Second, timedOut},
		{"cancel", sandbox, []string{"sleep", "300"}, true, 0, cancelled},
		{"cancel, command ignores TERM", sandbox, ignoreTerm, true,
			time.Second, cancelled},
		{"cancel, plugin ignores TERM", stubborn, nil, true, time.Second,
			cancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			task := executor.Task{Command: tt.command, Grace: tt.grace}
			if tt.cancel {
				task.Started = func(string) {
					time.AfterFunc(time.Second, cancel)
				}
			} else {
				task.Timeout = time.Second
			}
			got := run(ctx, t, tt.p, task)
			if got.err != nil || got.res != tt.want {
				t.Errorf("got %+v, %v; want %+v", got.res, got.err, tt.want)
			}
			h, err := executor.ParseProcHandle("plugin", got.handle)
			if err != nil {
				t.Fatalf("handle: %v", err)
			}
			if m := groupMembers(t, h.PGID); len(m) > 0 {
				t.Errorf("processes left in the plugin's group: %v", m)
			}
		})
	}
}

func TestRunLeftovers(t *testing.T) {
	p := newPlugin(t, "sandbox", sandboxPath)
	got := run(context.Background(), t, p, executor.Task{
		Command: []string{"sh", "-c", "sleep 300 >/dev/null & echo $!"}})
	if got.err != nil || got.res.ExitCode != 0 {
		t.Fatalf("Run: %+v, %v", got.res, got.err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(got.stdout))
	if err != nil {
		t.Fatalf("background pid %q: %v", got.stdout, err)
	}
	if st, err := executor.ReadProcStat(pid); err == nil && st.State != 'Z' {
		t.Errorf("background process %d still runs after Run (state %c)",
			pid, st.State)
	}
}

func TestRunConcurrent(t *testing.T) {
	p := newPlugin(t, "sandbox", sandboxPath)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			want := fmt.Sprintf("task %d", i)
			got := run(context.Background(), t, p, executor.Task{
				Command: []string{"sh", "-c", `printf %s "$MSG"`},
				Env:     map[string]string{"MSG": want}})
			if got.err != nil || got.stdout != want {
				t.Errorf("task %d: got %q, %v; want %q", i, got.stdout,
					got.err, want)
			}
		})
	}
	wg.Wait()
}

func TestRunCancelledBefore(t *testing.T) {
	p := newPlugin(t, "sandbox", sandboxPath)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got := run(ctx, t, p, executor.Task{Command: []string{"true"}})
	if !got.res.Cancelled || got.handle != "" {
		t.Errorf("got %+v, handle %q; want cancelled and nothing started",
			got.res, got.handle)
	}
}

// groupMembers lists the live (not zombie) processes in group pgid.
func groupMembers(t *testing.T, pgid int) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var members []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			members = append(members, fmt.Sprintf("%d (%s)", pid,
				bytes.TrimSpace(b[:i+1])))
		}
	}
	return members
}
