package sim

import (
	"image/png"
	"os"
	"strconv"
	"testing"
)

// TestPreview writes one frame as PNG when SIM_PREVIEW names a file
// (SIM_PREVIEW_T picks the time in seconds, default 20), for eyeballing
// the picture after changing how something is drawn.
func TestPreview(t *testing.T) {
	path := os.Getenv("SIM_PREVIEW")
	if path == "" {
		t.Skip("set SIM_PREVIEW=/tmp/sim-preview.png to write a preview frame")
	}
	sec := 20.0
	if v := os.Getenv("SIM_PREVIEW_T"); v != "" {
		var err error
		if sec, err = strconv.ParseFloat(v, 64); err != nil {
			t.Fatalf("SIM_PREVIEW_T: %v", err)
		}
	}
	s := Skeleton(1)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, s.FrameImage(int(sec*float64(s.FPS)))); err != nil {
		t.Fatal(err)
	}
}
