// Package detect runs a city's own object detector on camera frames: an
// ONNX model with YOLO-style outputs (boxes, scores, classes), executed by
// OpenCV's DNN module, so that an occupation episode can say what occupies
// the zone ("vehicle", "stall"). It owns loading (sha256-checked, input and
// output shapes checked against the configuration before the first frame),
// letterboxing, decoding of the YOLOv5 [1, N, 5+C] and YOLOv8 [1, 4+C, N]
// output layouts, per-class score thresholds and non-maximum suppression.
// cgo stays here: OpenCV calls that can throw go through net.cpp, which
// turns C++ exceptions into errors.
package detect

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"sort"
	"sync"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/models"
)

// Layout is how a model arranges its output tensor.
type Layout string

const (
	// YOLOv5 is [1, N, 5+C]: cx, cy, w, h, objectness, C class scores; the
	// score of class k is objectness × class k.
	YOLOv5 Layout = "yolov5"
	// YOLOv8 is [1, 4+C, N]: cx, cy, w, h, C class scores, no objectness.
	YOLOv8 Layout = "yolov8"
)

// Options say how to run a model. Box coordinates in the output are in the
// pixels of the Input×Input letterboxed image, as Ultralytics exports them.
type Options struct {
	Input   int      // square input side in pixels
	Layout  Layout   // output layout
	Classes []string // labels, in the model's class order
	Score   float32  // least score a detection must reach (0-1)
	NMS     float32  // IoU above which the weaker of two same-class boxes is dropped
}

// Validate names the first bad option.
func (o Options) Validate() error {
	switch {
	case o.Input < 32 || o.Input > 4096 || o.Input%32 != 0:
		return fmt.Errorf("input: %d is not a multiple of 32 in 32-4096", o.Input)
	case o.Layout != YOLOv5 && o.Layout != YOLOv8:
		return fmt.Errorf("layout: %q is not yolov5 or yolov8", o.Layout)
	case len(o.Classes) == 0:
		return errors.New("classes: at least one label is required")
	case !(o.Score > 0 && o.Score < 1):
		return fmt.Errorf("score: %v is not in (0, 1)", o.Score)
	case !(o.NMS > 0 && o.NMS <= 1):
		return fmt.Errorf("nms: %v is not in (0, 1]", o.NMS)
	}
	seen := map[string]bool{}
	for i, c := range o.Classes {
		if c == "" || seen[c] {
			return fmt.Errorf("classes[%d]: %q must be a non-empty label used once", i, c)
		}
		seen[c] = true
	}
	return nil
}

// Detection is one object found in a frame.
type Detection struct {
	Box   image.Rectangle // in the pixels of the frame given to Detect
	Class int             // index into Options.Classes
	Label string
	Score float32
}

// Detector runs one model. It is safe for concurrent use; calls are
// serialised, since an OpenCV net holds its input and buffers.
type Detector struct {
	opt  Options
	mu   sync.Mutex
	net  *net
	rows int // values per anchor position: 4+C (yolov8) or 5+C (yolov5)
}

// Load reads a model file, checks its sha256 against want (lower-case hex)
// and prepares it with New.
func Load(path, want string, opt Options) (*Detector, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	if got := models.Sum(b); got != want {
		return nil, fmt.Errorf("detect: %s: %w: the config says %s, the file has %s", path, models.ErrChecksum, want, got)
	}
	d, err := New(b, opt)
	if err != nil {
		return nil, fmt.Errorf("detect: %s: %w", path, err)
	}
	return d, nil
}

