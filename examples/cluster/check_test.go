package cluster

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// maxReported bounds how many jobs one kind of failure names.
const maxReported = 10

// settle is the check every scenario ends with. It waits until every
// peer of ps lists each job of ids as terminal, then reads each job's
// status from every peer of ps and checks that it is terminal with one
// terminal record, that every peer reports the same state, exit code and
// attempts, and that the attempts agree with the outcome (see
// recordProblems). It returns the records as ps[0] reports them.
func (c *cluster) settle(ids []string, ps []*peer, timeout time.Duration) map[string]jobStatus {
	c.t.Helper()
	start := time.Now()
	c.requireRunning(ps)
	c.waitListedTerminal(ids, ps, timeout)
	c.requireRunning(ps)
	var views []map[string]jobStatus
	var diffs []string
	// Copies of a record may trail its owner's for a moment.
	for try := 0; try < 10; try++ {
		views = c.statusesFrom(ps, ids)
		if diffs = disagreements(ids, ps, views); len(diffs) == 0 {
			break
		}
		time.Sleep(2 * time.Second)
	}
	report(c, "peers disagree", diffs)
	var probs []string
	for _, id := range ids {
		st, ok := views[0][id]
		if !ok {
			continue // reported as a disagreement
		}
		for _, p := range recordProblems(st) {
			probs = append(probs, fmt.Sprintf("job %s (%s): %s", id, st.Name, p))
		}
	}
	report(c, "bad records", probs)
	if len(ids) <= 10 {
		for _, id := range ids {
			st := views[0][id]
			c.t.Logf("job %s (%s): %s, %d duplicates", id, st.Name, outcome(st), st.Duplicates)
		}
	}
	c.t.Logf("settled %d jobs on %d peers in %s", len(ids), len(ps),
		time.Since(start).Round(100*time.Millisecond))
	return views[0]
}

// requireRunning stops the test if a peer of ps is not running, naming
// how its container ended.
func (c *cluster) requireRunning(ps []*peer) {
	c.t.Helper()
	for _, p := range ps {
		out, err := docker("inspect", "--format",
			"{{.State.Status}} exit code {{.State.ExitCode}}", p.name)
		if err != nil {
			c.t.Fatal(err)
		}
		if state := strings.TrimSpace(out); !strings.HasPrefix(state, "running") {
			c.t.Fatalf("peer %s is not running: %s", p, state)
		}
	}
}

// report fails the test with the first few problems of a kind.
func report(c *cluster, kind string, probs []string) {
	c.t.Helper()
	for i, p := range probs {
		if i == maxReported {
			c.t.Errorf("%s: %d more", kind, len(probs)-i)
			break
		}
		c.t.Errorf("%s: %s", kind, p)
	}
}

// waitListedTerminal polls `jobs` on every peer of ps until each lists
// every job of ids as terminal in the same state. At the timeout it
// fails the test, naming what is missing, and returns.
func (c *cluster) waitListedTerminal(ids []string, ps []*peer, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left, err := c.listedNotTerminal(ids, ps)
		if err != nil {
			c.requireRunning(ps)
			left = []string{err.Error()}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			report(c, fmt.Sprintf("not terminal after %s", timeout), left)
			return
		}
		time.Sleep(time.Second)
	}
}

func (c *cluster) listedNotTerminal(ids []string, ps []*peer) ([]string, error) {
	var left []string
	states := make(map[string]string)
	for _, p := range ps {
		list, err := c.jobs(p)
		if err != nil {
			return nil, err
		}
		var missing, running []string
		for _, id := range ids {
			s, ok := list[id]
			switch {
			case !ok:
				missing = append(missing, id)
			case !terminal(s.State):
				running = append(running, id+" "+s.State)
			case states[id] == "":
				states[id] = s.State
			case states[id] != s.State:
				left = append(left, fmt.Sprintf("job %s: %s at %s, %s elsewhere",
					id, s.State, p, states[id]))
			}
		}
		if len(missing) > 0 {
			left = append(left, fmt.Sprintf("%s does not list %d jobs: %s",
				p, len(missing), first(missing)))
		}
		if len(running) > 0 {
			left = append(left, fmt.Sprintf("%s lists %d jobs not terminal: %s",
				p, len(running), first(running)))
		}
	}
	return left, nil
}

func first(s []string) string {
	if len(s) > 3 {
		return strings.Join(s[:3], ", ") + ", ..."
	}
	return strings.Join(s, ", ")
}

// statusesFrom reads the statuses of ids from every peer of ps at once.
// A peer that cannot be asked fails the test.
func (c *cluster) statusesFrom(ps []*peer, ids []string) []map[string]jobStatus {
	c.t.Helper()
	views := make([]map[string]jobStatus, len(ps))
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			views[i], errs[i] = c.statuses(p, ids)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			c.t.Fatal(err)
		}
	}
	return views
}

