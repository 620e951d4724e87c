// Package onnxtest builds small, real ONNX object detectors for the tests
// and benchmarks of edge/detect, so nothing has to be downloaded. The
// network is a hand-weighted anchor detector: a 1×1 convolution turns each
// pixel into per-class colour evidence (class k answers to primary colour k
// in RGB order: red, green, blue), average pooling sums it per grid cell,
// and a matched-filter convolution scores every anchor box at every cell as
// "mean evidence inside the box minus mean evidence in a one-cell ring
// around it". The best score therefore belongs to the anchor that fits a
// coloured rectangle exactly, so the output really depends on the image.
// The boxes are a constant tensor (cell centre, anchor size) concatenated
// with the scores into the YOLOv8 layout [1, 4+C, N] or, with an
// objectness row and a transpose, the YOLOv5 layout [1, N, 5+C].
package onnxtest

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Spec describes the network to build.
type Spec struct {
	Input   int    // square input side in pixels, a multiple of Stride
	Stride  int    // pixels per grid cell
	Classes int    // 1-3
	Layout  string // "yolov5" or "yolov8"
	// Dynamic leaves the input's height and width unnamed (dim_param) as
	// exporters do with dynamic axes.
	Dynamic bool
}

// Anchors are the box sizes, in grid cells, scored at every cell. They are
// odd so that each is centred on its cell.
var Anchors = [][2]int{{1, 1}, {3, 3}, {5, 3}, {3, 5}, {5, 5}, {7, 5}}

// The matched filter: sigmoid(gain·(inside − ring) − offset). A colour
// rectangle that fills an anchor exactly scores sigmoid(12·0.8 − 6) ≈ 0.97.
const (
	gain   = 12
	offset = 6
	kernel = 9 // the widest anchor plus its ring
)

// N is the number of anchor positions the model outputs.
func (s Spec) N() int {
	g := s.Input / s.Stride
	return len(Anchors) * g * g
}

// Build returns the serialised ONNX model (IR version 7, opset 11).
func Build(s Spec) ([]byte, error) {
	if s.Stride < 1 || s.Input < s.Stride || s.Input%s.Stride != 0 {
		return nil, fmt.Errorf("onnxtest: input %d is not a multiple of stride %d", s.Input, s.Stride)
	}
	if s.Classes < 1 || s.Classes > 3 {
		return nil, fmt.Errorf("onnxtest: classes %d not in 1-3", s.Classes)
	}
	if s.Layout != "yolov5" && s.Layout != "yolov8" {
		return nil, fmt.Errorf("onnxtest: layout %q", s.Layout)
	}
	C, A, g := s.Classes, len(Anchors), s.Input/s.Stride
	n := A * g * g
	rows := C // score rows: classes, and for YOLOv5 objectness first
	if s.Layout == "yolov5" {
		rows++
	}
	var gr graph

	// Colour evidence: e_k = relu(P_k − ½·(other primaries) − 0.2).
	cw := make([]float32, C*3)
	cb := make([]float32, C)
	for k := 0; k < C; k++ {
		for c := 0; c < 3; c++ {
			cw[k*3+c] = -0.5
		}
		cw[k*3+k] = 1
		cb[k] = -0.2
	}
	gr.init("colour.w", []int64{int64(C), 3, 1, 1}, cw)
	gr.init("colour.b", []int64{int64(C)}, cb)
	gr.node("Conv", []string{"images", "colour.w", "colour.b"}, "colour", ints("kernel_shape", 1, 1))
	gr.node("Relu", []string{"colour"}, "evidence")
	gr.node("AveragePool", []string{"evidence"}, "cells",
		ints("kernel_shape", int64(s.Stride), int64(s.Stride)), ints("strides", int64(s.Stride), int64(s.Stride)))

	// Matched filter: output channel r·A + a scores anchor a for row r.
	mw := make([]float32, rows*A*C*kernel*kernel)
	mb := make([]float32, rows*A)
	for r := 0; r < rows; r++ {
		for a, an := range Anchors {
			o := r*A + a
			mb[o] = -offset
			hw, hh := an[0]/2, an[1]/2
			in := float32(an[0] * an[1])
			ring := float32((an[0]+2)*(an[1]+2)) - in
			for k := 0; k < C; k++ {
				// Objectness (YOLOv5 row 0) looks at every class's evidence.
				cls := r
				if s.Layout == "yolov5" {
					cls = r - 1
				}
				if cls >= 0 && cls != k {
					continue
				}
				for y := 0; y < kernel; y++ {
					for x := 0; x < kernel; x++ {
						dx, dy := abs(x-kernel/2), abs(y-kernel/2)
						var w float32
						switch {
						case dx <= hw && dy <= hh:
							w = gain / in
						case dx <= hw+1 && dy <= hh+1:
							w = -gain / ring
						}
						mw[((o*C+k)*kernel+y)*kernel+x] = w
					}
				}
			}
		}
	}
	gr.init("match.w", []int64{int64(rows * A), int64(C), kernel, kernel}, mw)
	gr.init("match.b", []int64{int64(rows * A)}, mb)
	p := int64(kernel / 2)
	gr.node("Conv", []string{"cells", "match.w", "match.b"}, "match",
		ints("kernel_shape", kernel, kernel), ints("pads", p, p, p, p))
	gr.node("Sigmoid", []string{"match"}, "scores4d")
	gr.initInt64("scores.shape", []int64{3}, []int64{1, int64(rows), int64(n)})
	gr.node("Reshape", []string{"scores4d", "scores.shape"}, "scores")

	// Boxes: cx, cy, w, h in input pixels for position a·g² + y·g + x.
	bx := make([]float32, 4*n)
	for a, an := range Anchors {
		for y := 0; y < g; y++ {
			for x := 0; x < g; x++ {
				i := (a*g+y)*g + x
				bx[0*n+i] = (float32(x) + 0.5) * float32(s.Stride)
				bx[1*n+i] = (float32(y) + 0.5) * float32(s.Stride)
				bx[2*n+i] = float32(an[0] * s.Stride)
				bx[3*n+i] = float32(an[1] * s.Stride)
			}
		}
	}
	gr.init("boxes", []int64{1, 4, int64(n)}, bx)
	out := []int64{1, int64(4 + rows), int64(n)}
	if s.Layout == "yolov8" {
		gr.node("Concat", []string{"boxes", "scores"}, "output0", intAttr("axis", 1))
	} else {
		gr.node("Concat", []string{"boxes", "scores"}, "rows", intAttr("axis", 1))
		gr.node("Transpose", []string{"rows"}, "output0", ints("perm", 0, 2, 1))
		out = []int64{1, int64(n), int64(4 + rows)}
	}

	in := []dim{{v: 1}, {v: 3}, {v: int64(s.Input)}, {v: int64(s.Input)}}
	if s.Dynamic {
		in[2], in[3] = dim{p: "height"}, dim{p: "width"}
	}
	var g7 []byte
	for _, nd := range gr.nodes {
		g7 = protowire.AppendTag(g7, 1, protowire.BytesType)
		g7 = protowire.AppendBytes(g7, nd)
	}
	g7 = appendString(g7, 2, "gridwatch-onnxtest")
	for _, t := range gr.inits {
		g7 = protowire.AppendTag(g7, 5, protowire.BytesType)
		g7 = protowire.AppendBytes(g7, t)
	}
	g7 = protowire.AppendTag(g7, 11, protowire.BytesType)
	g7 = protowire.AppendBytes(g7, valueInfo("images", in))
	od := make([]dim, len(out))
	for i, v := range out {
		od[i] = dim{v: v}
	}
	g7 = protowire.AppendTag(g7, 12, protowire.BytesType)
	g7 = protowire.AppendBytes(g7, valueInfo("output0", od))

	var m []byte
	m = protowire.AppendTag(m, 1, protowire.VarintType)
	m = protowire.AppendVarint(m, 7) // IR version
	m = appendString(m, 2, "gridwatch-onnxtest")
	m = protowire.AppendTag(m, 7, protowire.BytesType)
	m = protowire.AppendBytes(m, g7)
	var op []byte
	op = appendString(op, 1, "")
	op = protowire.AppendTag(op, 2, protowire.VarintType)
	op = protowire.AppendVarint(op, 11)
	m = protowire.AppendTag(m, 8, protowire.BytesType)
	m = protowire.AppendBytes(m, op)
	return m, nil
}

