package models

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testManifest() Manifest {
	return Manifest{
		Name: "toy", Version: "1", File: "toy.bin",
		Input:    Input{Kind: "crop", Width: 8, Height: 8},
		Training: Training{Data: []string{"none"}, Samples: 1, Command: "echo"},
		Metrics:  map[string]float64{"accuracy": 1},
	}
}

func TestWriteLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	m, err := Write(dir, testManifest(), []byte("weights"))
	if err != nil {
		t.Fatal(err)
	}
	got, b, err := Load(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "weights" || got.SHA256 != m.SHA256 || got.SHA256 != Sum([]byte("weights")) || got.Metrics["accuracy"] != 1 {
		t.Errorf("Load = %+v, %q; wrote %+v", got, b, m)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(t *testing.T, dir string) // breaks a good model directory
		want  []string                       // substrings of the error
		isSum bool
	}{
		{
			name: "model file changed",
			edit: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "toy.bin"), "tampered")
			},
			want:  []string{"toy.bin", "sha256 mismatch", Sum([]byte("weights")), Sum([]byte("tampered"))},
			isSum: true,
		},
		{
			name: "model file missing",
			edit: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "toy.bin")) },
			want: []string{"toy.bin", "no such file"},
		},
		{
			name: "manifest missing",
			edit: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "manifest.json")) },
			want: []string{"manifest.json", "no such file"},
		},
		{
			name: "unknown manifest key",
			edit: func(t *testing.T, dir string) {
				replace(t, filepath.Join(dir, "manifest.json"), `"name"`, `"nmae": "x", "name"`)
			},
			want: []string{"manifest.json", `unknown field "nmae"`},
		},
		{
			name: "malformed sha256",
			edit: func(t *testing.T, dir string) {
				replace(t, filepath.Join(dir, "manifest.json"), Sum([]byte("weights")), "abc")
			},
			want: []string{"manifest.json", `sha256: "abc"`},
		},
		{
			name: "absolute model path",
			edit: func(t *testing.T, dir string) {
				replace(t, filepath.Join(dir, "manifest.json"), `"toy.bin"`, `"/etc/passwd"`)
			},
			want: []string{"manifest.json", "file:", "relative"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Write(dir, testManifest(), []byte("weights")); err != nil {
				t.Fatal(err)
			}
			tc.edit(t, dir)
			_, _, err := Load(filepath.Join(dir, "manifest.json"))
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if got := errors.Is(err, ErrChecksum); got != tc.isSum {
				t.Errorf("errors.Is(err, ErrChecksum) = %v, want %v", got, tc.isSum)
			}
		})
	}
}

// Every model shipped in this directory must load: its file matches its
// manifest's sha256.
func TestShippedManifests(t *testing.T) {
	paths, err := filepath.Glob("*/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no models/*/manifest.json")
	}
	for _, p := range paths {
		t.Run(filepath.Dir(p), func(t *testing.T) {
			m, b, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) == 0 || m.Training.Command == "" || len(m.Metrics) == 0 {
				t.Errorf("%s: incomplete manifest %+v", p, m)
			}
		})
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func replace(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", path, old)
	}
	write(t, path, strings.Replace(string(b), old, new, 1))
}
