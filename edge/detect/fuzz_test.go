package detect

import (
	"testing"

	"github.com/gridwatch/gridwatch/edge/detect/onnxtest"
)

// The model's input is read from its protobuf before OpenCV sees the file:
// any bytes give a name and shape or an error, never a panic.
func FuzzONNXInput(f *testing.F) {
	for _, spec := range []onnxtest.Spec{{Input: 32, Stride: 8, Classes: 2, Layout: "yolov8"}, {Input: 32, Stride: 8, Classes: 1, Layout: "yolov5", Dynamic: true}} {
		b, err := onnxtest.Build(spec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("not a model"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, dims, err := onnxInput(b); err == nil && len(dims) == 0 {
			t.Fatal("an input without dimensions was accepted")
		}
	})
}
