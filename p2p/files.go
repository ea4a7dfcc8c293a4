package p2p

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// Identity files hold a libp2p-marshalled private key; secret files hold
// the secret in hex on one line. Both are small, so a larger file is
// refused before it is read in full.
const (
	fileMode        = 0o600
	dirMode         = 0o700
	maxIdentityFile = 4 << 10
	maxSecretFile   = 1 << 10
)

// LoadOrCreateIdentity returns the Ed25519 key stored at path, creating the
// file (mode 0600, parent directory 0700) with a new key if it does not
// exist. It is not safe to call concurrently on the same path from several
// processes: both may create a key and the last rename wins.
func LoadOrCreateIdentity(path string) (crypto.PrivKey, error) {
	key, err := LoadIdentity(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key, _, err = crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate identity: %w", err)
	}
	raw, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal identity: %w", err)
	}
	if err := writeFileAtomic(path, raw); err != nil {
		return nil, fmt.Errorf("write identity: %w", err)
	}
	return key, nil
}

// LoadIdentity reads the Ed25519 key stored at path. The error wraps
// fs.ErrNotExist when the file is missing and names the path when it is
// corrupt or holds another key type.
func LoadIdentity(path string) (crypto.PrivKey, error) {
	raw, err := readSmallFile(path, maxIdentityFile)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	key, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("load identity %s: corrupt key: %w", path, err)
	}
	if key.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("load identity %s: %s key, want Ed25519",
			path, key.Type())
	}
	return key, nil
}

// NewSecret returns a new random mesh secret of SecretSize bytes.
func NewSecret() ([]byte, error) {
	s := make([]byte, SecretSize)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("generate secret: %w", err)
	}
	return s, nil
}

// LoadSecret reads a mesh secret written by WriteSecret: SecretSize bytes
// as hex on one line. The error names the path when the file is corrupt.
func LoadSecret(path string) ([]byte, error) {
	raw, err := readSmallFile(path, maxSecretFile)
	if err != nil {
		return nil, fmt.Errorf("load secret: %w", err)
	}
	text := bytes.TrimSpace(raw)
	if len(text) != 2*SecretSize {
		return nil, fmt.Errorf("load secret %s: %d characters, want %d hex digits",
			path, len(text), 2*SecretSize)
	}
	secret := make([]byte, SecretSize)
	if _, err := hex.Decode(secret, text); err != nil {
		return nil, fmt.Errorf("load secret %s: %w", path, err)
	}
	return secret, nil
}

// WriteSecret writes secret to path as hex, atomically: a temporary file in
// the same directory is written with mode 0600, synced and renamed over
// path. The parent directory is created with mode 0700 if missing.
func WriteSecret(path string, secret []byte) error {
	if len(secret) != SecretSize {
		return fmt.Errorf("write secret: %d bytes, want exactly %d",
			len(secret), SecretSize)
	}
	text := hex.AppendEncode(nil, secret)
	if err := writeFileAtomic(path, append(text, '\n')); err != nil {
		return fmt.Errorf("write secret: %w", err)
	}
	return nil
}

// readSmallFile reads path, refusing files larger than limit.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(buf)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return buf, nil
}

// writeFileAtomic replaces path with data so that a reader sees either the
// old content or the new, never a part: write a temporary file, sync it,
// rename it and sync the directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file in %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename

	if err := writeAndSync(tmp, data); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename to %s: %w", path, err)
	}
	return syncDir(dir)
}

func writeAndSync(f *os.File, data []byte) error {
	err := f.Chmod(fileMode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
