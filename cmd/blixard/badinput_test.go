package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// badInputTimeout bounds a command that should refuse its input at
// once; one that wrongly starts a peer is stopped after it.
const badInputTimeout = 20 * time.Second

// TestBadInput feeds the CLI bad specs, flags and arguments. Each must
// exit 2 with one line on stderr that names what is wrong, print nothing
// on stdout and write nothing: no data dir, no job.
func TestBadInput(t *testing.T) {
	p := startPeer(t, "peer")
	api := p.api
	dirs := t.TempDir()
	spec := func(name string) string {
		return filepath.Join("testdata", "bad", name+".yaml")
	}
	// peerArgs flags keep a peer that wrongly starts off the network.
	peerArgs := func(dir string, flags ...string) []string {
		return append([]string{"peer", "--data-dir", filepath.Join(dirs, dir),
			"--api", "127.0.0.1:0", "--no-mdns"}, flags...)
	}
	loopback := []string{"--listen", "/ip4/127.0.0.1/udp/0/quic-v1"}

	cases := []struct {
		name    string
		args    []string
		want    []string // stderr has each
		dataDir string   // must not exist afterwards
	}{
		{name: "spec with unknown field",
			args: []string{"submit", "--api", api, spec("unknown-field")},
			want: []string{"unknown-field.yaml", "colour"}},
		{name: "malformed YAML",
			args: []string{"submit", "--api", api, spec("malformed")},
			want: []string{"malformed.yaml", "line "}},
		{name: "two documents",
			args: []string{"submit", "--api", api, spec("two-documents")},
			want: []string{"two-documents.yaml", "one job per file"}},
		{name: "name with spaces",
			args: []string{"submit", "--api", api, spec("name-with-spaces")},
			want: []string{"name", `"my job"`}},
		{name: "exec without command",
			args: []string{"submit", "--api", api,
				spec("exec-without-command")},
			want: []string{"command", "exec"}},
		{name: "bad constraint in require",
			args: []string{"submit", "--api", api, spec("bad-require")},
			want: []string{"require[1]", "zone in (a,b"}},
		{name: "timeout soon",
			args: []string{"submit", "--api", api, spec("timeout-soon")},
			want: []string{"timeout-soon.yaml", `"soon"`}},
		{name: "retries negative",
			args: []string{"submit", "--api", api, spec("retries-negative")},
			want: []string{"retries", "-1"}},
		{name: "listen address incomplete",
			args:    peerArgs("listen", "--listen", "/ip4/1.2.3/udp"),
			want:    []string{"--listen", "/ip4/1.2.3/udp"},
			dataDir: filepath.Join(dirs, "listen")},
		{name: "bootstrap garbage",
			args: peerArgs("bootstrap",
				append(loopback, "--bootstrap", "garbage")...),
			want:    []string{"--bootstrap", "garbage"},
			dataDir: filepath.Join(dirs, "bootstrap")},
		{name: "join not a token",
			args: peerArgs("join",
				append(loopback, "--join", "notatoken")...),
			want:    []string{"--join", "token"},
			dataDir: filepath.Join(dirs, "join")},
		{name: "label without value",
			args: peerArgs("label",
				append(loopback, "--label", "novalue")...),
			want:    []string{"--label", "novalue"},
			dataDir: filepath.Join(dirs, "label")},
		{name: "executor unknown",
			args: peerArgs("executor",
				append(loopback, "--executor", "bogus")...),
			want:    []string{"--executor", "bogus"},
			dataDir: filepath.Join(dirs, "executor")},
		{name: "plugin program missing",
			args: peerArgs("plugin",
				append(loopback, "--plugin", "x=/nonexistent")...),
			want:    []string{"--plugin", "/nonexistent"},
			dataDir: filepath.Join(dirs, "plugin")},
		{name: "lease too short",
			args: peerArgs("lease",
				append(loopback, "--lease", "1ms")...),
			want:    []string{"lease", "1ms", "500ms"},
			dataDir: filepath.Join(dirs, "lease")},
		{name: "slots too many",
			args: peerArgs("slots",
				append(loopback, "--slots", "5000")...),
			want:    []string{"slots", "5000", "4096"},
			dataDir: filepath.Join(dirs, "slots")},
		{name: "api not host port",
			args: append([]string{"peer", "--data-dir",
				filepath.Join(dirs, "api"), "--no-mdns",
				"--api", "nonsense"}, loopback...),
			want:    []string{"--api", "nonsense"},
			dataDir: filepath.Join(dirs, "api")},
		{name: "api not loopback",
			args: append([]string{"peer", "--data-dir",
				filepath.Join(dirs, "public"), "--no-mdns",
				"--api", "0.0.0.0:0"}, loopback...),
			want:    []string{"0.0.0.0:0", "loopback"},
			dataDir: filepath.Join(dirs, "public")},
		{name: "data dir unwritable",
			args: append([]string{"peer", "--data-dir", "/proc/forbidden",
				"--api", "127.0.0.1:0", "--no-mdns"}, loopback...),
			want:    []string{"--data-dir", "/proc/forbidden"},
			dataDir: "/proc/forbidden"},
		{name: "status without job",
			args: []string{"status", "--api", api},
			want: []string{"status", "job ID"}},
		{name: "run without command",
			args: []string{"run", "--api", api},
			want: []string{"run", "no command"}},
		{name: "run with empty command",
			args: []string{"run", "--api", api, "--"},
			want: []string{"run", "no command"}},
		{name: "jobs output yaml",
			args: []string{"jobs", "--api", api, "--output", "yaml"},
			want: []string{"--output", "yaml"}},
		{name: "status output yaml",
			args: []string{"status", "--api", api, "-o", "yaml", "X"},
			want: []string{"--output", "yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := runCLIWithin(badInputTimeout, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			checkRefused(t, r, 2, tc.want...)
			if tc.dataDir != "" {
				if _, err := os.Stat(tc.dataDir); !os.IsNotExist(err) {
					t.Errorf("data dir %s: got stat error %v, want it "+
						"not created", tc.dataDir, err)
				}
			}
			if js, err := jobs(api); err != nil || len(js) != 0 {
				t.Errorf("jobs at the peer: got %v (err %v), want none",
					js, err)
			}
		})
	}
}

// TestUnreachableAPI checks that a command whose peer API does not
// answer exits 1 and tells the user to start a peer, wherever the --api
// flag stands.
func TestUnreachableAPI(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		{"flag before job", []string{"status", "--api", "127.0.0.1:1", "X"}},
		{"flag after job", []string{"status", "X", "--api", "127.0.0.1:1"}},
		{"peers", []string{"peers", "--api", "127.0.0.1:1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := runCLIWithin(badInputTimeout, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			checkRefused(t, r, 1, "127.0.0.1:1", "blixard peer")
		})
	}
}

// checkRefused checks that r exited with code, printed nothing on stdout
// and one line on stderr containing each of want.
func checkRefused(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code: got %d, want %d (%v)", r.code, code, r)
	}
	if r.stdout != "" {
		t.Errorf("stdout: got %q, want nothing", r.stdout)
	}
	if strings.Count(r.stderr, "\n") != 1 ||
		!strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stderr: got %q, want one line", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr: got %q, want it to name %q", r.stderr, w)
		}
	}
}
