package scheduler

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	bugCloneShallow = "BUG: Clone shares each attempt's exit code and the " +
		"spec's slices, map and payload with the original (job.go Clone)"
	bugUpperJobID = "BUG: validJobID accepts uppercase hex, which NewJobID " +
		"never makes, so the ID passes and then matches no key (job.go " +
		"validJobID)"
)

// t0 is the fixed start of every lifecycle test; no test reads the clock.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newTestJob returns a pending job owned by "me" at epoch 1.
func newTestJob(retries int) *Job {
	return &Job{
		ID: NewJobID(t0),
		Spec: Spec{Name: "t", Executor: "exec", Command: []string{"x"},
			Retries: retries},
		Owner:     "me",
		Epoch:     1,
		Version:   1,
		State:     Pending,
		Submitted: t0,
	}
}

// snapshot is a deep copy of j's lifecycle fields, independent of Clone.
func snapshot(j *Job) *Job {
	c := *j
	c.Attempts = nil
	for _, a := range j.Attempts {
		if a.ExitCode != nil {
			v := *a.ExitCode
			a.ExitCode = &v
		}
		c.Attempts = append(c.Attempts, a)
	}
	c.Replicas = append([]string(nil), j.Replicas...)
	if j.ExitCode != nil {
		v := *j.ExitCode
		c.ExitCode = &v
	}
	return &c
}

// describe prints a job's lifecycle fields for a failure message.
func describe(j *Job) string {
	var b strings.Builder
	fmt.Fprintf(&b, "state=%s reason=%q exit=%s finished=%v v=%d dup=%d",
		j.State, j.Reason, codeString(j.ExitCode), j.Finished.Format(time.TimeOnly),
		j.Version, j.Duplicates)
	for _, a := range j.Attempts {
		fmt.Fprintf(&b, " [#%d %s e%d %s exit=%s]", a.N, a.Peer, a.Epoch,
			a.State, codeString(a.ExitCode))
	}
	return b.String()
}

func codeString(c *int) string {
	if c == nil {
		return "nil"
	}
	return fmt.Sprint(*c)
}

func intp(v int) *int { return &v }

// mustStart starts an attempt on runner and fails t if it cannot.
func mustStart(t *testing.T, j *Job, runner string, now time.Time) Attempt {
	t.Helper()
	a, err := j.startAttempt(runner, now)
	if err != nil {
		t.Fatalf("startAttempt: %v", err)
	}
	return a
}

func TestStartAttempt(t *testing.T) {
	t.Run("pending", func(t *testing.T) {
		j := newTestJob(0)
		j.Reason = "waiting for a free slot"
		now := t0.Add(time.Second)
		a := mustStart(t, j, "runner", now)
		want := Attempt{N: 1, Peer: "runner", Epoch: 1, State: AttemptRunning, Started: now}
		if !reflect.DeepEqual(a, want) {
			t.Errorf("attempt = %+v, want %+v", a, want)
		}
		if got := *j.Current(); !reflect.DeepEqual(got, want) {
			t.Errorf("current = %+v, want %+v", got, want)
		}
		if j.State != Running || j.Reason != "" || j.Version != 2 {
			t.Errorf("job = %s, want running, no reason, version 2", describe(j))
		}
	})
	t.Run("numbers attempts", func(t *testing.T) {
		j := newTestJob(2)
		j.Epoch = 3
		for n := 1; n <= 3; n++ {
			a := mustStart(t, j, "r", t0)
			if a.N != n || a.Epoch != 3 {
				t.Fatalf("attempt %d: N = %d, epoch %d; want %d, 3", n, a.N, a.Epoch, n)
			}
			j.applyResult(a.N, 3, outcome{ExitCode: 1}, t0)
		}
	})
	for _, s := range []State{Running, Succeeded, Failed, Cancelled} {
		t.Run("refused when "+string(s), func(t *testing.T) {
			j := newTestJob(0)
			j.State = s
			before := snapshot(j)
			_, err := j.startAttempt("runner", t0)
			if err == nil {
				t.Fatal("startAttempt = nil error, want refusal")
			}
			if !strings.Contains(err.Error(), string(s)) ||
				!strings.Contains(err.Error(), j.ID) {
				t.Errorf("error %q does not name the job and its state", err)
			}
			if !reflect.DeepEqual(j, before) {
				t.Errorf("job changed: %s, was %s", describe(j), describe(before))
			}
		})
	}
}

