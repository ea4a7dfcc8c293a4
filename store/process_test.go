package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// The helper process is this test binary re-run with these variables set;
// it opens a store in helperDirEnv and acts out helperRoleEnv.
const (
	helperRoleEnv = "BLIXARD_STORE_HELPER_ROLE"
	helperDirEnv  = "BLIXARD_STORE_HELPER_DIR"
)

// TestHelperProcess is not a test: it is the body of the helper process.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperRoleEnv)
	if role == "" {
		t.Skip("runs only as a helper process")
	}
	s, err := Open(DefaultConfig(os.Getenv(helperDirEnv)))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	switch role {
	case "hold":
		// Hold the store until the parent closes stdin.
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
	case "write":
		// Report each key once Put has returned, until killed.
		for i := 0; ; i++ {
			key := fmt.Sprintf("key/%06d", i)
			if err := s.Put([]byte(key), []byte(strconv.Itoa(i))); err != nil {
				fmt.Println("error:", err)
				os.Exit(1)
			}
			fmt.Println(key)
		}
	}
	if err := s.Close(); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// startHelper starts a helper process on dir and returns it with its
// stdin and a reader of its stdout.
func startHelper(t *testing.T, role, dir string) (*exec.Cmd,
	io.WriteCloser, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperRoleEnv+"="+role,
		helperDirEnv+"="+dir)
	cmd.Stderr = t.Output()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, stdin, bufio.NewScanner(stdout)
}

func TestOpenLockedByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd, stdin, out := startHelper(t, "hold", dir)
	if !out.Scan() || out.Text() != "ready" {
		t.Fatalf("helper said %q, want \"ready\"", out.Text())
	}

	_, err := Open(DefaultConfig(dir))
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Open of a held directory = %v, want ErrLocked", err)
	}
	t.Logf("Open: %v", err)
	pid := fmt.Sprintf("pid %d", cmd.Process.Pid)
	for _, want := range []string{dir, pid} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}

	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	s := openTest(t, DefaultConfig(dir))
	mustPut(t, s, "k", "v")
}

// TestPutSurvivesKill kills a writer process without warning and checks
// that every key whose Put had returned is there.
func TestPutSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	cmd, _, out := startHelper(t, "write", dir)
	var acked []string
	for len(acked) < 200 && out.Scan() {
		line := out.Text()
		if strings.HasPrefix(line, "error:") {
			t.Fatalf("helper: %s", line)
		}
		acked = append(acked, line)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("kill helper: %v", err)
	}
	cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("helper acknowledged %d keys before it stopped", len(acked))
	}

	s := openTest(t, DefaultConfig(dir))
	for i, key := range acked {
		wantValue(t, s, key, strconv.Itoa(i))
	}
}

func TestOpenUnwritable(t *testing.T) {
	base := t.TempDir()
	file := base + "/file"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	readOnly := base + "/readonly"
	if err := os.Mkdir(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir string
		root      bool // whether the case holds when running as root
	}{
		{"under a file", file + "/data", true},
		{"read-only directory", readOnly, false},
		{"under a read-only directory", readOnly + "/data", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.root && os.Geteuid() == 0 {
				t.Skip("root may write anywhere")
			}
			s, err := Open(DefaultConfig(tt.dir))
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", tt.dir)
			}
			t.Logf("Open: %v", err)
			if !strings.Contains(err.Error(), strconv.Quote(tt.dir)) {
				t.Errorf("error %q does not name %q", err, tt.dir)
			}
		})
	}
}
