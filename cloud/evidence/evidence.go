// Package evidence keeps evidence files (snapshots, annotated frames, clips)
// on disk, addressed by the sha256 of their content. Putting the same file
// twice is harmless, so uploads can be retried and resumed freely.
package evidence

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gridwatch/gridwatch/edge/wire"
)

// MaxBytes bounds one evidence file.
const MaxBytes = 64 << 20

// ErrHashMismatch means the uploaded bytes do not hash to the claimed name.
var ErrHashMismatch = errors.New("content does not match its sha256")

// ErrBadName means the name is not a lower-case hex sha256.
var ErrBadName = errors.New("not a lower-case hex sha256")

// Store is a directory of evidence files.
type Store struct {
	dir string
}

// Open creates dir if needed.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("evidence store: %w", err)
	}
	return &Store{dir: dir}, nil
}

func (s *Store) path(sum string) string {
	return filepath.Join(s.dir, sum[:2], sum)
}

// Put stores r under sum after checking that its content hashes to sum.
// created is false when the file was already there.
func (s *Store) Put(sum string, r io.Reader) (created bool, err error) {
	if !wire.ValidSHA256(sum) {
		return false, fmt.Errorf("evidence %q: %w", sum, ErrBadName)
	}
	if s.Has(sum) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r, MaxBytes))
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(s.path(sum)), 0o755); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path(sum)), ".upload-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, MaxBytes+1))
	if err != nil {
		tmp.Close()
		return false, fmt.Errorf("evidence %s: %w", sum, err)
	}
	if n > MaxBytes {
		tmp.Close()
		return false, fmt.Errorf("evidence %s: larger than %d bytes", sum, MaxBytes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		tmp.Close()
		return false, fmt.Errorf("evidence %s: content hashes to %s: %w", sum, got, ErrHashMismatch)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp.Name(), s.path(sum)); err != nil {
		return false, err
	}
	return true, nil
}

// Has reports whether sum is stored.
func (s *Store) Has(sum string) bool {
	if !wire.ValidSHA256(sum) {
		return false
	}
	_, err := os.Stat(s.path(sum))
	return err == nil
}

// Path returns the file of a stored sum, or an error if absent.
func (s *Store) Path(sum string) (string, error) {
	if !wire.ValidSHA256(sum) {
		return "", fmt.Errorf("evidence %q: %w", sum, ErrBadName)
	}
	p := s.path(sum)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("evidence %s: %w", sum, os.ErrNotExist)
	}
	return p, nil
}