// New imports an ONNX model and runs it once on a blank image to check that
// its input and output fit opt.
func New(model []byte, opt Options) (*Detector, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	name, dims, err := onnxInput(model)
	if err != nil {
		return nil, err
	}
	fits := len(dims) == 4 && (dims[0] == 1 || dims[0] < 0) && (dims[1] == 3 || dims[1] < 0) &&
		(dims[2] == int64(opt.Input) || dims[2] < 0) && (dims[3] == int64(opt.Input) || dims[3] < 0)
	if !fits {
		return nil, fmt.Errorf("model input %q has shape %v, the config wants [1 3 %d %d] (input: %d)", name, dims, opt.Input, opt.Input, opt.Input)
	}
	n, err := readNet(model)
	if err != nil {
		return nil, err
	}
	d := &Detector{opt: opt, net: n, rows: 4 + len(opt.Classes)}
	if opt.Layout == YOLOv5 {
		d.rows++
	}
	blank := make([]float32, 3*opt.Input*opt.Input)
	out, shape, err := n.forward(blank, 3, opt.Input, opt.Input)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("trial run: %w", err)
	}
	if _, err := d.positions(out, shape); err != nil {
		n.close()
		return nil, err
	}
	return d, nil
}

// Options returns what the detector was made with.
func (d *Detector) Options() Options { return d.opt }

// Close frees the network.
func (d *Detector) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.net != nil {
		d.net.close()
		d.net = nil
	}
}

// positions checks an output's shape against the layout and returns the
// number of anchor positions N.
func (d *Detector) positions(out []float32, shape []int) (int, error) {
	var n int
	ok := len(shape) == 3 && shape[0] == 1
	switch {
	case ok && d.opt.Layout == YOLOv8 && shape[1] == d.rows:
		n = shape[2]
	case ok && d.opt.Layout == YOLOv5 && shape[2] == d.rows:
		n = shape[1]
	default:
		want := fmt.Sprintf("[1 %d N]", d.rows)
		if d.opt.Layout == YOLOv5 {
			want = fmt.Sprintf("[1 N %d]", d.rows)
		}
		return 0, fmt.Errorf("model output has shape %v; layout %s with %d classes wants %s", shape, d.opt.Layout, len(d.opt.Classes), want)
	}
	if n < 1 || len(out) != n*d.rows {
		return 0, fmt.Errorf("model output has shape %v but %d values", shape, len(out))
	}
	return n, nil
}

// letterbox maps frame pixels into the square model input: scaled to fit,
// centred, padded with grey as YOLO training does.
type letterbox struct {
	scale     float64
	left, top int
	w, h      int // frame size
}

func fit(w, h, input int) letterbox {
	s := math.Min(float64(input)/float64(w), float64(input)/float64(h))
	nw, nh := int(math.Round(float64(w)*s)), int(math.Round(float64(h)*s))
	return letterbox{scale: s, left: (input - nw) / 2, top: (input - nh) / 2, w: w, h: h}
}

// toFrame maps a centre/size box in input pixels back to the frame,
// clipped to it.
func (l letterbox) toFrame(cx, cy, w, h float32) image.Rectangle {
	x0 := (float64(cx-w/2) - float64(l.left)) / l.scale
	y0 := (float64(cy-h/2) - float64(l.top)) / l.scale
	x1 := (float64(cx+w/2) - float64(l.left)) / l.scale
	y1 := (float64(cy+h/2) - float64(l.top)) / l.scale
	r := image.Rect(int(math.Round(x0)), int(math.Round(y0)), int(math.Round(x1)), int(math.Round(y1)))
	return r.Intersect(image.Rect(0, 0, l.w, l.h))
}

// DetectBGR runs the model on a packed 8-bit BGR picture of w×h pixels.
func (d *Detector) DetectBGR(bgr []byte, w, h int) ([]Detection, error) {
	if w < 1 || h < 1 || len(bgr) != w*h*3 {
		return nil, fmt.Errorf("detect: %d bytes is not a %dx%d BGR picture", len(bgr), w, h)
	}
	m, err := gocv.NewMatFromBytes(h, w, gocv.MatTypeCV8UC3, bgr)
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	defer m.Close()
	return d.Detect(m)
}

