package cdnet

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCountsRules(t *testing.T) {
	for _, tc := range []struct {
		name          string
		mask, truth   byte
		roi           byte
		tp, fp, fn, n int64
	}{
		{"moving found", 255, TruthMoving, 1, 1, 0, 0, 0},
		{"moving missed", 0, TruthMoving, 1, 0, 0, 1, 0},
		{"static called foreground", 255, TruthStatic, 1, 0, 1, 0, 0},
		{"shadow called foreground", 1, TruthShadow, 1, 0, 1, 0, 0},
		{"shadow left out", 0, TruthShadow, 1, 0, 0, 0, 1},
		{"outside ROI label ignored", 255, TruthOutside, 1, 0, 0, 0, 0},
		{"unknown ignored", 255, TruthUnknown, 1, 0, 0, 0, 0},
		{"outside ROI.bmp ignored", 255, TruthStatic, 0, 0, 0, 0, 0},
		{"other grey values ignored", 255, 128, 1, 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Counts
			c.Add([]byte{tc.mask}, []byte{tc.truth}, []byte{tc.roi})
			if c.TP != tc.tp || c.FP != tc.fp || c.FN != tc.fn || c.TN != tc.n {
				t.Errorf("got %+v, want TP %d FP %d FN %d TN %d", c, tc.tp, tc.fp, tc.fn, tc.n)
			}
		})
	}
	c := Counts{TP: 90, FP: 10, FN: 30}
	if p, r, f := c.Precision(), c.Recall(), c.F(); p != 0.9 || r != 0.75 || f < 0.8181 || f > 0.8182 {
		t.Errorf("P %g R %g F %g", p, r, f)
	}
	if (Counts{}).F() != 0 {
		t.Error("empty counts must score 0, not NaN")
	}
}

// bmp writes an uncompressed Windows bitmap: 8-bit paletted (bottom-up) or
// 24-bit (top-down).
func bmp(gray []byte, w, h, bpp int) []byte {
	stride := (w*bpp/8 + 3) &^ 3
	palette := 0
	if bpp == 8 {
		palette = 256 * 4
	}
	off := 14 + 40 + palette
	b := make([]byte, off+stride*h)
	le := binary.LittleEndian
	copy(b, "BM")
	le.PutUint32(b[2:], uint32(len(b)))
	le.PutUint32(b[10:], uint32(off))
	le.PutUint32(b[14:], 40)
	le.PutUint32(b[18:], uint32(w))
	hh := int32(h)
	if bpp == 24 {
		hh = -hh
	}
	le.PutUint32(b[22:], uint32(hh))
	le.PutUint16(b[26:], 1)
	le.PutUint16(b[28:], uint16(bpp))
	for i := 0; i < palette/4; i++ {
		// an inverted grey palette, so that the index is not the value
		v := byte(255 - i)
		b[54+i*4], b[54+i*4+1], b[54+i*4+2] = v, v, v
	}
	for y := 0; y < h; y++ {
		row := b[off+y*stride:]
		sy := y
		if bpp == 8 {
			sy = h - 1 - y
		}
		for x := 0; x < w; x++ {
			v := gray[sy*w+x]
			if bpp == 8 {
				row[x] = 255 - v
			} else {
				row[3*x], row[3*x+1], row[3*x+2] = v, v, v
			}
		}
	}
	return b
}

func TestDecodeBMP(t *testing.T) {
	const w, h = 7, 5
	gray := make([]byte, w*h)
	for i := range gray {
		gray[i] = byte(i * 7)
	}
	for _, bpp := range []int{8, 24} {
		got, gw, gh, err := decodeBMPGray(bmp(gray, w, h, bpp))
		if err != nil || gw != w || gh != h || !bytes.Equal(got, gray) {
			t.Errorf("%d-bit: got %v %dx%d %v, want %v", bpp, got, gw, gh, err, gray)
		}
	}
	if _, _, _, err := decodeBMPGray([]byte("GIF89a")); err == nil {
		t.Error("a GIF decoded as BMP")
	}
}

