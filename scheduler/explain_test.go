package scheduler

import (
	"testing"
)

// cand returns a candidate peer offering the executors in execs, with
// 4 CPUs, 8 GiB and the given labels.
func cand(id string, execs []string, labels map[string]string) candidate {
	c := candidate{id: id, executors: map[string]bool{}, labels: labels,
		cpu: 4, mem: 8 << 30}
	for _, e := range execs {
		c.executors[e] = true
	}
	return c
}

func draining(c candidate) candidate { c.draining = true; return c }

func jobWith(executor string, require []string, res Resources) *Job {
	return &Job{ID: NewJobID(t0), State: Pending,
		Spec: Spec{Executor: executor, Require: require, Resources: res}}
}

func TestExplain(t *testing.T) {
	exec := []string{"exec", "noop"}
	linuxA := cand("a", exec, map[string]string{"os": "linux", "zone": "a"})
	gpuB := cand("b", exec, map[string]string{"os": "linux", "zone": "b", "gpu": "true"})
	gpuNoExec := cand("c", []string{"noop"},
		map[string]string{"gpu": "true", "python": "3.12.1"})
	for _, tc := range []struct {
		name  string
		job   *Job
		cands []candidate
		want  string
	}{
		{"no peer at all", jobWith("exec", nil, Resources{}), nil,
			"no peer advertises executor exec"},
		{"no executor", jobWith("docker", nil, Resources{}),
			[]candidate{linuxA, gpuB},
			"no peer advertises executor docker"},
		{"unmet constraint", jobWith("exec", []string{"os=linux", "gpu=true"}, Resources{}),
			[]candidate{linuxA},
			"no peer meets requirement gpu=true"},
		{"constraint met only without the executor",
			jobWith("exec", []string{"python>=3.11"}, Resources{}),
			[]candidate{linuxA, gpuB, gpuNoExec},
			"no peer meets requirement python>=3.11"},
		{"first unmet constraint named",
			jobWith("exec", []string{"os=linux", "arch in (riscv64, s390x)", "gpu"},
				Resources{}),
			[]candidate{linuxA},
			"no peer meets requirement arch in (riscv64,s390x)"},
		{"no single peer meets all",
			jobWith("exec", []string{"zone=a", "gpu=true"}, Resources{}),
			[]candidate{linuxA, gpuB},
			"no single peer meets all of: zone=a, gpu=true"},
		{"cpu too big", jobWith("exec", nil, Resources{CPU: 6}),
			[]candidate{linuxA, gpuB},
			"no peer has resources cpu=6 memory=0 B"},
		{"memory too big", jobWith("exec", []string{"gpu=true"},
			Resources{CPU: 1, Memory: 16 << 30}),
			[]candidate{linuxA, gpuB},
			"no peer has resources cpu=1 memory=16 GiB"},
		{"big enough only without the constraint",
			jobWith("exec", []string{"zone=b"}, Resources{Memory: 12 << 30}),
			[]candidate{gpuB, func() candidate {
				c := cand("big", exec, map[string]string{"zone": "a"})
				c.mem = 64 << 30
				return c
			}()},
			"no peer has resources cpu=0 memory=12 GiB"},
		{"every match draining", jobWith("exec", []string{"gpu=true"}, Resources{}),
			[]candidate{linuxA, draining(gpuB)},
			"waiting: every matching peer is draining"},
		{"the big one draining", jobWith("exec", nil, Resources{CPU: 8}),
			[]candidate{linuxA, func() candidate {
				c := draining(cand("big", exec, nil))
				c.cpu = 16
				return c
			}()},
			"waiting: every matching peer is draining"},
		{"waiting for a slot", jobWith("exec", []string{"gpu=true"}, Resources{CPU: 4}),
			[]candidate{linuxA, draining(linuxA), gpuB},
			"waiting for a free slot"},
		{"exactly the resources", jobWith("exec", nil, Resources{CPU: 4, Memory: 8 << 30}),
			[]candidate{linuxA},
			"waiting for a free slot"},
		{"negative constraint on missing label",
			jobWith("noop", []string{"!gpu", "zone notin (b)"}, Resources{}),
			[]candidate{linuxA},
			"waiting for a free slot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := explain(tc.job, tc.cands); got != tc.want {
				t.Errorf("explain = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOfferFits(t *testing.T) {
	of := offer{
		executors: map[string]bool{"exec": true, "docker": true},
		labels:    map[string]string{"os": "linux", "docker": "28.2.2", "zone": "a"},
		freeCPU:   2.5,
		freeMem:   1 << 30,
	}
	for _, tc := range []struct {
		name     string
		executor string
		require  []string
		res      Resources
		want     bool
	}{
		{"plain", "exec", nil, Resources{}, true},
		{"executor not offered", "wasm", nil, Resources{}, false},
		{"constraints met", "docker", []string{"os=linux", "docker>=24", "zone in (a,b)"},
			Resources{}, true},
		{"version too old", "docker", []string{"docker>=29"}, Resources{}, false},
		{"label missing", "exec", []string{"gpu"}, Resources{}, false},
		{"negative constraint on missing label", "exec", []string{"!gpu"},
			Resources{}, true},
		{"bad constraint", "exec", []string{"os=="}, Resources{}, false},
		{"all free cpu", "exec", nil, Resources{CPU: 2.5}, true},
		{"cpu within rounding", "exec", nil, Resources{CPU: 2.5 + 1e-12}, true},
		{"too much cpu", "exec", nil, Resources{CPU: 2.6}, false},
		{"all free memory", "exec", nil, Resources{Memory: 1 << 30}, true},
		{"too much memory", "exec", nil, Resources{Memory: 1<<30 + 1}, false},
		{"both at once", "exec", nil, Resources{CPU: 2, Memory: 512 << 20}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := jobWith(tc.executor, tc.require, tc.res)
			if got := of.fits(j); got != tc.want {
				t.Errorf("fits(%s %v %+v) = %v, want %v", tc.executor, tc.require,
					tc.res, got, tc.want)
			}
		})
	}
	t.Run("nothing free", func(t *testing.T) {
		var none offer
		if none.fits(jobWith("exec", nil, Resources{})) {
			t.Error("an empty offer fits a job, want not")
		}
	})
}