// disagreements lists the jobs that some peer does not answer for or
// reports differently from ps[0].
func disagreements(ids []string, ps []*peer, views []map[string]jobStatus) []string {
	var out []string
	for _, id := range ids {
		var want string
		var from *peer
		for i, p := range ps {
			st, ok := views[i][id]
			if !ok {
				out = append(out, fmt.Sprintf("job %s: %s has no status for it", id, p))
				continue
			}
			got := outcome(st)
			if from == nil {
				want, from = got, p
			} else if got != want {
				out = append(out, fmt.Sprintf("job %s: %s reports %s, %s reports %s",
					id, from, want, p, got))
			}
		}
	}
	return out
}

// outcome is what every peer must report alike for a finished job.
func outcome(st jobStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s exit=%s", st.State, code(st.ExitCode))
	for _, a := range st.Attempts {
		fmt.Fprintf(&b, " [%d %s %s]", a.N, short(a.Peer), a.State)
	}
	return b.String()
}

func code(c *int) string {
	if c == nil {
		return "none"
	}
	return fmt.Sprint(*c)
}

func short(id string) string {
	if len(id) > 8 {
		return id[len(id)-8:]
	}
	return id
}

// recordProblems checks one job's record: it is terminal, its attempts
// are numbered from 1 and none still runs, a succeeded job has exactly
// one succeeded attempt and it is the last, a failed or cancelled job
// has none, and the exit code is the deciding attempt's.
func recordProblems(st jobStatus) []string {
	var out []string
	if !terminal(st.State) {
		out = append(out, fmt.Sprintf("state %s (%s), want terminal", st.State, st.Reason))
	}
	succeeded := 0
	for i, a := range st.Attempts {
		if a.N != i+1 {
			out = append(out, fmt.Sprintf("attempt %d numbered %d", i+1, a.N))
		}
		switch {
		case a.State == "succeeded":
			succeeded++
		case a.State == "running" && terminal(st.State):
			out = append(out, fmt.Sprintf("attempt %d still running in a %s job",
				a.N, st.State))
		}
		if a.State != "running" && a.Ended.IsZero() {
			out = append(out, fmt.Sprintf("attempt %d %s without an end", a.N, a.State))
		}
		if !a.Ended.IsZero() && a.Ended.Before(a.Started) {
			out = append(out, fmt.Sprintf("attempt %d ended before it started", a.N))
		}
	}
	if st.Duplicates < 0 {
		out = append(out, fmt.Sprintf("duplicates %d", st.Duplicates))
	}
	last := st.current()
	switch st.State {
	case "succeeded":
		if succeeded != 1 {
			out = append(out, fmt.Sprintf("succeeded with %d succeeded attempts, want 1",
				succeeded))
		}
		if last == nil || last.State != "succeeded" {
			out = append(out, "succeeded, but its last attempt did not")
		}
		if st.ExitCode == nil || *st.ExitCode != 0 {
			out = append(out, fmt.Sprintf("succeeded with exit code %s", code(st.ExitCode)))
		}
	case "failed", "cancelled":
		if succeeded != 0 {
			out = append(out, fmt.Sprintf("%s after a succeeded attempt", st.State))
		}
		if st.State == "failed" && last != nil && last.State == "failed" &&
			code(st.ExitCode) != code(last.ExitCode) {
			out = append(out, fmt.Sprintf("exit code %s, last attempt's %s",
				code(st.ExitCode), code(last.ExitCode)))
		}
	}
	return out
}

