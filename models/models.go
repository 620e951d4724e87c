// Package models owns the trained models the edge ships under models/ and
// their manifests: what a model is (name, version, input size), what it was
// trained on, how well it measured, and the sha256 of its file. Load refuses
// a model whose bytes do not match the manifest, so a box never runs a model
// other than the one that was measured.
package models

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// ErrChecksum means a model file's sha256 differs from its manifest's.
var ErrChecksum = errors.New("sha256 mismatch")

// Manifest describes one model file. File is relative to the manifest's
// directory.
type Manifest struct {
	Name     string             `json:"name"`
	Version  string             `json:"version"`
	File     string             `json:"file"`
	SHA256   string             `json:"sha256"`
	Input    Input              `json:"input"`
	Training Training           `json:"training"`
	Metrics  map[string]float64 `json:"metrics"`
	Notes    string             `json:"notes,omitempty"`
}

// Input says what the model looks at.
type Input struct {
	Kind   string `json:"kind"`   // e.g. "crop+context"
	Width  int    `json:"width"`  // cells the crop is resampled to
	Height int    `json:"height"` // cells the crop is resampled to
	Notes  string `json:"notes,omitempty"`
}

// Training says what the model was trained on and how to do it again.
type Training struct {
	Data    []string `json:"data"`
	Samples int      `json:"samples"`
	Options string   `json:"options,omitempty"`
	Command string   `json:"command"`
	// Photos holds the first 16 hex digits of the sha256 of every
	// training photo, so that a benchmark can tell which of its photos the
	// model has already seen and keep them out of its fair figure.
	Photos []string `json:"photo_sha256,omitempty"`
}

var hexSHA = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Validate checks that the manifest names a model and a well-formed sha256.
func (m Manifest) Validate() error {
	switch {
	case m.Name == "":
		return errors.New("name: empty")
	case m.Version == "":
		return errors.New("version: empty")
	case m.File == "" || filepath.IsAbs(m.File):
		return fmt.Errorf("file: %q must be a path relative to the manifest", m.File)
	case !hexSHA.MatchString(m.SHA256):
		return fmt.Errorf("sha256: %q is not 64 lower-case hex digits", m.SHA256)
	}
	return nil
}

// Sum returns the lower-case hex sha256 of b.
func Sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Load reads a manifest, then the model file it names, and returns both
// after checking the file's sha256. Unknown manifest keys are errors.
func Load(manifestPath string) (Manifest, []byte, error) {
	raw, err := os.ReadFile(manifestPath)
	if err != nil {
		return Manifest{}, nil, fmt.Errorf("models: %w", err)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, nil, fmt.Errorf("models: %s: %w", manifestPath, err)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, nil, fmt.Errorf("models: %s: %w", manifestPath, err)
	}
	path := filepath.Join(filepath.Dir(manifestPath), m.File)
	b, err := os.ReadFile(path)
	if err != nil {
		return Manifest{}, nil, fmt.Errorf("models: %s: %w", manifestPath, err)
	}
	if got := Sum(b); got != m.SHA256 {
		return Manifest{}, nil, fmt.Errorf("models: %s: %w: manifest %s says %s, file has %s",
			path, ErrChecksum, manifestPath, m.SHA256, got)
	}
	return m, b, nil
}

// Write stores model bytes as dir/m.File and the manifest as
// dir/manifest.json, filling in m.SHA256 from the bytes.
func Write(dir string, m Manifest, model []byte) (Manifest, error) {
	m.SHA256 = Sum(model)
	if err := m.Validate(); err != nil {
		return m, fmt.Errorf("models: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return m, fmt.Errorf("models: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, m.File), model, 0o644); err != nil {
		return m, fmt.Errorf("models: %w", err)
	}
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return m, fmt.Errorf("models: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), js.Bytes(), 0o644); err != nil {
		return m, fmt.Errorf("models: %w", err)
	}
	return m, nil
}
