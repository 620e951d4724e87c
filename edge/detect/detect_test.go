package detect

import (
	"errors"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/edge/detect/onnxtest"
	"github.com/gridwatch/gridwatch/models"
)

var labels = []string{"vehicle", "stall", "person"} // red, green, blue in the test model

func build(t testing.TB, s onnxtest.Spec) []byte {
	t.Helper()
	b, err := onnxtest.Build(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func opts(input int, layout Layout, classes int) Options {
	return Options{Input: input, Layout: layout, Classes: labels[:classes], Score: 0.4, NMS: 0.45}
}

// street is a grey 160×120 frame with a red 60×100 block (a "vehicle") and
// a green 60×60 block (a "stall"). With a 64-pixel input the frame is
// scaled by 0.4 and padded by 8 pixels above and below, so both blocks
// fill whole 8-pixel grid cells of the model: 3×5 and 3×3 cells.
func street(t testing.TB) gocv.Mat {
	t.Helper()
	m := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(120, 120, 120, 0), 120, 160, gocv.MatTypeCV8UC3)
	gocv.Rectangle(&m, image.Rect(20, 20, 80, 120), color.RGBA{230, 20, 20, 0}, -1)
	gocv.Rectangle(&m, image.Rect(100, 0, 160, 60), color.RGBA{20, 230, 20, 0}, -1)
	return m
}

func TestDetectFindsEachObjectWithItsClassAndBox(t *testing.T) {
	for _, layout := range []Layout{YOLOv5, YOLOv8} {
		t.Run(string(layout), func(t *testing.T) {
			d, err := New(build(t, onnxtest.Spec{Input: 64, Stride: 8, Classes: 3, Layout: string(layout)}), opts(64, layout, 3))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			frame := street(t)
			defer frame.Close()
			dets, err := d.Detect(frame)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]image.Rectangle{"vehicle": image.Rect(20, 20, 80, 120), "stall": image.Rect(100, 0, 160, 60)}
			if len(dets) != len(want) {
				t.Fatalf("got %d detections %+v, want one vehicle and one stall", len(dets), dets)
			}
			for _, got := range dets {
				box, ok := want[got.Label]
				if !ok {
					t.Errorf("unexpected %+v", got)
					continue
				}
				// Colour evidence 0.62 scores sigmoid(12·0.62−6) = 0.81;
				// YOLOv5 multiplies objectness and class: 0.65.
				if got.Label != labels[got.Class] || IoU(got.Box, box) < 0.9 || got.Score < 0.6 {
					t.Errorf("%s: got box %v score %.2f class %d, want box %v, score >= 0.6", got.Label, got.Box, got.Score, got.Class, box)
				}
			}
			// An empty street has nothing in it.
			empty := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(120, 120, 120, 0), 120, 160, gocv.MatTypeCV8UC3)
			defer empty.Close()
			if dets, err := d.Detect(empty); err != nil || len(dets) != 0 {
				t.Errorf("empty street: %+v, %v", dets, err)
			}
		})
	}
}

func TestDetectBGRAndDynamicInput(t *testing.T) {
	// A model exported with dynamic height and width runs at the configured size.
	d, err := New(build(t, onnxtest.Spec{Input: 64, Stride: 8, Classes: 2, Layout: "yolov8", Dynamic: true}), opts(64, YOLOv8, 2))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	frame := street(t)
	defer frame.Close()
	dets, err := d.DetectBGR(frame.ToBytes(), 160, 120)
	if err != nil {
		t.Fatal(err)
	}
	if len(dets) != 2 || dets[0].Score < 0.6 {
		t.Fatalf("got %+v, want the vehicle and the stall", dets)
	}
	if _, err := d.DetectBGR(frame.ToBytes()[:100], 160, 120); err == nil || !strings.Contains(err.Error(), "not a 160x120 BGR picture") {
		t.Errorf("short picture: got %v", err)
	}
	d.Close()
	if _, err := d.Detect(frame); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("after Close: got %v", err)
	}
}