// graph collects serialised NodeProtos and initializer TensorProtos.
type graph struct {
	nodes, inits [][]byte
}

func (g *graph) node(op string, inputs []string, output string, attrs ...[]byte) {
	var b []byte
	for _, in := range inputs {
		b = appendString(b, 1, in)
	}
	b = appendString(b, 2, output)
	b = appendString(b, 3, output)
	b = appendString(b, 4, op)
	for _, a := range attrs {
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, a)
	}
	g.nodes = append(g.nodes, b)
}

// init adds a float tensor stored as raw little-endian bytes.
func (g *graph) init(name string, dims []int64, v []float32) {
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
	}
	g.inits = append(g.inits, tensor(name, dims, 1, raw))
}

func (g *graph) initInt64(name string, dims []int64, v []int64) {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	g.inits = append(g.inits, tensor(name, dims, 7, raw))
}

func tensor(name string, dims []int64, dtype uint64, raw []byte) []byte {
	var b []byte
	for _, d := range dims {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(d))
	}
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, dtype)
	b = appendString(b, 8, name)
	b = protowire.AppendTag(b, 9, protowire.BytesType)
	return protowire.AppendBytes(b, raw)
}

type dim struct {
	v int64
	p string
}

// valueInfo is a float tensor ValueInfoProto.
func valueInfo(name string, dims []dim) []byte {
	var shape []byte
	for _, d := range dims {
		var db []byte
		if d.p != "" {
			db = appendString(db, 2, d.p)
		} else {
			db = protowire.AppendTag(db, 1, protowire.VarintType)
			db = protowire.AppendVarint(db, uint64(d.v))
		}
		shape = protowire.AppendTag(shape, 1, protowire.BytesType)
		shape = protowire.AppendBytes(shape, db)
	}
	var tt []byte
	tt = protowire.AppendTag(tt, 1, protowire.VarintType)
	tt = protowire.AppendVarint(tt, 1) // FLOAT
	tt = protowire.AppendTag(tt, 2, protowire.BytesType)
	tt = protowire.AppendBytes(tt, shape)
	var typ []byte
	typ = protowire.AppendTag(typ, 1, protowire.BytesType)
	typ = protowire.AppendBytes(typ, tt)
	var b []byte
	b = appendString(b, 1, name)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	return protowire.AppendBytes(b, typ)
}

func ints(name string, v ...int64) []byte {
	var b []byte
	b = appendString(b, 1, name)
	var packed []byte
	for _, x := range v {
		packed = protowire.AppendVarint(packed, uint64(x))
	}
	b = protowire.AppendTag(b, 8, protowire.BytesType)
	b = protowire.AppendBytes(b, packed)
	b = protowire.AppendTag(b, 20, protowire.VarintType)
	return protowire.AppendVarint(b, 7) // INTS
}

func intAttr(name string, v int64) []byte {
	var b []byte
	b = appendString(b, 1, name)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(v))
	b = protowire.AppendTag(b, 20, protowire.VarintType)
	return protowire.AppendVarint(b, 2) // INT
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