func TestApplyResult(t *testing.T) {
	t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
	t.Run("success", func(t *testing.T) {
		j := newTestJob(3)
		mustStart(t, j, "r", t0)
		applied, retry := j.applyResult(1, 1, outcome{ExitCode: 0, Reason: "exit 0"}, t1)
		if !applied || retry {
			t.Fatalf("applyResult = %v, %v; want true, false", applied, retry)
		}
		if j.State != Succeeded || codeString(j.ExitCode) != "0" || !j.Finished.Equal(t1) ||
			j.Reason != "" || j.Version != 3 {
			t.Errorf("job = %s, want succeeded, exit 0, finished, version 3", describe(j))
		}
		a := j.Current()
		if a.State != AttemptSucceeded || codeString(a.ExitCode) != "0" ||
			!a.Ended.Equal(t1) {
			t.Errorf("attempt = %+v, want succeeded with exit 0 at %v", a, t1)
		}
	})
	t.Run("failure retried", func(t *testing.T) {
		j := newTestJob(1)
		mustStart(t, j, "r", t0)
		applied, retry := j.applyResult(1, 1, outcome{ExitCode: 3, Reason: "boom"}, t1)
		if !applied || !retry {
			t.Fatalf("applyResult = %v, %v; want true, true", applied, retry)
		}
		if j.State != Pending || j.ExitCode != nil || !j.Finished.IsZero() {
			t.Errorf("job = %s, want pending without exit code", describe(j))
		}
		if want := "attempt 1 failed (boom); retrying"; j.Reason != want {
			t.Errorf("reason = %q, want %q", j.Reason, want)
		}
		a := j.Current()
		if a.State != AttemptFailed || codeString(a.ExitCode) != "3" || a.Reason != "boom" {
			t.Errorf("attempt = %+v, want failed with exit 3", a)
		}
	})
	t.Run("last attempt fails", func(t *testing.T) {
		j := newTestJob(1)
		mustStart(t, j, "r", t0)
		j.applyResult(1, 1, outcome{ExitCode: 3, Reason: "boom"}, t1)
		mustStart(t, j, "r", t1)
		applied, retry := j.applyResult(2, 1, outcome{ExitCode: 4, Reason: "again"}, t2)
		if !applied || retry {
			t.Fatalf("applyResult = %v, %v; want true, false", applied, retry)
		}
		if j.State != Failed || codeString(j.ExitCode) != "4" || j.Reason != "again" ||
			!j.Finished.Equal(t2) {
			t.Errorf("job = %s, want failed, exit 4, reason again", describe(j))
		}
	})
	t.Run("no retries", func(t *testing.T) {
		j := newTestJob(0)
		mustStart(t, j, "r", t0)
		if _, retry := j.applyResult(1, 1, outcome{ExitCode: 1}, t1); retry ||
			j.State != Failed {
			t.Errorf("job = %s (retry %v), want failed", describe(j), retry)
		}
	})
	t.Run("cancelled by the runner", func(t *testing.T) {
		j := newTestJob(2)
		mustStart(t, j, "r", t0)
		applied, retry := j.applyResult(1, 1,
			outcome{ExitCode: 143, Reason: "stopped", Cancelled: true}, t1)
		if !applied || retry || j.State != Cancelled || j.Reason != "stopped" ||
			codeString(j.ExitCode) != "143" || j.Current().State != AttemptCancelled {
			t.Errorf("job = %s (%v, %v), want cancelled with exit 143",
				describe(j), applied, retry)
		}
	})
}

