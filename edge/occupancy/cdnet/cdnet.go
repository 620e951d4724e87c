// Package cdnet reads a sequence in the layout of the CDnet 2014
// change-detection benchmark (changedetection.net) and scores a foreground
// segmenter on it under the benchmark's rules: ground truth 255 is
// foreground, 0 (static) and 50 (shadow) are background, 85 (outside the
// region of interest) and 170 (unknown, motion blur at object edges) are not
// scored, nor are pixels outside ROI.bmp or frames outside temporalROI.txt.
// It owns no model: the segmenter is passed in.
package cdnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Sequence is one CDnet sequence on disk.
type Sequence struct {
	Dir         string
	W, H        int
	Frames      int    // input frames, numbered 1..Frames
	First, Last int    // the temporal region of interest (inclusive)
	ROI         []byte // W·H bytes, non-zero inside the spatial region of interest
}

// Open checks the layout of dir and reads its regions of interest.
func Open(dir string) (*Sequence, error) {
	s := &Sequence{Dir: dir}
	names, err := filepath.Glob(filepath.Join(dir, "input", "in*.jpg"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("cdnet: no input/in*.jpg under %s", dir)
	}
	s.Frames = len(names)
	sort.Strings(names)
	for i, name := range names {
		if name != s.framePath(i+1) {
			return nil, fmt.Errorf("cdnet: input frames are not numbered 1..%d: %s is frame %d", s.Frames, filepath.Base(name), i+1)
		}
	}
	t, err := os.ReadFile(filepath.Join(dir, "temporalROI.txt"))
	if err != nil {
		return nil, fmt.Errorf("cdnet: %w", err)
	}
	if _, err := fmt.Sscan(string(t), &s.First, &s.Last); err != nil {
		return nil, fmt.Errorf("cdnet: temporalROI.txt: %w", err)
	}
	if s.First < 1 || s.Last < s.First || s.Last > s.Frames {
		return nil, fmt.Errorf("cdnet: temporalROI.txt says %d-%d but there are %d frames", s.First, s.Last, s.Frames)
	}
	if _, err := s.Frame(1); err != nil { // fixes W and H
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "ROI.bmp"))
	if err != nil {
		return nil, fmt.Errorf("cdnet: %w", err)
	}
	roi, w, h, err := decodeBMPGray(b)
	if err != nil {
		return nil, fmt.Errorf("cdnet: ROI.bmp: %w", err)
	}
	if w != s.W || h != s.H {
		return nil, fmt.Errorf("cdnet: ROI.bmp is %dx%d, frames are %dx%d", w, h, s.W, s.H)
	}
	s.ROI = roi
	return s, nil
}

func (s *Sequence) framePath(i int) string {
	return filepath.Join(s.Dir, "input", fmt.Sprintf("in%06d.jpg", i))
}

// Frame reads input frame i (1-based) as packed BGR. The first call fixes
// the sequence's size.
func (s *Sequence) Frame(i int) ([]byte, error) {
	b, err := os.ReadFile(s.framePath(i))
	if err != nil {
		return nil, fmt.Errorf("cdnet: %w", err)
	}
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("cdnet: frame %d: %w", i, err)
	}
	r := img.Bounds()
	if s.W == 0 {
		s.W, s.H = r.Dx(), r.Dy()
	}
	if r.Dx() != s.W || r.Dy() != s.H {
		return nil, fmt.Errorf("cdnet: frame %d is %dx%d, want %dx%d", i, r.Dx(), r.Dy(), s.W, s.H)
	}
	return toBGR(img), nil
}

// Truth reads ground-truth frame i (1-based): one grey value per pixel.
func (s *Sequence) Truth(i int) ([]byte, error) {
	name := filepath.Join(s.Dir, "groundtruth", fmt.Sprintf("gt%06d.png", i))
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("cdnet: %w", err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("cdnet: %s: %w", name, err)
	}
	r := img.Bounds()
	if r.Dx() != s.W || r.Dy() != s.H {
		return nil, fmt.Errorf("cdnet: %s is %dx%d, want %dx%d", name, r.Dx(), r.Dy(), s.W, s.H)
	}
	return toGray(img), nil
}

func toBGR(img image.Image) []byte {
	r := img.Bounds()
	w, h := r.Dx(), r.Dy()
	out := make([]byte, w*h*3)
	if yc, ok := img.(*image.YCbCr); ok {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				yi := yc.YOffset(r.Min.X+x, r.Min.Y+y)
				ci := yc.COffset(r.Min.X+x, r.Min.Y+y)
				R, G, B := color.YCbCrToRGB(yc.Y[yi], yc.Cb[ci], yc.Cr[ci])
				o := (y*w + x) * 3
				out[o], out[o+1], out[o+2] = B, G, R
			}
		}
		return out
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBAModel.Convert(img.At(r.Min.X+x, r.Min.Y+y)).(color.RGBA)
			o := (y*w + x) * 3
			out[o], out[o+1], out[o+2] = c.B, c.G, c.R
		}
	}
	return out
}