// attemptOverlaps lists the pairs of attempts of st whose [started,
// ended] spans overlap by more than max, as the owner recorded them.
func attemptOverlaps(st jobStatus, max time.Duration) []string {
	var out []string
	for i, a := range st.Attempts {
		for _, b := range st.Attempts[i+1:] {
			if a.Ended.IsZero() || b.Ended.IsZero() {
				continue
			}
			lo, hi := later(a.Started, b.Started), earlier(a.Ended, b.Ended)
			if d := hi.Sub(lo); d > max {
				out = append(out, fmt.Sprintf("job %s: attempts %d and %d overlap by %s",
					st.ID, a.N, b.N, d.Round(time.Millisecond)))
			}
		}
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// tickInterval is how often a tickJob ticks, in seconds.
const tickInterval = 0.5

// runOverlaps lists the pairs of copies of a job that really ran at once
// for more than max seconds. Two copies ran together for as long as both
// ticked within the other's span; a copy frozen for a while ticks in no
// one's span meanwhile.
func runOverlaps(runs map[string][]run, max float64) []string {
	var out []string
	for job, rs := range runs {
		for i, a := range rs {
			for _, b := range rs[i+1:] {
				n := min(a.within(b.first(), b.last()), b.within(a.first(), a.last()))
				if d := float64(n) * tickInterval; d > max {
					out = append(out, fmt.Sprintf("job %s: attempt %d on %s and attempt %d "+
						"on %s ran together for about %.1fs",
						job, a.attempt, a.host, b.attempt, b.host, d))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// unrecordedRuns lists the copies of jobs that ran, by their tick files,
// without an attempt of that number on that peer in the job's record:
// work that ran unseen. Jobs missing from records are skipped.
func (c *cluster) unrecordedRuns(runs map[string][]run, records map[string]jobStatus) []string {
	var out []string
	for job, rs := range runs {
		st, ok := records[job]
		if !ok {
			continue
		}
		for _, r := range rs {
			var on string
			if r.attempt >= 1 && r.attempt <= len(st.Attempts) {
				on = st.Attempts[r.attempt-1].Peer
			}
			if p := c.byName(r.host); p == nil || p.id != on {
				out = append(out, fmt.Sprintf("job %s: attempt %d ran on %s, but the record "+
					"has it on %q", job, r.attempt, r.host, short(on)))
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestRecordProblems checks the checker: records that break a guarantee
// must be named, good ones must pass. It needs no Docker.
func TestRecordProblems(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	zero, one := 0, 1
	at := func(n int, state string, code *int) attempt {
		return attempt{N: n, Peer: "p", State: state, ExitCode: code,
			Started: t0.Add(time.Duration(n) * time.Second),
			Ended:   t0.Add(time.Duration(n)*time.Second + 500*time.Millisecond)}
	}
	running := func(n int) attempt {
		a := at(n, "running", nil)
		a.Ended = time.Time{}
		return a
	}
	tests := []struct {
		name string
		st   jobStatus
		want int // problems found
	}{
		{"succeeded after a lost attempt", jobStatus{State: "succeeded", ExitCode: &zero,
			Attempts: []attempt{at(1, "lost", nil), at(2, "succeeded", &zero)}}, 0},
		{"failed", jobStatus{State: "failed", ExitCode: &one,
			Attempts: []attempt{at(1, "failed", &one)}}, 0},
		{"still running", jobStatus{State: "running",
			Attempts: []attempt{at(1, "lost", nil), running(2)}}, 1},
		{"two succeeded attempts", jobStatus{State: "succeeded", ExitCode: &zero,
			Attempts: []attempt{at(1, "succeeded", &zero), at(2, "succeeded", &zero)}}, 1},
		{"succeeded, then a failed attempt", jobStatus{State: "succeeded", ExitCode: &zero,
			Attempts: []attempt{at(1, "succeeded", &zero), at(2, "failed", &one)}}, 1},
		{"failed after a success", jobStatus{State: "failed", ExitCode: &one,
			Attempts: []attempt{at(1, "succeeded", &zero), at(2, "failed", &one)}}, 1},
		{"attempt left running", jobStatus{State: "succeeded", ExitCode: &zero,
			Attempts: []attempt{running(1), at(2, "succeeded", &zero)}}, 1},
		{"attempts misnumbered", jobStatus{State: "succeeded", ExitCode: &zero,
			Attempts: []attempt{at(1, "lost", nil), at(3, "succeeded", &zero)}}, 1},
		{"succeeded without exit code", jobStatus{State: "succeeded",
			Attempts: []attempt{at(1, "succeeded", &zero)}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := recordProblems(tt.st)
			if len(got) != tt.want {
				t.Errorf("got %d problems %q, want %d", len(got), got, tt.want)
			}
		})
	}
}

// TestRunOverlaps checks that copies that ticked side by side are found
// and that a frozen copy, which did not tick meanwhile, is not.
func TestRunOverlaps(t *testing.T) {
	ticks := func(from, to float64) []float64 {
		var out []float64
		for v := from; v <= to; v += tickInterval {
			out = append(out, v)
		}
		return out
	}
	tests := []struct {
		name string
		a, b []float64
		want int
	}{
		{"one after the other", ticks(10, 14), ticks(15, 20), 0},
		{"side by side", ticks(10, 20), ticks(12, 20), 1},
		{"brief overlap", ticks(10, 13), ticks(12, 20), 0},
		{"frozen, one tick after the thaw", []float64{10, 10.5, 17}, ticks(12, 18), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := map[string][]run{"j": {
				{job: "j", attempt: 1, host: "a", ticks: tt.a},
				{job: "j", attempt: 2, host: "b", ticks: tt.b},
			}}
			if got := runOverlaps(runs, lease.Seconds()); len(got) != tt.want {
				t.Errorf("got %q, want %d overlaps", got, tt.want)
			}
		})
	}
}
