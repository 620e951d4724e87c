// Package coverclass owns the single-crop cover-state classifier: given one
// picture and a registered cover's box, it says how likely the cover is open
// or missing, without needing a reference look of the cover, so a cover
// first seen already open is caught too. It resamples the box and a ring of
// street around it to a fixed grid, measures hand-made, scale- and
// exposure-free features (darkness of the centre against the rim and the
// street, radial profile, texture) and scores them with a small
// logistic regression kept under models/cover-state with a manifest whose
// sha256 Load checks. Training and grouped cross-validation live here too,
// so the training command and the `eval covers` benchmark run the same code.
// The package is pure Go.
package coverclass

import (
	"errors"
	"fmt"
	"image"
	"sync"

	"github.com/gridwatch/gridwatch/models"
)

// Classifier scores cover crops. It is safe for concurrent use.
type Classifier struct {
	Manifest models.Manifest // zero when made with New
	model    *Model
	pool     sync.Pool
}

// ErrBox means the box is empty or does not overlap the image.
var ErrBox = errors.New("coverclass: box is empty or outside the image")

// Load reads a model through its manifest, checking the file's sha256.
func Load(manifestPath string) (*Classifier, error) {
	man, b, err := models.Load(manifestPath)
	if err != nil {
		return nil, err
	}
	m, err := ParseModel(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", manifestPath, err)
	}
	c := New(m)
	c.Manifest = man
	return c, nil
}

// New wraps a model that is already in memory (tests, cross-validation).
func New(m *Model) *Classifier {
	return &Classifier{model: m, pool: sync.Pool{New: func() any { return newScratch() }}}
}

// Classify returns the probability that the cover in box is open or
// missing. box is in img's coordinates; the street around it is read too
// where the image has it.
func (c *Classifier) Classify(img image.Image, box image.Rectangle) (open float64, err error) {
	return c.classify(sourceOf(img), box)
}

// ClassifyBGR is Classify for a packed BGR24 frame.
func (c *Classifier) ClassifyBGR(f BGR, box image.Rectangle) (open float64, err error) {
	if f.Width <= 0 || f.Height <= 0 || len(f.Pix) < f.Width*f.Height*3 {
		return 0, fmt.Errorf("coverclass: BGR frame %dx%d with %d bytes", f.Width, f.Height, len(f.Pix))
	}
	return c.classify(bgrSource(f), box)
}

func (c *Classifier) classify(src source, box image.Rectangle) (float64, error) {
	if box.Empty() || !box.Overlaps(src.bounds()) {
		return 0, ErrBox
	}
	s := c.pool.Get().(*scratch)
	defer c.pool.Put(s)
	var f [64]float64
	x := f[:numFeatures]
	samplePatch(src, box, adjust{}, &s.p)
	s.features(x)
	return c.model.score(x), nil
}