func toGray(img image.Image) []byte {
	r := img.Bounds()
	w, h := r.Dx(), r.Dy()
	out := make([]byte, w*h)
	switch m := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			copy(out[y*w:], m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):][:w])
		}
		return out
	case *image.Paletted:
		var lut [256]byte
		for i, c := range m.Palette {
			lut[i] = color.GrayModel.Convert(c).(color.Gray).Y
		}
		for y := 0; y < h; y++ {
			row := m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):][:w]
			for x, v := range row {
				out[y*w+x] = lut[v]
			}
		}
		return out
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			out[y*w+x] = color.GrayModel.Convert(img.At(r.Min.X+x, r.Min.Y+y)).(color.Gray).Y
		}
	}
	return out
}

// Ground-truth labels of CDnet 2014.
const (
	TruthStatic  = 0
	TruthShadow  = 50
	TruthOutside = 85
	TruthUnknown = 170
	TruthMoving  = 255
)

// Counts are pixel counts of one or more scored frames.
type Counts struct {
	TP, FP, FN, TN int64
}

// Add scores one mask (non-zero = foreground) against its ground truth;
// roi may be nil.
func (c *Counts) Add(mask, truth, roi []byte) {
	for i, t := range truth {
		if roi != nil && roi[i] == 0 {
			continue
		}
		fg := mask[i] != 0
		switch t {
		case TruthMoving:
			if fg {
				c.TP++
			} else {
				c.FN++
			}
		case TruthStatic, TruthShadow:
			if fg {
				c.FP++
			} else {
				c.TN++
			}
		}
	}
}

// Precision is TP/(TP+FP), 0 when nothing was called foreground.
func (c Counts) Precision() float64 { return ratio(c.TP, c.TP+c.FP) }

// Recall is TP/(TP+FN), 0 when there is no foreground.
func (c Counts) Recall() float64 { return ratio(c.TP, c.TP+c.FN) }

// F is the harmonic mean of precision and recall.
func (c Counts) F() float64 {
	p, r := c.Precision(), c.Recall()
	if p+r == 0 {
		return 0
	}
	return 2 * p * r / (p + r)
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Segmenter labels frames in order: fg gets non-zero where the frame
// (packed BGR) shows foreground.
type Segmenter interface {
	Apply(frame, fg []byte)
}

// RunOptions narrow a run. Zero values mean the whole temporal ROI.
type RunOptions struct {
	// From and To limit the scored frames to [From, To] within the temporal
	// ROI; frames after To are not processed at all.
	From, To int
	// Progress, if set, is called after each processed frame.
	Progress func(frame, frames int)
}

// Result is the outcome of a run.
type Result struct {
	Counts
	Processed int           // frames given to the segmenter
	Scored    int           // frames compared with ground truth
	Segment   time.Duration // time spent inside the segmenter
}

// MsPerFrame is the segmenter's mean cost per frame, excluding decoding.
func (r Result) MsPerFrame() float64 {
	if r.Processed == 0 {
		return 0
	}
	return float64(r.Segment.Microseconds()) / 1000 / float64(r.Processed)
}

// Run gives every frame from 1 on to seg in order and scores the frames of
// the temporal ROI (narrowed by o).
func Run(ctx context.Context, s *Sequence, seg Segmenter, o RunOptions) (Result, error) {
	from, to := s.First, s.Last
	if o.From > from {
		from = o.From
	}
	if o.To > 0 && o.To < to {
		to = o.To
	}
	if from > to {
		return Result{}, errors.New("cdnet: empty frame range")
	}
	var res Result
	fg := make([]byte, s.W*s.H)
	for i := 1; i <= to; i++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		frame, err := s.Frame(i)
		if err != nil {
			return res, err
		}
		t0 := time.Now()
		seg.Apply(frame, fg)
		res.Segment += time.Since(t0)
		res.Processed++
		if i >= from {
			truth, err := s.Truth(i)
			if err != nil {
				return res, err
			}
			res.Add(fg, truth, s.ROI)
			res.Scored++
		}
		if o.Progress != nil {
			o.Progress(i, to)
		}
	}
	return res, nil
}

// FindShared returns the shared data directory ../shared/data/NAME relative
// to the repository root, found by walking up from the working directory to
// go.mod.
func FindShared(name string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(filepath.Dir(dir), "shared", "data", name)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("cdnet: %s not found beside the repository (%w)", p, err)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir || strings.TrimSpace(parent) == "" {
			return "", errors.New("cdnet: no go.mod above the working directory")
		}
		dir = parent
	}
}