// TestApplyResultDuplicates checks that a result that does not decide the
// current attempt changes nothing but the duplicate count and version.
func TestApplyResultDuplicates(t *testing.T) {
	t1 := t0.Add(time.Minute)
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, j *Job)
		n       int
		epoch   uint64
		o       outcome
	}{
		{"stale attempt", func(t *testing.T, j *Job) {
			j.Spec.Retries = 1
			mustStart(t, j, "r", t0)
			j.applyResult(1, 1, outcome{ExitCode: 1}, t0)
			mustStart(t, j, "r", t0)
		}, 1, 1, outcome{ExitCode: 0}},
		{"future attempt", func(t *testing.T, j *Job) {
			mustStart(t, j, "r", t0)
		}, 2, 1, outcome{ExitCode: 0}},
		{"old epoch", func(t *testing.T, j *Job) {
			j.Epoch = 2
			mustStart(t, j, "r", t0)
		}, 1, 1, outcome{ExitCode: 0}},
		{"newer epoch", func(t *testing.T, j *Job) {
			mustStart(t, j, "r", t0)
		}, 1, 2, outcome{ExitCode: 0}},
		{"second result after success", func(t *testing.T, j *Job) {
			mustStart(t, j, "r", t0)
			j.applyResult(1, 1, outcome{ExitCode: 0}, t0)
		}, 1, 1, outcome{ExitCode: 1, Reason: "late"}},
		{"second result after failure", func(t *testing.T, j *Job) {
			mustStart(t, j, "r", t0)
			j.applyResult(1, 1, outcome{ExitCode: 2, Reason: "first"}, t0)
		}, 1, 1, outcome{ExitCode: 0}},
		{"result of a retried attempt", func(t *testing.T, j *Job) {
			j.Spec.Retries = 1
			mustStart(t, j, "r", t0)
			j.applyResult(1, 1, outcome{ExitCode: 2}, t0)
		}, 1, 1, outcome{ExitCode: 0}},
		{"never started", func(t *testing.T, j *Job) {}, 1, 1, outcome{ExitCode: 0}},
		{"lost attempt", func(t *testing.T, j *Job) {
			mustStart(t, j, "r", t0)
			j.loseAttempt("gone", t0)
		}, 1, 1, outcome{ExitCode: 0}},
		{"cancelled pending job", func(t *testing.T, j *Job) {
			j.cancel(t0)
		}, 1, 1, outcome{ExitCode: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := newTestJob(0)
			tc.prepare(t, j)
			before := snapshot(j)
			applied, retry := j.applyResult(tc.n, tc.epoch, tc.o, t1)
			if applied || retry {
				t.Errorf("applyResult = %v, %v; want false, false", applied, retry)
			}
			if j.Duplicates != before.Duplicates+1 {
				t.Errorf("duplicates = %d, want %d", j.Duplicates, before.Duplicates+1)
			}
			if j.Version <= before.Version {
				t.Errorf("version = %d, want above %d", j.Version, before.Version)
			}
			j.Duplicates, j.Version = before.Duplicates, before.Version
			if !reflect.DeepEqual(j, before) {
				t.Errorf("job changed:\n got %s\nwant %s", describe(j), describe(before))
			}
		})
	}
}

func TestCancel(t *testing.T) {
	t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
	t.Run("pending", func(t *testing.T) {
		j := newTestJob(0)
		if !j.cancel(t1) {
			t.Fatal("cancel = false, want true")
		}
		if j.State != Cancelled || !j.Cancel || j.Reason != "cancelled" ||
			j.ExitCode != nil || !j.Finished.Equal(t1) || j.Version != 2 {
			t.Errorf("job = %s, want cancelled at t1 without exit code", describe(j))
		}
	})
	t.Run("running, then the runner confirms", func(t *testing.T) {
		j := newTestJob(0)
		mustStart(t, j, "r", t0)
		if !j.cancel(t1) {
			t.Fatal("cancel = false, want true")
		}
		a := j.Current()
		if j.State != Cancelled || a.State != AttemptCancelled || !a.Ended.Equal(t1) ||
			a.ExitCode != nil {
			t.Fatalf("job = %s, want cancelled, attempt awaiting exit",
				describe(j))
		}
		applied, retry := j.applyResult(1, 1, outcome{ExitCode: 143, Cancelled: true}, t2)
		if applied || retry {
			t.Errorf("confirm = %v, %v; want false, false", applied, retry)
		}
		if codeString(a.ExitCode) != "143" || j.Duplicates != 0 || j.State != Cancelled ||
			j.ExitCode != nil || !j.Finished.Equal(t1) {
			t.Errorf("after confirm: %s, want exit 143 on the attempt only", describe(j))
		}
		j.applyResult(1, 1, outcome{ExitCode: 0}, t2)
		if j.Duplicates != 1 || codeString(a.ExitCode) != "143" {
			t.Errorf("second confirm: %s, want one duplicate, exit kept", describe(j))
		}
	})
	for _, s := range []State{Succeeded, Failed, Cancelled} {
		t.Run("refused when "+string(s), func(t *testing.T) {
			j := newTestJob(0)
			j.State, j.ExitCode, j.Finished = s, intp(5), t0
			before := snapshot(j)
			if j.cancel(t1) {
				t.Error("cancel = true, want false")
			}
			if !reflect.DeepEqual(j, before) {
				t.Errorf("job changed: %s, was %s", describe(j), describe(before))
			}
		})
	}
}

