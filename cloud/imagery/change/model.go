package change

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
)

// Model is a trained change detector: the feature configuration, the boosted
// trees and the clean-up of the probability map into polygons-to-be.
type Model struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Scales are the window radii of the features, in pixels.
	Scales   []int    `json:"scales"`
	Features []string `json:"features"`
	// FeatureSet 1 adds gradient-structure features (FeatureNames).
	FeatureSet int `json:"feature_set,omitempty"`
	// Stride > 1 evaluates the trees on a coarser grid and interpolates the
	// probabilities bilinearly (the labels are objects of ≥ 10 px).
	Stride int `json:"stride"`
	// Post-processing, chosen on out-of-fold predictions of the training set.
	Post PostParams `json:"post"`
	// Training provenance.
	Train     TrainParams `json:"train"`
	TrainedOn []string    `json:"trained_on"`
	// OutOfFold scores the post-processed out-of-fold predictions on the
	// training pairs (pairs split into folds): an in-domain estimate.
	OutOfFold OutOfFold `json:"out_of_fold"`
	Ensemble  Ensemble  `json:"ensemble"`
	// Net, when set, replaces the features and trees: a small convolutional
	// network (cnn.go) gives the probabilities. NetConfig is its recipe.
	Net       *Net       `json:"net,omitempty"`
	NetConfig *NetConfig `json:"net_config,omitempty"`
	// TrainingFit scores the post-processed probabilities on the training
	// pairs themselves (the network's post-processing is chosen there): an
	// optimistic, in-sample figure.
	TrainingFit *OutOfFold `json:"training_fit,omitempty"`
}

