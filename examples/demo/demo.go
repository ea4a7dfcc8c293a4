// Package demo is the workload of `blixard demo`: one job per
// subdirectory of a tree, each summarising its files, and the local
// computation the merged result is checked against.
package demo

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"text/template"
)

//go:embed scan.yaml
var specTemplate string

// Summary is what one scan job prints on stdout, as JSON.
type Summary struct {
	Files  int    `json:"files"`
	Lines  int    `json:"lines"`
	Bytes  int64  `json:"bytes"`
	Digest string `json:"digest"`
}

// Scan summarises the regular files under dir (only those directly in it
// when flat is set), in path order. Symbolic links are not followed.
func Scan(dir string, flat bool) (Summary, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && flat && path != dir {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return Summary{}, err
	}
	sort.Strings(paths)
	h := sha256.New()
	var s Summary
	for _, path := range paths {
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(h, "%s\x00", filepath.ToSlash(rel))
		n, lines, err := hashFile(h, path)
		if err != nil {
			return Summary{}, err
		}
		s.Files++
		s.Bytes += n
		s.Lines += lines
	}
	s.Digest = hex.EncodeToString(h.Sum(nil))
	return s, nil
}

func hashFile(h io.Writer, path string) (int64, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	buf := make([]byte, 64<<10)
	var n int64
	lines := 0
	for {
		k, err := r.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			n += int64(k)
			lines += bytes.Count(buf[:k], []byte{'\n'})
		}
		if err == io.EOF {
			return n, lines, nil
		}
		if err != nil {
			return 0, 0, err
		}
	}
}

// Part is one job of the workload.
type Part struct {
	Name    string // job name
	Dir     string // directory the job scans
	Flat    bool   // only the files directly in Dir
	Require string // a constraint, or ""
}

// Parts splits root into one part per subdirectory and one for the files
// directly in root. Every third part requires the label disk=ssd.
func Parts(root string) ([]Part, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	parts := []Part{{Name: "scan-root", Dir: root, Flat: true}}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		parts = append(parts, Part{Name: "scan-" + sanitize(e.Name()), Dir: filepath.Join(root, e.Name())})
	}
	for i := range parts {
		if i%3 == 2 {
			parts[i].Require = "disk=ssd"
		}
	}
	return parts, nil
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c == '.' || c == '_' || c == '-' || (c >= 'a' && c <= 'z') ||
			(c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		if !ok {
			b[i] = '-'
		}
	}
	return string(b)
}

// Spec renders the job spec of part; blixard is the path of the binary
// that runs `blixard scan`.
func Spec(part Part, blixard string) ([]byte, error) {
	t, err := template.New("scan").Parse(specTemplate)
	if err != nil {
		return nil, err
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	data := map[string]any{
		"Name": part.Name, "Dir": q(part.Dir), "Blixard": q(blixard), "Flat": part.Flat,
		"Require": "",
	}
	if part.Require != "" {
		data["Require"] = q(part.Require)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Merge combines the summaries of all parts, keyed by part name, into
// one: counts add up and the digest covers every part's digest in name
// order.
func Merge(parts map[string]Summary) Summary {
	names := make([]string, 0, len(parts))
	for n := range parts {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	var m Summary
	for _, n := range names {
		s := parts[n]
		m.Files += s.Files
		m.Lines += s.Lines
		m.Bytes += s.Bytes
		h.Write([]byte(n + "=" + s.Digest + "\n"))
	}
	m.Digest = hex.EncodeToString(h.Sum(nil))
	return m
}

// String formats s for a table.
func (s Summary) String() string {
	return strconv.Itoa(s.Files) + " files, " + strconv.Itoa(s.Lines) + " lines, " + s.Digest[:12]
}