func TestLoseAttempt(t *testing.T) {
	t1 := t0.Add(time.Minute)
	t.Run("back to pending", func(t *testing.T) {
		j := newTestJob(0)
		mustStart(t, j, "r", t0)
		j.loseAttempt("lease expired", t1)
		a := j.Attempts[0]
		if j.State != Pending || a.State != AttemptLost || a.Reason != "lease expired" ||
			!a.Ended.Equal(t1) || j.Version != 3 {
			t.Errorf("job = %s, want pending with attempt 1 lost", describe(j))
		}
		if want := "attempt 1 lost: lease expired"; j.Reason != want {
			t.Errorf("reason = %q, want %q", j.Reason, want)
		}
	})
	t.Run("retries not consumed", func(t *testing.T) {
		j := newTestJob(0)
		for range maxLostAttempts - 1 {
			mustStart(t, j, "r", t0)
			j.loseAttempt("gone", t0)
		}
		mustStart(t, j, "r", t0)
		applied, retry := j.applyResult(maxLostAttempts, 1, outcome{ExitCode: 1}, t1)
		if !applied || retry || j.State != Failed {
			t.Fatalf("job = %s, want failed on its first failure", describe(j))
		}
		j = newTestJob(1)
		mustStart(t, j, "r", t0)
		j.loseAttempt("gone", t0)
		mustStart(t, j, "r", t0)
		if _, retry := j.applyResult(2, 1, outcome{ExitCode: 1}, t1); !retry {
			t.Errorf("job = %s, want a retry left after a lost attempt", describe(j))
		}
	})
	t.Run("too many lost runners", func(t *testing.T) {
		j := newTestJob(5)
		for i := 1; i <= maxLostAttempts; i++ {
			if j.State != Pending {
				t.Fatalf("before attempt %d: %s, want pending", i, describe(j))
			}
			mustStart(t, j, fmt.Sprint("r", i), t0)
			j.loseAttempt("crashed", t1)
		}
		if j.State != Failed || j.ExitCode != nil || !j.Finished.Equal(t1) {
			t.Fatalf("job = %s, want failed without exit code", describe(j))
		}
		want := fmt.Sprintf("lost %d runners; last: crashed", maxLostAttempts)
		if j.Reason != want {
			t.Errorf("reason = %q, want %q", j.Reason, want)
		}
	})
	t.Run("job marked for cancel", func(t *testing.T) {
		j := newTestJob(0)
		mustStart(t, j, "r", t0)
		j.Cancel = true
		j.loseAttempt("gone", t1)
		if j.State != Cancelled || j.Reason != "cancelled" || j.ExitCode != nil {
			t.Errorf("job = %s, want cancelled", describe(j))
		}
	})
	for _, s := range []State{Pending, Succeeded, Failed, Cancelled} {
		t.Run("ignored when "+string(s), func(t *testing.T) {
			j := newTestJob(0)
			mustStart(t, j, "r", t0)
			j.State = s
			before := snapshot(j)
			j.loseAttempt("gone", t1)
			if !reflect.DeepEqual(j, before) {
				t.Errorf("job changed: %s, was %s", describe(j), describe(before))
			}
		})
	}
}

// TestTerminalStateIsFinal drives jobs through random sequences of calls
// with random arguments and checks the lifecycle's invariants after each:
// a terminal job's state, exit code, reason and finish time never change,
// the version never falls and rises with every change, and a live job
// holds no outcome.
func TestTerminalStateIsFinal(t *testing.T) {
	const seed1, seed2 = 20260301, 7
	r := rand.New(rand.NewPCG(seed1, seed2))
	for seq := range 3000 {
		j := newTestJob(r.IntN(4))
		now := t0
		var log []string
		for step := range 60 {
			now = now.Add(time.Second)
			before := snapshot(j)
			log = append(log, randomCall(r, j, now))
			if err := checkStep(before, j); err != "" {
				t.Fatalf("sequence %d step %d: %s\ncalls: %s\nbefore: %s\nafter:  %s",
					seq, step, err, strings.Join(log, "; "), describe(before), describe(j))
			}
		}
	}
}

