package p2p

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != want {
		t.Errorf("mode of %s = %04o, want %04o", path, got, want)
	}
}

func TestIdentityFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "identity.key")

	if _, err := LoadIdentity(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadIdentity of a missing file: %v, want fs.ErrNotExist", err)
	}
	created, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	checkMode(t, dir, 0o700)
	checkMode(t, path, 0o600)

	again, err := LoadOrCreateIdentity(path)
	if err != nil || !created.Equals(again) {
		t.Fatalf("LoadOrCreateIdentity again = %v, %v; want the created key",
			again, err)
	}
	loaded, err := LoadIdentity(path)
	if err != nil || !created.Equals(loaded) {
		t.Fatalf("LoadIdentity = %v, %v; want the created key", loaded, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the identity", len(entries))
	}
}

func TestCorruptFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		load    func(string) error
		wantErr string
	}{
		{"identity of junk", write("junk.key", []byte("not a key")),
			loadIdentityErr, "corrupt key"},
		{"empty identity", write("empty.key", nil), loadIdentityErr,
			"corrupt key"},
		{"huge identity", write("huge.key", make([]byte, 1<<20)),
			loadIdentityErr, "larger than"},
		{"secret too short", write("short.secret", []byte("abcd\n")),
			loadSecretErr, "4 characters, want 64 hex digits"},
		{"secret not hex", write("nothex.secret",
			[]byte(strings.Repeat("zz", 32))), loadSecretErr, "invalid byte"},
		{"secret raw bytes", write("raw.secret", make([]byte, 32)),
			loadSecretErr, "want 64 hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.load(tt.path)
			if err == nil {
				t.Fatal("loaded a corrupt file")
			}
			if !strings.Contains(err.Error(), tt.path) ||
				!strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want the path and %q", err, tt.wantErr)
			}
		})
	}
}

func loadIdentityErr(p string) error { _, err := LoadIdentity(p); return err }
func loadSecretErr(p string) error   { _, err := LoadSecret(p); return err }

func TestSecretFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mesh")
	path := filepath.Join(dir, "secret")
	secret := testSecret(t)
	if err := WriteSecret(path, secret); err != nil {
		t.Fatal(err)
	}
	checkMode(t, dir, 0o700)
	checkMode(t, path, 0o600)
	got, err := LoadSecret(path)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("LoadSecret = %x, %v; want %x", got, err, secret)
	}

	// Overwrite: the new secret replaces the old, no temporary remains.
	secret2 := testSecret(t)
	if err := WriteSecret(path, secret2); err != nil {
		t.Fatal(err)
	}
	if got, _ := LoadSecret(path); !bytes.Equal(got, secret2) {
		t.Errorf("after overwrite LoadSecret = %x, want %x", got, secret2)
	}
	checkMode(t, path, 0o600)
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the secret", len(entries))
	}

	if err := WriteSecret(path, []byte("short")); err == nil ||
		!strings.Contains(err.Error(), "5 bytes, want exactly 32") {
		t.Errorf("WriteSecret of 5 bytes: %v", err)
	}
	if _, err := LoadSecret(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadSecret of a missing file: %v, want fs.ErrNotExist", err)
	}
}