func TestLoadRefusesWhatDoesNotFit(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) (string, string) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p, models.Sum(b)
	}
	v8, v8sum := write("v8.onnx", build(t, onnxtest.Spec{Input: 64, Stride: 8, Classes: 2, Layout: "yolov8"}))
	v5, v5sum := write("v5.onnx", build(t, onnxtest.Spec{Input: 64, Stride: 8, Classes: 2, Layout: "yolov5"}))
	whole := build(t, onnxtest.Spec{Input: 64, Stride: 8, Classes: 2, Layout: "yolov8"})
	cut, cutSum := write("cut.onnx", whole[:len(whole)/2])
	junk, junkSum := write("junk.onnx", []byte("this is not a model at all"))

	tests := []struct {
		name, path, sum string
		opt             Options
		msg             string
	}{
		{"ok", v8, v8sum, opts(64, YOLOv8, 2), ""},
		{"missing file", filepath.Join(dir, "nope.onnx"), v8sum, opts(64, YOLOv8, 2), "no such file"},
		{"wrong sha256", v8, v5sum, opts(64, YOLOv8, 2), "sha256 mismatch: the config says " + v5sum},
		{"more classes than the model has", v8, v8sum, opts(64, YOLOv8, 3), "model output has shape [1 6 384]; layout yolov8 with 3 classes wants [1 7 N]"},
		{"yolov5 model read as yolov8", v5, v5sum, opts(64, YOLOv8, 2), "layout yolov8 with 2 classes wants [1 6 N]"},
		{"yolov8 model read as yolov5", v8, v8sum, opts(64, YOLOv5, 2), "layout yolov5 with 2 classes wants [1 N 7]"},
		{"other input size", v8, v8sum, opts(128, YOLOv8, 2), `model input "images" has shape [1 3 64 64], the config wants [1 3 128 128]`},
		{"truncated model", cut, cutSum, opts(64, YOLOv8, 2), "not an ONNX model"},
		{"not a model", junk, junkSum, opts(64, YOLOv8, 2), "not an ONNX model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Load(tt.path, tt.sum, tt.opt)
			if tt.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				d.Close()
				return
			}
			if err == nil {
				d.Close()
				t.Fatalf("loaded; want an error containing %q", tt.msg)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %q, want it to contain %q", err, tt.msg)
			}
		})
	}
	if _, err := Load(v8, v5sum, opts(64, YOLOv8, 2)); !errors.Is(err, models.ErrChecksum) {
		t.Errorf("wrong sha256: %v is not models.ErrChecksum", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	good := opts(640, YOLOv8, 2)
	tests := []struct {
		name string
		edit func(*Options)
		msg  string
	}{
		{"good", func(*Options) {}, ""},
		{"input not a multiple of 32", func(o *Options) { o.Input = 100 }, "input: 100"},
		{"input too large", func(o *Options) { o.Input = 8192 }, "input: 8192"},
		{"layout", func(o *Options) { o.Layout = "yolov7" }, `layout: "yolov7"`},
		{"no classes", func(o *Options) { o.Classes = nil }, "classes: at least one"},
		{"empty label", func(o *Options) { o.Classes = []string{"car", ""} }, `classes[1]: ""`},
		{"duplicate label", func(o *Options) { o.Classes = []string{"car", "car"} }, `classes[1]: "car"`},
		{"score 0", func(o *Options) { o.Score = 0 }, "score: 0"},
		{"score 1", func(o *Options) { o.Score = 1 }, "score: 1"},
		{"nms 0", func(o *Options) { o.NMS = 0 }, "nms: 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.edit(&o)
			err := o.Validate()
			if (tt.msg == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.msg)) {
				t.Fatalf("got %v, want %q", err, tt.msg)
			}
		})
	}
}

func TestBestPicksTheMostOverlappingDetection(t *testing.T) {
	car := Detection{Box: image.Rect(0, 0, 100, 50), Label: "vehicle", Score: 0.9}
	stall := Detection{Box: image.Rect(80, 0, 160, 60), Label: "stall", Score: 0.6}
	tests := []struct {
		name string
		box  image.Rectangle
		want string // "" = none
	}{
		{"inside the car", image.Rect(10, 5, 90, 45), "vehicle"},
		{"mostly the stall, though the car scores higher", image.Rect(90, 0, 160, 60), "stall"},
		{"far away", image.Rect(300, 300, 340, 340), ""},
		{"barely touching", image.Rect(99, 49, 200, 200), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Best([]Detection{car, stall}, tt.box)
			if ok != (tt.want != "") || got.Label != tt.want {
				t.Fatalf("got %+v %v, want %q", got, ok, tt.want)
			}
		})
	}
}

func TestLetterboxRoundTrip(t *testing.T) {
	tests := []struct {
		w, h, input int
		in          [4]float32 // cx, cy, w, h in input pixels
		want        image.Rectangle
	}{
		{160, 120, 64, [4]float32{20, 36, 24, 40}, image.Rect(20, 20, 80, 120)},   // padded above and below
		{120, 160, 64, [4]float32{36, 20, 40, 24}, image.Rect(20, 20, 120, 80)},   // padded left and right
		{640, 640, 640, [4]float32{630, 10, 40, 40}, image.Rect(610, 0, 640, 30)}, // clipped to the frame
	}
	for _, tt := range tests {
		got := fit(tt.w, tt.h, tt.input).toFrame(tt.in[0], tt.in[1], tt.in[2], tt.in[3])
		if got != tt.want {
			t.Errorf("%dx%d in %d: %v → %v, want %v", tt.w, tt.h, tt.input, tt.in, got, tt.want)
		}
	}
}

// The tiny model at its own 64-pixel input, and the same network at 640
// (stride 16: 9,600 anchor positions, about YOLOv8's 8,400), each on a
// 1280×720 frame: letterbox, blob, forward, decode and NMS.
func BenchmarkDetect(b *testing.B) {
	for _, s := range []onnxtest.Spec{
		{Input: 64, Stride: 8, Classes: 3, Layout: "yolov8"},
		{Input: 640, Stride: 16, Classes: 3, Layout: "yolov8"},
		{Input: 640, Stride: 16, Classes: 3, Layout: "yolov5"},
	} {
		b.Run(s.Layout+"-"+strconv.Itoa(s.Input), func(b *testing.B) {
			d, err := New(build(b, s), opts(s.Input, Layout(s.Layout), 3))
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			frame := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(120, 120, 120, 0), 720, 1280, gocv.MatTypeCV8UC3)
			defer frame.Close()
			gocv.Rectangle(&frame, image.Rect(200, 300, 500, 500), color.RGBA{230, 20, 20, 0}, -1)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := d.Detect(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
