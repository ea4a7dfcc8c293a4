package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCount(t *testing.T) {
	tests := []struct {
		in   string
		want counts
	}{
		{"", counts{}},
		{"one", counts{0, 1, 3}},
		{"one two\n", counts{1, 2, 8}},
		{"  lead and trail  \n\n", counts{2, 3, 20}},
		{"tabs\tand\nnew\r\nlines", counts{2, 4, 19}},
		{"héllo wörld\n", counts{1, 2, 14}},
		{"bad \xff byte", counts{0, 3, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := count(strings.NewReader(tt.in))
			if err != nil || got != tt.want {
				t.Errorf("count(%q) = %+v, %v; want %+v", tt.in, got, err,
					tt.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.txt")
	b := filepath.Join(dir, "b.txt")
	for name, data := range map[string]string{a: "one two\nthree\n",
		b: "four"} {
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantOut  string
		wantErr  string
		wantCode int
	}{
		{"stdin", nil, "a b c\nd\n", "2 4 8\n", "", 0},
		{"one file", []string{a}, "", "2 3 14 " + a + "\n", "", 0},
		{"two files", []string{a, b}, "", "2 3 14 " + a + "\n0 1 4 " + b +
			"\n2 4 18 total\n", "", 0},
		{"missing file", []string{missing, b}, "", "0 1 4 " + b +
			"\n0 1 4 total\n", "open " + missing, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errw bytes.Buffer
			code := run(tt.args, strings.NewReader(tt.stdin), &out, &errw)
			if code != tt.wantCode || out.String() != tt.wantOut {
				t.Errorf("got code %d out %q, want %d %q", code,
					out.String(), tt.wantCode, tt.wantOut)
			}
			if !strings.Contains(errw.String(), tt.wantErr) {
				t.Errorf("stderr %q lacks %q", errw.String(), tt.wantErr)
			}
		})
	}
}
