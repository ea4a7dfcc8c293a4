package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/build"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/blixard/blixard/examples/demo"
	"github.com/blixard/blixard/scheduler"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:      "demo",
		Usage:     "start a throwaway mesh of three peers and fan a directory scan out over it",
		ArgsUsage: "[DIR]",
		Description: "Scans DIR (default: the Go standard library sources, else the current " +
			"directory) with one job per subdirectory, spread over three peers on " +
			"loopback; some jobs require a label only the third peer has. The merged " +
			"result is checked against the same scan done locally.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "warn", Usage: "peer log level"},
		},
		Action: runDemo,
	}
}

func demoDir(c *cli.Context) (string, error) {
	if c.NArg() > 1 {
		return "", usagef("demo: want at most one directory")
	}
	dir := c.Args().First()
	if dir == "" {
		dir = filepath.Join(build.Default.GOROOT, "src")
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			dir = "."
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", usagef("demo: %v", err)
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return "", usagef("demo: %s is not a directory", dir)
	}
	return abs, nil
}

type demoPeer struct {
	name string
	p    *scheduler.Peer
}

func runDemo(c *cli.Context) error {
	dir, err := demoDir(c)
	if err != nil {
		return err
	}
	log, err := newLogger(c.String("log-level"))
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("demo: find own binary: %w", err)
	}
	parts, err := demo.Parts(dir)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	tmp, err := os.MkdirTemp("", "blixard-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	ctx, cancel := context.WithTimeout(c.Context, 10*time.Minute)
	defer cancel()
	fmt.Printf("starting a mesh of 3 peers on loopback; scanning %s with %d jobs\n", dir, len(parts))
	peers, err := startDemoMesh(ctx, tmp, log)
	defer func() {
		for _, dp := range peers {
			dp.p.Close()
		}
	}()
	if err != nil {
		return err
	}

	start := time.Now()
	results, err := runDemoJobs(ctx, peers, parts, self)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	return reportDemo(dir, parts, peers, results, elapsed)
}