// randomCall makes one lifecycle call on j with random arguments and
// returns what it did.
func randomCall(r *rand.Rand, j *Job, now time.Time) string {
	switch r.IntN(5) {
	case 0, 1:
		runner := []string{"a", "b"}[r.IntN(2)]
		_, err := j.startAttempt(runner, now)
		return fmt.Sprintf("start(%s)=%v", runner, err == nil)
	case 2:
		n := r.IntN(len(j.Attempts) + 2) // 0 to one past the current
		epoch := uint64(r.IntN(3))
		o := outcome{ExitCode: []int{0, 1, 2, 137, -1}[r.IntN(5)], Reason: "r",
			Cancelled: r.IntN(10) == 0}
		applied, retry := j.applyResult(n, epoch, o, now)
		return fmt.Sprintf("result(%d,e%d,%+v)=%v,%v", n, epoch, o, applied, retry)
	case 3:
		j.loseAttempt("gone", now)
		return "lose"
	default:
		return fmt.Sprintf("cancel=%v", j.cancel(now))
	}
}

// checkStep returns what invariant the step from before to j broke, or "".
func checkStep(before, j *Job) string {
	if j.Version < before.Version {
		return "version fell"
	}
	if !reflect.DeepEqual(before, j) && j.Version == before.Version {
		return "job changed without a new version"
	}
	if before.State.Terminal() {
		switch {
		case j.State != before.State:
			return "terminal state changed"
		case codeString(j.ExitCode) != codeString(before.ExitCode):
			return "exit code of a finished job changed"
		case !j.Finished.Equal(before.Finished):
			return "finish time changed"
		case j.Reason != before.Reason:
			return "reason of a finished job changed"
		case len(j.Attempts) != len(before.Attempts):
			return "a finished job got an attempt"
		}
	}
	return checkShape(j)
}

// checkShape returns which invariant of one job's record j breaks, or "".
func checkShape(j *Job) string {
	if !j.State.Terminal() && (j.ExitCode != nil || !j.Finished.IsZero()) {
		return "a live job has an outcome"
	}
	if j.State.Terminal() && j.Finished.IsZero() {
		return "a finished job has no finish time"
	}
	for i, a := range j.Attempts {
		if a.N != i+1 {
			return fmt.Sprintf("attempt %d is numbered %d", i+1, a.N)
		}
		if a.State == AttemptRunning && (i != len(j.Attempts)-1 || j.State != Running) {
			return fmt.Sprintf("attempt %d runs but is not the current "+
				"one of a running job", a.N)
		}
	}
	cur := j.Current()
	if j.State == Running && (cur == nil || cur.State != AttemptRunning) {
		return "a running job has no running attempt"
	}
	if n := j.failedAttempts(); n > j.Spec.Retries+1 {
		return fmt.Sprintf("%d failed attempts with %d retries", n, j.Spec.Retries)
	}
	if n := j.lostAttempts(); n > maxLostAttempts {
		return fmt.Sprintf("%d lost attempts", n)
	}
	return ""
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		base Duration
		n    int
		want time.Duration
	}{
		{0, 0, time.Second},
		{0, 1, time.Second},
		{0, 2, 2 * time.Second},
		{0, 3, 4 * time.Second},
		{0, 9, 256 * time.Second},
		{0, 10, MaxBackoff},
		{0, 1 << 30, MaxBackoff},
		{Duration(10 * time.Second), 1, 10 * time.Second},
		{Duration(10 * time.Second), 5, 160 * time.Second},
		{Duration(10 * time.Second), 6, MaxBackoff},
		{Duration(time.Hour), 1, MaxBackoff},
		{Duration(MaxTimeout), 3, MaxBackoff},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.base.D(), tc.n), func(t *testing.T) {
			j := newTestJob(0)
			j.Spec.Backoff = tc.base
			if got := j.backoff(tc.n, nil); got != tc.want {
				t.Errorf("backoff without jitter = %s, want %s", got, tc.want)
			}
			var asked time.Duration
			most := j.backoff(tc.n, func(d time.Duration) time.Duration {
				asked = d
				return d - 1
			})
			if asked != tc.want/4 {
				t.Errorf("jitter asked for up to %s, want %s", asked, tc.want/4)
			}
			if most != tc.want+tc.want/4-1 {
				t.Errorf("backoff with the most jitter = %s, want %s", most,
					tc.want+tc.want/4-1)
			}
			for range 200 {
				got := j.backoff(tc.n, jitter)
				if got < tc.want || got >= tc.want+tc.want/4 {
					t.Fatalf("backoff with jitter = %s, want in [%s, %s)", got,
						tc.want, tc.want+tc.want/4)
				}
			}
		})
	}
}

