package coverclass

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Format is the model-file format this package reads and writes.
const Format = "gridwatch-coverclass/1"

// Model is a logistic regression over standardised features:
// P(open) = σ(Bias + Σ Weight[i]·(x[i]−Mean[i])/Scale[i]).
type Model struct {
	Format   string    `json:"format"`
	Features []string  `json:"features"`
	Mean     []float64 `json:"mean"`
	Scale    []float64 `json:"scale"`
	Weight   []float64 `json:"weight"`
	Bias     float64   `json:"bias"`
}

// Validate checks the model matches this package's features.
func (m *Model) Validate() error {
	switch {
	case m.Format != Format:
		return fmt.Errorf("format: %q, want %q", m.Format, Format)
	case !slices.Equal(m.Features, featureNames):
		return fmt.Errorf("features: the model was trained on a different feature set (%d features, this build computes %d)", len(m.Features), len(featureNames))
	case len(m.Mean) != len(featureNames) || len(m.Scale) != len(featureNames) || len(m.Weight) != len(featureNames):
		return fmt.Errorf("mean/scale/weight: lengths %d/%d/%d, want %d", len(m.Mean), len(m.Scale), len(m.Weight), len(featureNames))
	}
	for i, s := range m.Scale {
		if !(s > 0) || math.IsInf(s, 0) {
			return fmt.Errorf("scale[%d] (%s): %v must be positive", i, featureNames[i], s)
		}
	}
	for i, v := range append(append(slices.Clone(m.Mean), m.Weight...), m.Bias) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("value %d: not finite", i)
		}
	}
	return nil
}

// ParseModel reads a model file strictly (unknown keys are errors).
func ParseModel(b []byte) (*Model, error) {
	var m Model
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("coverclass: parse model: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("coverclass: model: %w", err)
	}
	return &m, nil
}

// Marshal writes the model as JSON with a fixed number format, so that the
// same training run gives the same bytes and the same sha256.
func (m *Model) Marshal() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\n  \"format\": %q,\n  \"features\": [", m.Format)
	for i, n := range m.Features {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", n)
	}
	b.WriteString("],\n")
	for _, f := range []struct {
		name string
		v    []float64
	}{{"mean", m.Mean}, {"scale", m.Scale}, {"weight", m.Weight}} {
		fmt.Fprintf(&b, "  %q: [", f.name)
		for i, v := range f.v {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(num(v))
		}
		b.WriteString("],\n")
	}
	fmt.Fprintf(&b, "  \"bias\": %s\n}\n", num(m.Bias))
	if !json.Valid(b.Bytes()) {
		return nil, errors.New("coverclass: marshal produced invalid JSON")
	}
	return b.Bytes(), nil
}

// num rounds to 6 significant digits: far below what the features can
// resolve, and it keeps last-bit differences between machines out of the file.
func num(v float64) string {
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// score returns P(open) for a feature vector.
func (m *Model) score(x []float64) float64 {
	z := m.Bias
	for i, v := range x {
		z += m.Weight[i] * (v - m.Mean[i]) / m.Scale[i]
	}
	return sigmoid(z)
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }
