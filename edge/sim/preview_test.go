package sim

import (
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// TestSuitePreview writes frames of suite scenes as PNG when SUITE_PREVIEW
// names a directory (SUITE_SEEDS, default "1 2 3 4"; SUITE_T seconds, default 40).
func TestSuitePreview(t *testing.T) {
	dir := os.Getenv("SUITE_PREVIEW")
	if dir == "" {
		t.Skip("set SUITE_PREVIEW=/tmp/suite to write preview frames")
	}
	seeds := strings.Fields(os.Getenv("SUITE_SEEDS"))
	if len(seeds) == 0 {
		seeds = []string{"1", "2", "3", "4"}
	}
	sec := 40.0
	if v := os.Getenv("SUITE_T"); v != "" {
		sec, _ = strconv.ParseFloat(v, 64)
	}
	for _, sd := range seeds {
		seed, err := strconv.ParseInt(sd, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		s := Suite(seed, SuiteOptions{})
		f, err := os.Create(filepath.Join(dir, "seed"+sd+".png"))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, s.FrameImage(int(sec*float64(s.FPS)))); err != nil {
			t.Fatal(err)
		}
		f.Close()
		t.Logf("seed %d: %+v zones %v", seed, s.Conditions, s.Zones)
	}
}