// OutOfFold are pooled scores of out-of-fold predictions.
type OutOfFold struct {
	Pairs     int     `json:"pairs"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	IoU       float64 `json:"iou"`
}

// PostParams turn a probability map into a change mask.
type PostParams struct {
	Smooth    int     `json:"smooth"`      // box radius applied to the probabilities
	Threshold float32 `json:"threshold"`   // probability above which a pixel changed
	Open      int     `json:"open"`        // opening radius (removes specks)
	Close     int     `json:"close"`       // closing radius (bridges gaps)
	MinArea   int     `json:"min_area_px"` // smallest change kept, pixels
	MaxHole   int     `json:"max_hole_px"` // holes below this are filled, pixels
}

// Apply returns the change mask of a w×h probability map.
func (p PostParams) Apply(prob []float32, w, h int) *Mask {
	return RemoveSmall(p.Local(prob, w, h), p.MinArea, p.MaxHole)
}

// Local is the part of Apply that looks only at a pixel's neighbourhood
// (smoothing, threshold, opening, closing: at most Reach pixels away), so
// tiles read with a margin of at least Reach can be stitched seamlessly;
// RemoveSmall must then run on the stitched mask.
func (p PostParams) Local(prob []float32, w, h int) *Mask {
	m := Threshold(BoxMean(prob, w, h, p.Smooth), w, h, p.Threshold)
	if p.Open > 0 {
		m = Open(m, p.Open)
	}
	if p.Close > 0 {
		m = Close(m, p.Close)
	}
	return m
}

// Reach is how far Local looks from a pixel.
func (p PostParams) Reach() int { return p.Smooth + 2*p.Open + 2*p.Close }

// Reach is how far the model's probability at a pixel looks (largest
// feature window plus the interpolation stride).
func (m *Model) Reach() int {
	if m.Net != nil {
		// A multiple of the net's grid factor: tiles whose sides are
		// multiples of it then pool their pixels on the same grid as the
		// whole image, so a pixel's result does not depend on the tiling.
		f := m.Net.Factor()
		return (m.Net.Reach() + m.Post.Reach() + f - 1) / f * f
	}
	return slices.Max(m.Scales) + m.Stride + m.Post.Reach()
}

// MatchesRadiometry reports whether the model wants the after date's
// radiometry matched to the before date's (MatchStats over its input)
// before it runs. The network does not: it standardises each date's bands
// itself, with statistics of the whole scene (ProbScene), and a gain and
// offset per band change nothing after that; matching over each tile
// would only make its result depend on the tile.
func (m *Model) MatchesRadiometry() bool { return m.Net == nil }

// Load reads a model file and, when wantSHA256 is not empty, refuses a file
// whose sha256 differs (a model must be the one its manifest measured).
func Load(path, wantSHA256 string) (*Model, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("load model: %w", err)
	}
	sum := sha256.Sum256(data)
	got := hex.EncodeToString(sum[:])
	if wantSHA256 != "" && got != wantSHA256 {
		return nil, got, fmt.Errorf("load model %s: sha256 %s does not match the manifest's %s", path, got, wantSHA256)
	}
	m := new(Model)
	if err := json.Unmarshal(data, m); err != nil {
		return nil, got, fmt.Errorf("load model %s: %w", path, err)
	}
	if err := m.validate(); err != nil {
		return nil, got, fmt.Errorf("load model %s: %w", path, err)
	}
	return m, got, nil
}

func (m *Model) validate() error {
	if m.Net != nil {
		if m.Stride < 1 {
			m.Stride = 1
		}
		return m.Net.validate()
	}
	if !slices.Equal(m.Features, FeatureNames(m.Scales, m.FeatureSet)) {
		return fmt.Errorf("feature list does not match this build's features for scales %v (model built by another version?)", m.Scales)
	}
	if len(m.Ensemble.Trees) == 0 || m.Ensemble.Depth < 1 {
		return fmt.Errorf("model has no trees")
	}
	inner := 1<<m.Ensemble.Depth - 1
	nf := int32(len(m.Features))
	for i, t := range m.Ensemble.Trees {
		if len(t.Feat) != inner || len(t.Thr) != inner || len(t.Leaf) != inner+1 {
			return fmt.Errorf("tree %d has the wrong shape for depth %d", i, m.Ensemble.Depth)
		}
		for _, f := range t.Feat {
			if f < 0 || f >= nf {
				return fmt.Errorf("tree %d uses feature %d of %d", i, f, nf)
			}
		}
	}
	if m.Stride < 1 {
		m.Stride = 1
	}
	return nil
}

// Save writes the model as indented JSON and returns its sha256.
func (m *Model) Save(path string) (string, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", fmt.Errorf("save model: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// Prob returns the per-pixel change probability of a co-registered pair,
// using all CPUs.
func (m *Model) Prob(a, b *Image) ([]float32, error) {
	return m.ProbScene(a, b, nil, runtime.GOMAXPROCS(0))
}

// ProbScene is Prob for a tile of a larger scene whose per-band statistics
// are sc (nil: a and b are the whole scene), on workers goroutines (1 when
// the caller already runs tiles in parallel). The network
// standardises each date with them, so a tile read with a margin of Reach
// gets the probabilities the whole scene would: the result does not depend
// on the tiling. The boosted trees ignore sc.
func (m *Model) ProbScene(a, b *Image, sc *SceneStats, workers int) ([]float32, error) {
	if m.Net != nil {
		if a.W != b.W || a.H != b.H || a.W < 1 || a.H < 1 {
			return nil, fmt.Errorf("prob: dates are %dx%d and %dx%d", a.W, a.H, b.W, b.H)
		}
		return m.Net.ProbScene(a, b, sc, max(workers, 1)), nil
	}
	f, err := newFeaturizer(a, b, m.Scales, m.FeatureSet, workers)
	if err != nil {
		return nil, err
	}
	return m.probFrom(f, workers), nil
}

func (m *Model) probFrom(f *Featurizer, workers int) []float32 {
	return gridProb(f, &m.Ensemble, m.Stride, workers)
}

// gridProb evaluates the trees on a grid of the given stride and
// interpolates bilinearly to full resolution.
func gridProb(f *Featurizer, e *Ensemble, stride, workers int) []float32 {
	w, h, s := f.W, f.H, max(stride, 1)
	// Coarse grid: nodes at 0, s, 2s, ... and the last row/column.
	gx := gridCoords(w, s)
	gy := gridCoords(h, s)
	coarse := make([]float32, len(gx)*len(gy))
	var wg sync.WaitGroup
	rows := make(chan int, len(gy))
	for j := range gy {
		rows <- j
	}
	close(rows)
	for k := 0; k < max(workers, 1); k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]float32, f.NumFeatures())
			for j := range rows {
				for i, x := range gx {
					f.At(x, gy[j], buf)
					coarse[j*len(gx)+i] = e.Prob(buf)
				}
			}
		}()
	}
	wg.Wait()
	if s == 1 {
		return coarse
	}
	out := make([]float32, w*h)
	j := 0
	for y := 0; y < h; y++ {
		for j+1 < len(gy)-1 && gy[j+1] <= y {
			j++
		}
		ty := float32(0)
		if len(gy) > 1 {
			ty = float32(y-gy[j]) / float32(gy[j+1]-gy[j])
		}
		i := 0
		for x := 0; x < w; x++ {
			for i+1 < len(gx)-1 && gx[i+1] <= x {
				i++
			}
			tx := float32(0)
			if len(gx) > 1 {
				tx = float32(x-gx[i]) / float32(gx[i+1]-gx[i])
			}
			at := func(jj, ii int) float32 { return coarse[jj*len(gx)+ii] }
			i1, j1 := min(i+1, len(gx)-1), min(j+1, len(gy)-1)
			top := at(j, i)*(1-tx) + at(j, i1)*tx
			bot := at(j1, i)*(1-tx) + at(j1, i1)*tx
			out[y*w+x] = top*(1-ty) + bot*ty
		}
	}
	return out
}

func gridCoords(n, s int) []int {
	var c []int
	for v := 0; v < n; v += s {
		c = append(c, v)
	}
	if c[len(c)-1] != n-1 {
		c = append(c, n-1)
	}
	return c
}

// Detect returns the probability map and the cleaned change mask of a pair.
func (m *Model) Detect(a, b *Image) ([]float32, *Mask, error) {
	prob, err := m.Prob(a, b)
	if err != nil {
		return nil, nil, err
	}
	return prob, m.Post.Apply(prob, a.W, a.H), nil
}
