package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/blixard/blixard/executor"
	"github.com/blixard/blixard/executor/docker"
	"github.com/blixard/blixard/executor/plugin"
	"github.com/blixard/blixard/executor/wasm"
	"github.com/blixard/blixard/p2p"
	"github.com/blixard/blixard/scheduler"
)

// knownExecutors are the built-in executors --executor accepts.
var knownExecutors = []string{"exec", "noop", "docker", "wasm"}

// defaultExecutors are offered when no --executor is given. Docker is
// advertised only while its daemon answers.
var defaultExecutors = []string{"exec", "noop", "wasm", "docker"}

// checkExecutors validates --executor and --plugin values without
// creating anything.
func checkExecutors(names, plugins []string) error {
	for _, name := range names {
		ok := false
		for _, k := range knownExecutors {
			ok = ok || name == k
		}
		if !ok {
			return usagef("--executor %q: unknown; want one of %s (or --plugin NAME=PATH)",
				name, strings.Join(knownExecutors, ", "))
		}
	}
	for _, pl := range plugins {
		name, path, ok := strings.Cut(pl, "=")
		if !ok || name == "" || path == "" {
			return usagef("--plugin %q: want NAME=PATH", pl)
		}
		for _, k := range knownExecutors {
			if name == k {
				return usagef("--plugin %q: %s is a built-in executor", pl, name)
			}
		}
		if !strings.Contains(path, "/") {
			if _, err := exec.LookPath(path); err != nil {
				return usagef("--plugin %q: %v", pl, err)
			}
		} else if st, err := os.Stat(path); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return usagef("--plugin %q: %s is not an executable file", pl, path)
		}
	}
	return nil
}

// buildExecutors creates the executors a peer with data dir dir offers.
// The docker executor labels containers with the peer's ID, so the
// identity is loaded (or created) first.
func buildExecutors(
	dir string, names, plugins []string, log *slog.Logger,
) ([]executor.Executor, error) {
	if len(names) == 0 {
		names = defaultExecutors
	}
	var out []executor.Executor
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		e, err := newExecutor(dir, name, log)
		if err != nil {
			return nil, fmt.Errorf("executor %s: %w", name, err)
		}
		out = append(out, e)
	}
	for _, pl := range plugins {
		name, path, _ := strings.Cut(pl, "=")
		if seen[name] {
			return nil, usagef("--plugin %q: executor %s given twice", pl, name)
		}
		seen[name] = true
		e, err := plugin.New(plugin.Config{Name: name, Path: path, Logger: log})
		if err != nil {
			return nil, usagef("--plugin %q: %v", pl, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func newExecutor(dir, name string, log *slog.Logger) (executor.Executor, error) {
	switch name {
	case "docker":
		key, err := p2p.LoadOrCreateIdentity(scheduler.IdentityPath(dir))
		if err != nil {
			return nil, err
		}
		id, err := peer.IDFromPrivateKey(key)
		if err != nil {
			return nil, err
		}
		return docker.New(docker.Config{PeerID: id.String(), Logger: log})
	case "wasm":
		return wasm.New(wasm.Config{CacheDir: filepath.Join(dir, "wasm-cache"), Logger: log})
	}
	return executor.New(name, log)
}