func TestNewJobID(t *testing.T) {
	times := []time.Time{t0, t0.Add(time.Millisecond), t0.Add(time.Second),
		t0.Add(24 * time.Hour), t0.AddDate(30, 0, 0)}
	var prev string
	for i, at := range times {
		id := NewJobID(at)
		if !validJobID(id) {
			t.Errorf("NewJobID(%v) = %q, not valid", at, id)
		}
		if strings.ToLower(id) != id {
			t.Errorf("NewJobID(%v) = %q, want lowercase hex", at, id)
		}
		if i > 0 && id <= prev {
			t.Errorf("NewJobID(%v) = %q sorts before %q of an earlier time", at, id, prev)
		}
		prev = id
	}
	seen := make(map[string]bool)
	for range 1000 {
		id := NewJobID(t0)
		if seen[id] {
			t.Fatalf("NewJobID made %q twice for one instant", id)
		}
		seen[id] = true
	}
}

func TestValidJobID(t *testing.T) {
	good := NewJobID(t0)
	for _, tc := range []struct {
		name string
		id   string
		want bool
		bug  string
	}{
		{"made by NewJobID", good, true, ""},
		{"empty", "", false, ""},
		{"one short", good[:27], false, ""},
		{"one long", good + "0", false, ""},
		{"not hex", good[:27] + "g", false, ""},
		{"path", "../../../../etc/passwd/x/y/z", false, ""},
		{"uppercase", strings.ToUpper(good[:27]) + "F", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.bug != "" {
				t.Skip(tc.bug)
			}
			if got := validJobID(tc.id); got != tc.want {
				t.Errorf("validJobID(%q) = %v, want %v", tc.id, got, tc.want)
			}
		})
	}
}

func TestNewer(t *testing.T) {
	for _, tc := range []struct {
		a, b [2]uint64 // epoch, version
		want bool
	}{
		{[2]uint64{1, 2}, [2]uint64{1, 1}, true},
		{[2]uint64{1, 1}, [2]uint64{1, 2}, false},
		{[2]uint64{1, 1}, [2]uint64{1, 1}, false},
		{[2]uint64{2, 1}, [2]uint64{1, 99}, true},
		{[2]uint64{1, 99}, [2]uint64{2, 1}, false},
		{[2]uint64{0, 0}, [2]uint64{0, 0}, false},
	} {
		t.Run(fmt.Sprint(tc.a, tc.b), func(t *testing.T) {
			a := &Job{Epoch: tc.a[0], Version: tc.a[1]}
			b := &Job{Epoch: tc.b[0], Version: tc.b[1]}
			if got := a.Newer(b); got != tc.want {
				t.Errorf("%v.Newer(%v) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

func TestClone(t *testing.T) {
	orig := func() *Job {
		j := newTestJob(1)
		j.Spec.Env = map[string]string{"A": "1"}
		j.Spec.Require = []string{"os=linux"}
		j.Spec.Payload = json.RawMessage(`{"k":"v"}`)
		j.Replicas = []string{"r1", "r2"}
		j.ExitCode = intp(3)
		j.Attempts = []Attempt{{N: 1, Peer: "a", State: AttemptFailed, ExitCode: intp(3)}}
		return j
	}
	for _, tc := range []struct {
		name   string
		mutate func(c *Job)
		bug    string
	}{
		{"attempts", func(c *Job) { c.Attempts[0].State = AttemptLost }, ""},
		{"appended attempt", func(c *Job) {
			c.Attempts = append(c.Attempts[:1], Attempt{N: 2})
		}, ""},
		{"exit code", func(c *Job) { *c.ExitCode = 9 }, ""},
		{"replicas", func(c *Job) { c.Replicas[0] = "x" }, ""},
		{"attempt exit code", func(c *Job) { *c.Attempts[0].ExitCode = 9 }, ""},
		{"command", func(c *Job) { c.Spec.Command[0] = "y" }, ""},
		{"env", func(c *Job) { c.Spec.Env["A"] = "2" }, ""},
		{"require", func(c *Job) { c.Spec.Require[0] = "os=plan9" }, ""},
		{"payload", func(c *Job) { c.Spec.Payload[2] = 'X' }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.bug != "" {
				t.Skip(tc.bug)
			}
			j := orig()
			want := mustJSON(j)
			c := j.Clone()
			if !reflect.DeepEqual(c, j) {
				t.Fatalf("Clone = %s, want %s", mustJSON(c), want)
			}
			tc.mutate(c)
			if got := mustJSON(j); string(got) != string(want) {
				t.Errorf("changing the clone changed the original:\n got %s\nwant %s",
					got, want)
			}
		})
	}
}