// Detect runs the model on a BGR frame and returns the detections that
// reach the score threshold and survive per-class NMS, best first.
func (d *Detector) Detect(frame gocv.Mat) ([]Detection, error) {
	if frame.Empty() || frame.Type() != gocv.MatTypeCV8UC3 {
		return nil, errors.New("detect: want a non-empty 8-bit BGR frame")
	}
	in := d.opt.Input
	lb := fit(frame.Cols(), frame.Rows(), in)
	nw, nh := int(math.Round(float64(lb.w)*lb.scale)), int(math.Round(float64(lb.h)*lb.scale))
	resized := gocv.NewMat()
	defer resized.Close()
	gocv.Resize(frame, &resized, image.Pt(nw, nh), 0, 0, gocv.InterpolationLinear)
	padded := gocv.NewMat()
	defer padded.Close()
	gocv.CopyMakeBorder(resized, &padded, lb.top, in-nh-lb.top, lb.left, in-nw-lb.left, gocv.BorderConstant, color.RGBA{114, 114, 114, 0})
	blob := gocv.BlobFromImage(padded, 1/255.0, image.Pt(in, in), gocv.NewScalar(0, 0, 0, 0), true, false)
	defer blob.Close()
	data, err := blob.DataPtrFloat32()
	if err != nil {
		return nil, fmt.Errorf("detect: blob: %w", err)
	}

	d.mu.Lock()
	if d.net == nil {
		d.mu.Unlock()
		return nil, errors.New("detect: detector is closed")
	}
	out, shape, err := d.net.forward(data, 3, in, in)
	d.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	n, err := d.positions(out, shape)
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	return d.decode(out, n, lb), nil
}

// decode turns raw output into thresholded, NMS-filtered detections.
func (d *Detector) decode(out []float32, n int, lb letterbox) []Detection {
	nc := len(d.opt.Classes)
	at := func(pos, row int) float32 { return out[row*n+pos] }
	if d.opt.Layout == YOLOv5 {
		at = func(pos, row int) float32 { return out[pos*d.rows+row] }
	}
	first := 4 // first class row
	if d.opt.Layout == YOLOv5 {
		first = 5
	}
	byClass := make([][]Detection, nc)
	for p := 0; p < n; p++ {
		obj := float32(1)
		if d.opt.Layout == YOLOv5 {
			obj = at(p, 4)
			if obj < d.opt.Score {
				continue // class scores are multiplied by it: none can reach
			}
		}
		best, score := -1, float32(0)
		for k := 0; k < nc; k++ {
			if s := obj * at(p, first+k); s > score {
				best, score = k, s
			}
		}
		if best < 0 || score < d.opt.Score {
			continue
		}
		box := lb.toFrame(at(p, 0), at(p, 1), at(p, 2), at(p, 3))
		if box.Empty() {
			continue
		}
		byClass[best] = append(byClass[best], Detection{Box: box, Class: best, Label: d.opt.Classes[best], Score: score})
	}
	var dets []Detection
	for _, cand := range byClass {
		dets = append(dets, nms(cand, d.opt.Score, d.opt.NMS)...)
	}
	sortByScore(dets)
	return dets
}

// nms keeps the boxes OpenCV's NMSBoxes keeps.
func nms(cand []Detection, score, iou float32) []Detection {
	if len(cand) == 0 {
		return nil
	}
	boxes := make([]image.Rectangle, len(cand))
	scores := make([]float32, len(cand))
	idx := make([]int, len(cand))
	for i, c := range cand {
		boxes[i], scores[i], idx[i] = c.Box, c.Score, -1
	}
	gocv.NMSBoxes(boxes, scores, score, iou, idx)
	var keep []Detection
	for _, i := range idx {
		if i < 0 {
			break // NMSBoxes fills a prefix and does not say how long
		}
		keep = append(keep, cand[i])
	}
	return keep
}

func sortByScore(d []Detection) {
	sort.SliceStable(d, func(i, j int) bool { return d[i].Score > d[j].Score })
}

// MinOverlap is the least IoU a detection needs with an episode's box to
// name what occupies it.
const MinOverlap = 0.1

// Best returns the detection that overlaps box most (by IoU, at least
// MinOverlap); ok is false when none does.
func Best(dets []Detection, box image.Rectangle) (best Detection, ok bool) {
	most := 0.0
	for _, d := range dets {
		if v := IoU(d.Box, box); v >= MinOverlap && v > most {
			best, most, ok = d, v, true
		}
	}
	return best, ok
}

// IoU is the intersection over union of two rectangles.
func IoU(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	i := float64(in.Dx() * in.Dy())
	u := float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()) - i
	return i / u
}
