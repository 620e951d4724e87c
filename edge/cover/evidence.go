package cover

import (
	"fmt"
	"image"
	"image/color"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/edge/wire"
)

// Snapshot encodes the clean frame and an annotated copy (every cover's
// region drawn, coloured by its last observation) as JPEG.
func (m *Monitor) Snapshot(frame gocv.Mat, highlight string) (clean, annotated []byte, err error) {
	clean, err = encodeJPEG(frame)
	if err != nil {
		return nil, nil, err
	}
	ann := frame.Clone()
	defer ann.Close()
	for _, w := range m.covers {
		col := color.RGBA{40, 200, 60, 0}
		switch w.last.State {
		case wire.CoverMissing, wire.CoverDisplaced:
			col = color.RGBA{230, 30, 30, 0}
		case wire.CoverOccluded, wire.CoverUnknown:
			col = color.RGBA{240, 190, 20, 0}
		}
		th := 2
		if w.FacilityID == highlight {
			th = 4
		}
		gocv.Rectangle(&ann, w.Region, col, th)
		label := fmt.Sprintf("%s %s %.2f", w.FacilityID[len(w.FacilityID)-6:], w.last.State, w.last.Confidence)
		gocv.PutText(&ann, label, image.Pt(w.Region.Min.X, w.Region.Min.Y-6), gocv.FontHersheySimplex, 0.5, col, 2)
	}
	annotated, err = encodeJPEG(ann)
	return clean, annotated, err
}

func encodeJPEG(m gocv.Mat) ([]byte, error) {
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, m, []int{gocv.IMWriteJpegQuality, 85})
	if err != nil {
		return nil, fmt.Errorf("jpeg encode: %w", err)
	}
	defer buf.Close()
	return append([]byte(nil), buf.GetBytes()...), nil
}