// writeSequence lays out a tiny CDnet sequence: a bright square moves over a
// dark frame; its ground truth is exact; frames 3-6 are the temporal ROI and
// the left column is outside the ROI.
func writeSequence(t *testing.T) (dir string, truth func(i int) []byte) {
	dir = t.TempDir()
	const w, h, n = 16, 12, 8
	for _, d := range []string{"input", "groundtruth"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	truth = func(i int) []byte {
		g := make([]byte, w*h)
		for y := 4; y < 8; y++ {
			for x := i; x < i+4; x++ {
				g[y*w+x] = TruthMoving
			}
		}
		g[0] = TruthUnknown
		return g
	}
	for i := 1; i <= n; i++ {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		gt := image.NewGray(image.Rect(0, 0, w, h))
		for p, v := range truth(i) {
			gt.Pix[p] = v
			if v == TruthMoving {
				img.Set(p%w, p/w, color.RGBA{250, 250, 250, 255})
			} else {
				img.Set(p%w, p/w, color.RGBA{10, 10, 10, 255})
			}
		}
		var jb, pb bytes.Buffer
		if err := jpeg.Encode(&jb, img, &jpeg.Options{Quality: 100}); err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(&pb, gt); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "input", fmt.Sprintf("in%06d.jpg", i)), jb.Bytes(), 0o644)
		os.WriteFile(filepath.Join(dir, "groundtruth", fmt.Sprintf("gt%06d.png", i)), pb.Bytes(), 0o644)
	}
	roi := make([]byte, w*h)
	for p := range roi {
		if p%w != 0 {
			roi[p] = 255
		}
	}
	os.WriteFile(filepath.Join(dir, "ROI.bmp"), bmp(roi, w, h, 8), 0o644)
	os.WriteFile(filepath.Join(dir, "temporalROI.txt"), []byte("3 6\n"), 0o644)
	return dir, truth
}

// threshold calls bright pixels foreground and counts its calls.
type threshold struct{ calls int }

func (s *threshold) Apply(frame, fg []byte) {
	s.calls++
	for p := range fg {
		fg[p] = 0
		if frame[p*3+1] > 128 {
			fg[p] = 255
		}
	}
}

// everything calls every pixel foreground.
type everything struct{}

func (everything) Apply(_, fg []byte) {
	for p := range fg {
		fg[p] = 255
	}
}

func TestRun(t *testing.T) {
	dir, _ := writeSequence(t)
	seq, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if seq.W != 16 || seq.H != 12 || seq.Frames != 8 || seq.First != 3 || seq.Last != 6 {
		t.Fatalf("sequence %+v", seq)
	}
	var th threshold
	res, err := Run(context.Background(), seq, &th, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if th.calls != 6 || res.Processed != 6 || res.Scored != 4 {
		t.Errorf("segmenter called %d times, processed %d, scored %d; want 6, 6, 4", th.calls, res.Processed, res.Scored)
	}
	if res.F() != 1 || res.FP != 0 {
		t.Errorf("an exact segmenter scored %+v F %g", res.Counts, res.F())
	}
	// all foreground: every in-ROI pixel of frames 3-6 except the unknown
	// one counts; positives are the 16-pixel squares (one column of the
	// square is outside the ROI in no frame, since x ≥ 3).
	res, err = Run(context.Background(), seq, everything{}, RunOptions{From: 4, To: 5})
	if err != nil {
		t.Fatal(err)
	}
	if res.Scored != 2 || res.TP != 32 || res.FP != 2*(15*12-16) || res.FN != 0 || res.TN != 0 {
		t.Errorf("all-foreground counts %+v over %d frames", res.Counts, res.Scored)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		mangle     func(dir string)
	}{
		{"missing directory", "no input/in*.jpg", func(dir string) { os.RemoveAll(dir) }},
		{"no temporal ROI", "temporalROI.txt", func(dir string) { os.Remove(filepath.Join(dir, "temporalROI.txt")) }},
		{"temporal ROI past the end", "there are 8 frames", func(dir string) {
			os.WriteFile(filepath.Join(dir, "temporalROI.txt"), []byte("3 9"), 0o644)
		}},
		{"no ROI", "ROI.bmp", func(dir string) { os.Remove(filepath.Join(dir, "ROI.bmp")) }},
		{"gap in frames", "not numbered", func(dir string) { os.Remove(filepath.Join(dir, "input", "in000004.jpg")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := writeSequence(t)
			tc.mangle(dir)
			_, err := Open(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
