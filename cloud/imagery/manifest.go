package imagery

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/gridwatch/gridwatch/cloud/imagery/change"
)

// ManifestFile is the name of the manifest beside the model files.
const ManifestFile = "catalog.json"

// Manifest lists the change models of a folder, each with the sha256 the
// loader insists on and the metrics measured on data it was not trained on.
type Manifest struct {
	Default string          `json:"default"`
	Models  []ManifestEntry `json:"models"`
}

// ManifestEntry describes one model file.
type ManifestEntry struct {
	File         string   `json:"file"`
	Name         string   `json:"name"`
	Version      string   `json:"version"`
	SHA256       string   `json:"sha256"`
	TrainingData string   `json:"training_data"`
	TrainedOn    []string `json:"trained_on"`
	TrainCommand string   `json:"train_command"`
	// OutOfFold scores the training pairs with trees that did not see them
	// (pairs in 3 folds): an in-domain estimate.
	OutOfFold change.OutOfFold `json:"out_of_fold"`
	// Metrics are measured by "imagery eval --record NAME", keyed by NAME.
	Metrics map[string]Metrics `json:"metrics,omitempty"`
	Note    string             `json:"note,omitempty"`
}

// Metrics are pooled pixel scores of the changed class on one pair set.
type Metrics struct {
	Pairs          int     `json:"pairs"`
	Precision      float64 `json:"precision"`
	Recall         float64 `json:"recall"`
	F1             float64 `json:"f1"`
	IoU            float64 `json:"iou"`
	MsPerMegapixel float64 `json:"ms_per_megapixel"`
	// CPU time per megapixel: wall time depends on what else the machine runs.
	CPUMsPerMegapixel float64 `json:"cpu_ms_per_megapixel"`
	HeldOut           bool    `json:"held_out"` // none of these pairs was in the training data
}

// MetricsOf summarises an evaluation.
func MetricsOf(r *EvalResult, heldOut bool) Metrics {
	return Metrics{Pairs: len(r.Pairs), Precision: r.Total.Precision(), Recall: r.Total.Recall(),
		F1: r.Total.F1(), IoU: r.Total.IoU(), MsPerMegapixel: r.MsPerMegapixel(), CPUMsPerMegapixel: r.CPUMsPerMegapixel(),
		HeldOut: heldOut}
}

// ReadManifest reads dir/catalog.json (several models, unlike the one-model manifests elsewhere under models/); a missing file is an empty manifest.
func ReadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return &Manifest{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	m := new(Manifest)
	if err := json.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", filepath.Join(dir, ManifestFile), err)
	}
	return m, nil
}

// Write stores the manifest in dir, entries sorted by file name.
func (m *Manifest) Write(dir string) error {
	sort.Slice(m.Models, func(i, j int) bool { return m.Models[i].File < m.Models[j].File })
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ManifestFile), append(data, '\n'), 0o644)
}

// Entry returns the entry of file (a base name), or nil.
func (m *Manifest) Entry(file string) *ManifestEntry {
	for i := range m.Models {
		if m.Models[i].File == file {
			return &m.Models[i]
		}
	}
	return nil
}

// Upsert replaces or adds the entry for e.File.
func (m *Manifest) Upsert(e ManifestEntry) {
	if old := m.Entry(e.File); old != nil {
		*old = e
		return
	}
	m.Models = append(m.Models, e)
}

// Record enters a model file just written at path into its folder's
// catalog: e replaces the file's entry (keeping the measured metrics when the
// file's sha256 did not change: same model, same scores), and the model
// becomes the default if asked or if there is none.
func Record(path string, e ManifestEntry, makeDefault bool) error {
	dir, file := filepath.Split(path)
	man, err := ReadManifest(dir)
	if err != nil {
		return err
	}
	e.File = file
	if old := man.Entry(file); old != nil && old.SHA256 == e.SHA256 {
		e.Metrics = old.Metrics
	}
	man.Upsert(e)
	if makeDefault || man.Default == "" {
		man.Default = file
	}
	return man.Write(dir)
}

// LoadModel loads a model file that its folder's manifest lists, checking
// the file's sha256 against the manifest. An empty path loads the manifest's
// default model from the first models folder found (see FindModelDir).
func LoadModel(path string) (*change.Model, *ManifestEntry, error) {
	if path == "" {
		dir, err := FindModelDir()
		if err != nil {
			return nil, nil, err
		}
		man, err := ReadManifest(dir)
		if err != nil {
			return nil, nil, err
		}
		if man.Default == "" {
			return nil, nil, fmt.Errorf("load model: %s names no default model", filepath.Join(dir, ManifestFile))
		}
		path = filepath.Join(dir, man.Default)
	}
	dir, file := filepath.Split(path)
	man, err := ReadManifest(dir)
	if err != nil {
		return nil, nil, err
	}
	e := man.Entry(file)
	if e == nil || e.SHA256 == "" {
		return nil, nil, fmt.Errorf("load model: %s is not listed with a sha256 in %s", file, filepath.Join(dir, ManifestFile))
	}
	m, _, err := change.Load(path, e.SHA256)
	if err != nil {
		return nil, nil, err
	}
	return m, e, nil
}

// FindModelDir locates models/imagery: $GRIDWATCH_MODELS/imagery, then
// models/imagery in the working directory or any parent, then beside the
// executable (../models/imagery).
func FindModelDir() (string, error) {
	var tried []string
	try := func(d string) bool {
		tried = append(tried, d)
		_, err := os.Stat(filepath.Join(d, ManifestFile))
		return err == nil
	}
	if env := os.Getenv("GRIDWATCH_MODELS"); env != "" && try(filepath.Join(env, "imagery")) {
		return filepath.Join(env, "imagery"), nil
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if c := filepath.Join(d, "models", "imagery"); try(c) {
				return c, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		if c := filepath.Join(filepath.Dir(exe), "..", "models", "imagery"); try(c) {
			return filepath.Clean(c), nil
		}
	}
	return "", fmt.Errorf("no models/imagery/%s found (set GRIDWATCH_MODELS or pass --model); tried %v", ManifestFile, tried)
}
