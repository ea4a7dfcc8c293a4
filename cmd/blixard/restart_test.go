package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRestartKeepsJobs restarts a peer on its data dir, after a clean stop
// and after SIGKILL, and checks that it keeps the jobs it owns and ends
// the workload the killed process left running.
func TestRestartKeepsJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and restarts a peer process")
	}
	// The argument marks this run's sleep processes among all on the
	// machine; the cleanup runs after the peer's has stopped it.
	arg := fmt.Sprintf("1000.%d", os.Getpid())
	t.Cleanup(func() { killProcsWithArg(t, arg) })
	p := startPeer(t, "peer")
	id := p.id()
	r := blixOK(t, "submit", "--api", p.api,
		filepath.Join("testdata", "pinned.yaml"))
	pinned := strings.TrimSpace(r.stdout)
	eventually(t, meshTimeout, "pinned job waits for zone=mars",
		func() error { return checkPinned(p.api, pinned) })

	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("peer after SIGTERM: %v; want exit 0", err)
	}
	p.start()
	if got := p.id(); got != id {
		t.Fatalf("peer ID after restart: got %s, want %s", got, id)
	}
	checkKept(t, p, pinned)

	testKilledRunnerIsReaped(t, p, arg)
	checkKept(t, p, pinned)
}

// checkKept checks that the peer lists the pinned job, still pending.
func checkKept(t *testing.T, p *peerProc, pinned string) {
	t.Helper()
	eventually(t, meshTimeout, "pinned job pending after restart",
		func() error { return checkPinned(p.api, pinned) })
	js, err := jobs(p.api)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(js, func(j jobEntry) bool { return j.ID == pinned })
	if i < 0 || js[i].State != "pending" {
		t.Errorf("jobs after restart: got %+v, want %s pending among them",
			js, pinned)
	}
}

// checkPinned returns an error unless the pinned job is pending with a
// reason that names its requirement.
func checkPinned(api, job string) error {
	st, err := status(api, job)
	if err != nil {
		return err
	}
	if st.State != "pending" || !strings.Contains(st.Reason, "zone=mars") {
		return fmt.Errorf("job %s: got state %q, reason %q; want pending "+
			"with a reason naming zone=mars", job, st.State, st.Reason)
	}
	return nil
}

// testKilledRunnerIsReaped runs `sleep arg` as a job, SIGKILLs the peer
// once the task has started and restarts it: the restarted peer must end
// the old process and run the job again, never two copies at once.
func testKilledRunnerIsReaped(t *testing.T, p *peerProc, arg string) {
	t.Helper()
	// The exec executor passes output on only once it has recorded the
	// process, so "ready" in the logs means the peer knows the sleep.
	job := submitJSON(t, p.api, map[string]any{
		"name":    "sleeper",
		"command": []string{"sh", "-c", `echo ready; exec sleep "$0"`, arg},
	})
	var first int
	eventually(t, meshTimeout, "sleep runs and its output arrives",
		func() error {
			pids := procsWithArg(t, arg)
			if len(pids) != 1 {
				return fmt.Errorf("processes with %s: got %v, want one",
					arg, pids)
			}
			first = pids[0]
			r, err := runCLI("logs", "--api", p.api, job)
			if err != nil || r.stdout != "ready\n" {
				return fmt.Errorf("logs: got %v (err %v), want ready", r, err)
			}
			return nil
		})

	if err := p.stop(syscall.SIGKILL); err == nil {
		t.Fatal("peer after SIGKILL: exit 0; want killed")
	}
	if !hasArg(first, arg) {
		t.Logf("sleep %s (pid %d) ended with the peer's SIGKILL; "+
			"the reaping check below cannot tell anything", arg, first)
	}
	p.start()
	checkReapedAndRetried(t, p, job, arg, []int{first})
	blixOK(t, "cancel", "--api", p.api, job)
}

// checkReapedAndRetried waits until none of the processes old still runs
// and the job has been retried, failing at once if two processes with
// arg are alive together.
func checkReapedAndRetried(t *testing.T, p *peerProc, job, arg string,
	old []int) {
	t.Helper()
	eventually(t, meshTimeout, "old process ended and the job runs again",
		func() error {
			if pids := procsWithArg(t, arg); len(pids) > 1 {
				t.Fatalf("processes with %s: got %v, want at most one "+
					"(old ones: %v)", arg, pids, old)
			}
			for _, pid := range old {
				if hasArg(pid, arg) {
					return fmt.Errorf("process %d (%s) still runs", pid, arg)
				}
			}
			return checkRetried(p.api, job)
		})
}

// TestCrashAsTaskStarts kills the peer from inside a task the moment the
// task starts, before the peer may have recorded the process, and checks
// that the restarted peer still ends that process before it runs the job
// again. The crash lands in a window of a few milliseconds, so the test
// tries a few times.
func TestCrashAsTaskStarts(t *testing.T) {
	if testing.Short() {
		t.Skip("crashes and restarts a peer process several times")
	}
	const rounds = 5
	base := fmt.Sprintf("1000.%d", os.Getpid())
	for i := range rounds {
		arg := fmt.Sprintf("%s%d", base, i+1)
		t.Cleanup(func() { killProcsWithArg(t, arg) })
	}
	p := startPeer(t, "peer")
	marks := t.TempDir()
	for i := range rounds {
		arg := fmt.Sprintf("%s%d", base, i+1)
		mark := filepath.Join(marks, arg)
		t.Logf("round %d: the task is sleep %s", i+1, arg)
		// The first run kills the peer that started it ($PPID); the run
		// after the restart finds the mark and only sleeps.
		script := `[ -e "$1" ] || { : > "$1"; kill -9 $PPID; }; ` +
			`exec sleep "$0"`
		job := submitJSON(t, p.api, map[string]any{
			"name":    "crasher",
			"command": []string{"sh", "-c", script, arg, mark},
		})
		select {
		case <-p.done:
		case <-time.After(meshTimeout):
			t.Fatalf("round %d: peer still runs %s after the task "+
				"killed its parent", i+1, meshTimeout)
		}
		old := procsWithArg(t, arg)
		p.start()
		checkReapedAndRetried(t, p, job, arg, old)
		blixOK(t, "cancel", "--api", p.api, job)
	}
}

// submitJSON submits spec, written as a JSON file, at the peer at api
// and returns the job's ID.
func submitJSON(t *testing.T, api string, spec map[string]any) string {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "spec.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r := blixOK(t, "submit", "--api", api, path)
	return strings.TrimSpace(r.stdout)
}

// checkRetried returns an error unless the job has a second attempt and
// the first was lost.
func checkRetried(api, job string) error {
	st, err := status(api, job)
	if err != nil {
		return err
	}
	if len(st.Attempts) < 2 || st.Attempts[0].State != "lost" {
		return fmt.Errorf("job %s: got attempts %+v; want at least two, "+
			"the first lost", job, st.Attempts)
	}
	return nil
}

// killProcsWithArg kills what is left of the processes this test
// started, found by their marking argument.
func killProcsWithArg(t *testing.T, arg string) {
	for _, pid := range procsWithArg(t, arg) {
		t.Logf("killing leftover process %d (sleep %s)", pid, arg)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}
