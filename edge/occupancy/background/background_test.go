package background_test

import (
	"image"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/gridwatch/gridwatch/edge/occupancy/background"
)

// synth renders a textured static scene with sensor noise, a global gain and
// boxes, and reports the boxes as ground truth.
type synth struct {
	w, h  int
	scene []float64
	noise *rand.Rand
}

func newSynth(w, h int) *synth {
	r := rand.New(rand.NewPCG(5, 5))
	s := &synth{w: w, h: h, scene: make([]float64, w*h*3), noise: rand.New(rand.NewPCG(6, 6))}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			base := 90 + 40*math.Sin(float64(x)/13)*math.Cos(float64(y)/17) + r.Float64()*20
			for c := 0; c < 3; c++ {
				s.scene[(y*w+x)*3+c] = base + float64(c*10)
			}
		}
	}
	return s
}

// frame renders the scene times gain with the given boxes painted on it.
func (s *synth) frame(gain float64, boxes ...image.Rectangle) (frame, truth []byte) {
	frame = make([]byte, s.w*s.h*3)
	truth = make([]byte, s.w*s.h)
	for p := 0; p < s.w*s.h; p++ {
		x, y := p%s.w, p/s.w
		in := false
		for _, b := range boxes {
			in = in || image.Pt(x, y).In(b)
		}
		for c := 0; c < 3; c++ {
			v := s.scene[p*3+c]
			if in {
				v = []float64{200, 60, 40}[c]
				if (x/3+y/5)%2 == 0 {
					v /= 2
				}
				truth[p] = 255
			}
			frame[p*3+c] = byte(min(max(math.Round(v*gain+s.noise.NormFloat64()*2), 0), 255))
		}
	}
	return frame, truth
}

// fScore compares a mask with the truth inside a region (all when empty).
func fScore(mask, truth []byte, w int, region image.Rectangle) (f, fgShare float64) {
	var tp, fp, fn, fgN, n float64
	for p := range mask {
		if !region.Empty() && !image.Pt(p%w, p/w).In(region) {
			continue
		}
		n++
		m, t := mask[p] != 0, truth != nil && truth[p] != 0
		if m {
			fgN++
		}
		switch {
		case m && t:
			tp++
		case m:
			fp++
		case t:
			fn++
		}
	}
	if tp == 0 {
		return 0, fgN / n
	}
	return 2 * tp / (2*tp + fp + fn), fgN / n
}

func TestModel(t *testing.T) {
	const w, h = 160, 120
	box := func(x, y int) image.Rectangle { return image.Rect(x, y, x+30, y+20) }
	for _, tc := range []struct {
		name string
		// scene gives the gain and boxes of frame i, and whether the mask
		// of that frame is scored.
		scene  func(i int) (gain float64, boxes []image.Rectangle, scored bool)
		frames int
		hold   image.Rectangle // held from frame 60 on
		minF   float64         // over the scored frames; 0: expect no foreground
	}{
		{
			name:   "box crossing a static scene is found",
			frames: 120,
			scene: func(i int) (float64, []image.Rectangle, bool) {
				if i < 50 {
					return 1, nil, false
				}
				return 1, []image.Rectangle{box(-30+2*(i-50), 50)}, i >= 70 && i < 110
			},
			minF: 0.9,
		},
		{
			name:   "empty scene under a slow brightness ramp stays background",
			frames: 400,
			scene: func(i int) (float64, []image.Rectangle, bool) {
				return 1 - 0.4*float64(i)/400, nil, i >= 50
			},
		},
		{
			name:   "sudden global change (lights) is relearned",
			frames: 250,
			scene: func(i int) (float64, []image.Rectangle, bool) {
				if i < 100 {
					return 1, nil, false
				}
				return 0.65, nil, i >= 200
			},
		},
		{
			name:   "held object is not absorbed",
			frames: 600,
			hold:   box(60, 50),
			scene: func(i int) (float64, []image.Rectangle, bool) {
				if i < 40 {
					return 1, nil, false
				}
				return 1, []image.Rectangle{box(60, 50)}, i >= 550
			},
			minF: 0.9,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSynth(w, h)
			m := background.New(w, h, background.Options{})
			fg := make([]byte, w*h)
			var hold []byte
			if !tc.hold.Empty() {
				hold = make([]byte, w*h)
				for p := range hold {
					if image.Pt(p%w, p/w).In(tc.hold) {
						hold[p] = 1
					}
				}
			}
			var sumF, worstFG float64
			scored := 0
			for i := 0; i < tc.frames; i++ {
				gain, boxes, score := tc.scene(i)
				if i == 60 && hold != nil {
					m.Hold(hold)
				}
				frame, truth := s.frame(gain, boxes...)
				m.Apply(frame, fg)
				if !score {
					continue
				}
				f, share := fScore(fg, truth, w, image.Rectangle{})
				sumF += f
				worstFG = max(worstFG, share)
				scored++
			}
			if tc.minF == 0 {
				if worstFG > 0.005 {
					t.Errorf("up to %.2f%% of the frame is foreground, want none", 100*worstFG)
				}
				return
			}
			if f := sumF / float64(scored); f < tc.minF {
				t.Errorf("mean F %.3f over %d frames, want ≥ %.2f", f, scored, tc.minF)
			}
		})
	}
}

// TestRelearn: an object in the first frame is learned as background; when it
// leaves, its place is foreground (a ghost) until Relearn is told about it.
func TestRelearn(t *testing.T) {
	const w, h = 160, 120
	s := newSynth(w, h)
	m := background.New(w, h, background.Options{})
	fg := make([]byte, w*h)
	b := image.Rect(50, 40, 90, 70)
	for i := 0; i < 30; i++ {
		f, _ := s.frame(1, b)
		m.Apply(f, fg)
	}
	f, _ := s.frame(1)
	m.Apply(f, fg)
	mask := make([]byte, w*h)
	for p := range mask {
		if image.Pt(p%w, p/w).In(b) {
			mask[p] = 1
		}
	}
	if _, share := fScore(fg, nil, w, b); share < 0.8 {
		t.Fatalf("ghost covers %.2f of the old box, expected most of it", share)
	}
	m.Relearn(mask)
	f, _ = s.frame(1)
	m.Apply(f, fg)
	if _, share := fScore(fg, nil, w, b); share > 0.01 {
		t.Errorf("after Relearn %.2f of the old box is still foreground", share)
	}
}

// TestDeterministic: the same frames give the same masks, whatever the
// number of cores the bands are spread over.
func TestDeterministic(t *testing.T) {
	const w, h = 160, 128
	run := func(procs int) []byte {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		s := newSynth(w, h)
		m := background.New(w, h, background.Options{Seed: 3})
		fg := make([]byte, w*h)
		out := make([]byte, 0, 40*w*h)
		for i := 0; i < 40; i++ {
			f, _ := s.frame(1, image.Rect(2*i, 30, 2*i+25, 60))
			m.Apply(f, fg)
			out = append(out, fg...)
		}
		return out
	}
	a, b := run(1), run(4)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("masks differ at byte %d", i)
		}
	}
}