// startDemoMesh starts three peers: the first creates the mesh, the other
// two join with its token. Each has labels of its own.
func startDemoMesh(ctx context.Context, tmp string, log *slog.Logger) ([]demoPeer, error) {
	labels := []map[string]string{
		{"zone": "a"},
		{"zone": "b"},
		{"zone": "c", "disk": "ssd"},
	}
	names := []string{"peer-a", "peer-b", "peer-c"}
	slots := max(runtime.NumCPU()/2, 1)
	var peers []demoPeer
	token := ""
	for i, name := range names {
		cfg := scheduler.Config{
			DataDir: filepath.Join(tmp, name),
			Listen:  []string{"/ip4/127.0.0.1/udp/0/quic-v1"},
			Join:    token,
			Labels:  labels[i],
			Slots:   slots,
			Logger:  log.With("peer_name", name),
		}
		p, err := scheduler.New(ctx, cfg)
		if err != nil {
			return peers, fmt.Errorf("demo: start %s: %w", name, err)
		}
		peers = append(peers, demoPeer{name, p})
		if token == "" {
			token = p.Token()
		}
	}
	// Wait until every peer sees the other two with their labels.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ready := true
		for _, dp := range peers {
			if len(dp.p.Peers()) < len(peers) {
				ready = false
			}
		}
		if ready {
			return peers, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return peers, fmt.Errorf("demo: peers did not find each other within 30s")
}

type demoResult struct {
	part    demo.Part
	status  scheduler.Status
	summary demo.Summary
	err     error
}

// runDemoJobs submits each part to the peers in turn and collects results.
func runDemoJobs(
	ctx context.Context, peers []demoPeer, parts []demo.Part, self string,
) ([]demoResult, error) {
	results := make([]demoResult, len(parts))
	var wg sync.WaitGroup
	for i, part := range parts {
		data, err := demo.Spec(part, self)
		if err != nil {
			return nil, err
		}
		spec, err := scheduler.ParseSpec(data)
		if err != nil {
			return nil, fmt.Errorf("demo: spec of %s: %w", part.Name, err)
		}
		owner := peers[i%len(peers)].p
		id, err := owner.Submit(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("demo: submit %s: %w", part.Name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = collect(ctx, owner, id, part)
		}()
	}
	wg.Wait()
	return results, nil
}

func collect(ctx context.Context, p *scheduler.Peer, id string, part demo.Part) demoResult {
	r := demoResult{part: part}
	j, err := p.Wait(ctx, id)
	if err != nil {
		r.err = err
		return r
	}
	r.status = j.Status()
	var out bytes.Buffer
	var off int64
	for {
		data, next, done, err := p.Logs(ctx, id, 0, scheduler.Stdout, off, 1<<20)
		if err != nil {
			r.err = err
			return r
		}
		out.Write(data)
		off = next
		if done || len(data) == 0 {
			break
		}
	}
	if r.status.State == scheduler.Succeeded {
		r.err = json.Unmarshal(out.Bytes(), &r.summary)
	}
	return r
}

func reportDemo(
	dir string, parts []demo.Part, peers []demoPeer, results []demoResult, elapsed time.Duration,
) error {
	names := map[string]string{}
	for _, dp := range peers {
		names[dp.p.ID()] = dp.name
	}
	sort.Slice(results, func(i, j int) bool { return results[i].part.Name < results[j].part.Name })
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "JOB\tREQUIRES\tPEER\tSTATE\tRESULT")
	merged := map[string]demo.Summary{}
	perPeer := map[string]int{}
	failures := 0
	pinnedOK := true
	for _, r := range results {
		res := r.summary.String()
		if r.err != nil || r.status.State != scheduler.Succeeded {
			failures++
			res = fmt.Sprintf("error: %v %s", r.err, r.status.Reason)
		} else {
			merged[r.part.Name] = r.summary
		}
		peer := names[r.status.Peer]
		perPeer[peer]++
		if r.part.Require != "" && peer != "peer-c" {
			pinnedOK = false
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.part.Name, r.part.Require, peer, r.status.State, res)
	}
	w.Flush()

	local := map[string]demo.Summary{}
	for _, part := range parts {
		s, err := demo.Scan(part.Dir, part.Flat)
		if err != nil {
			return fmt.Errorf("demo: local scan of %s: %w", part.Dir, err)
		}
		local[part.Name] = s
	}
	got, want := demo.Merge(merged), demo.Merge(local)
	fmt.Println()
	fmt.Printf("jobs per peer: peer-a %d, peer-b %d, peer-c %d; %d failed; %s\n",
		perPeer["peer-a"], perPeer["peer-b"], perPeer["peer-c"], failures,
		elapsed.Round(time.Millisecond))
	fmt.Printf("mesh result:  %d files, %d lines, %d bytes, digest %s\n",
		got.Files, got.Lines, got.Bytes, got.Digest)
	fmt.Printf("local result: %d files, %d lines, %d bytes, digest %s\n",
		want.Files, want.Lines, want.Bytes, want.Digest)
	switch {
	case failures > 0:
		return fmt.Errorf("demo: %d of %d jobs failed", failures, len(parts))
	case !pinnedOK:
		return fmt.Errorf("demo: a job requiring disk=ssd ran on a peer without it")
	case got != want:
		return fmt.Errorf("demo: the mesh's result differs from the local scan of %s", dir)
	}
	fmt.Println("OK: the merged result matches the local scan")
	return nil
}

func scanCommand() *cli.Command {
	return &cli.Command{
		Name:      "scan",
		Usage:     "print a JSON summary of a directory tree (the demo's job)",
		ArgsUsage: "DIR",
		Hidden:    true,
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "flat", Usage: "only files directly in DIR"}},
		Action: func(c *cli.Context) error {
			dir, err := oneArg(c, "directory")
			if err != nil {
				return err
			}
			s, err := demo.Scan(dir, c.Bool("flat"))
			if err != nil {
				return err
			}
			return json.NewEncoder(os.Stdout).Encode(s)
		},
	}
}
