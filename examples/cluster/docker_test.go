package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// imageTag names the peer image the tests build from Dockerfile.
const imageTag = "blixard-cluster-test:latest"

// busyboxPath is Debian's static busybox (package busybox-static).
const busyboxPath = "/bin/busybox"

// dockerTimeout bounds one docker command, so a hung daemon fails a test
// instead of stalling the package.
const dockerTimeout = 2 * time.Minute

// docker runs the docker CLI with args and returns its standard output.
// An error carries the command and the first line of its standard error.
func docker(args ...string) (string, error) {
	return dockerIn(nil, args...)
}

// dockerIn is docker with stdin as the command's standard input.
func dockerIn(stdin io.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("docker %s: %w: %s",
			summarize(args), err, firstLine(errb.String()))
	}
	return out.String(), nil
}

// summarize shortens a docker command line for an error message.
func summarize(args []string) string {
	s := strings.Join(args, " ")
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// requireCluster skips t when it cannot run containers (with -short, or
// without a Docker daemon or busybox; under CI=true those fail instead),
// and builds the peer image once per test binary.
func requireCluster(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("cluster tests start Docker containers; skipped with -short")
	}
	if _, err := docker("version", "--format", "{{.Server.Version}}"); err != nil {
		skipOrFail(t, "cluster tests need a Docker daemon: %v", err)
	}
	if _, err := os.Stat(busyboxPath); err != nil {
		skipOrFail(t, "cluster tests need a static busybox "+
			"(apt-get install -y busybox-static): %v", err)
	}
	built.once.Do(func() { built.err = buildImage(t.TempDir()) })
	if built.err != nil {
		t.Fatalf("build peer image: %v", built.err)
	}
}

// built records the one build of the peer image.
var built struct {
	once sync.Once
	err  error
}

func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// buildImage builds the static blixard binary from the repository root
// and the peer image from a context in dir holding the binary, busybox
// and Dockerfile.
func buildImage(dir string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("find the go command: %w", err)
	}
	build := exec.Command(gobin, "build", "-o", filepath.Join(dir, "blixard"),
		"./cmd/blixard")
	build.Dir = filepath.Join("..", "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/blixard: %w\n%s", err, out)
	}
	if err := copyFile(busyboxPath, filepath.Join(dir, "busybox")); err != nil {
		return err
	}
	if err := copyFile("Dockerfile", filepath.Join(dir, "Dockerfile")); err != nil {
		return err
	}
	old, _ := docker("image", "inspect", "--format", "{{.Id}}", imageTag)
	id, err := docker("build", "--quiet", "--tag", imageTag, dir)
	if err != nil {
		return err
	}
	// The image the tag named before is now unnamed; drop it unless a
	// container still uses it.
	if old = strings.TrimSpace(old); old != "" && old != strings.TrimSpace(id) {
		docker("image", "rm", old)
	}
	return nil
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("copy %s: %w", from, err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		return fmt.Errorf("copy %s: %w", from, err)
	}
	return nil
}
