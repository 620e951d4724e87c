package imagery

import (
	"fmt"
	"os"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/cloud/imagery/change"
)

// ReadImage decodes any image OpenCV reads (PNG, JPEG, TIFF, ...) as RGB.
func ReadImage(path string) (*change.Image, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("read image: %w", err)
	}
	m := gocv.IMRead(path, gocv.IMReadColor)
	defer m.Close()
	if m.Empty() {
		return nil, fmt.Errorf("read image %s: OpenCV could not decode it", path)
	}
	return matToImage(m)
}

func matToImage(m gocv.Mat) (*change.Image, error) {
	if m.Type() != gocv.MatTypeCV8UC3 {
		return nil, fmt.Errorf("image type %v, want 8-bit BGR", m.Type())
	}
	if !m.IsContinuous() {
		c := m.Clone()
		defer c.Close()
		m = c
	}
	data, err := m.DataPtrUint8()
	if err != nil {
		return nil, err
	}
	return change.FromBGR(m.Cols(), m.Rows(), data)
}

// ReadMask reads a label image: grey level ≥ 128 means changed.
func ReadMask(path string) (*change.Mask, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("read label: %w", err)
	}
	m := gocv.IMRead(path, gocv.IMReadGrayScale)
	defer m.Close()
	if m.Empty() {
		return nil, fmt.Errorf("read label %s: OpenCV could not decode it", path)
	}
	data, err := m.DataPtrUint8()
	if err != nil {
		return nil, err
	}
	out := change.NewMask(m.Cols(), m.Rows())
	for i, v := range data {
		if v >= 128 {
			out.Pix[i] = 1
		}
	}
	return out, nil
}
