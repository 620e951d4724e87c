package cover

import (
	"fmt"
	"image"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/edge/coverclass"
)

// FromCoverclass adapts the shipped single-crop classifier; it reads the
// frame's pixels in place (no copy).
func FromCoverclass(c *coverclass.Classifier) Classifier {
	return func(frame gocv.Mat, box image.Rectangle) (float64, error) {
		if frame.Type() != gocv.MatTypeCV8UC3 || !frame.IsContinuous() {
			return 0, fmt.Errorf("classifier needs a continuous 8-bit BGR frame, got type %v", frame.Type())
		}
		pix, err := frame.DataPtrUint8()
		if err != nil {
			return 0, err
		}
		return c.ClassifyBGR(coverclass.BGR{Pix: pix, Width: frame.Cols(), Height: frame.Rows()}, box)
	}
}
