package imagery

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/cloud/imagery/change"
)

// writeMaps stores a mask (0/255) and a probability map (0..255) as PNGs.
func writeMaps(dir, name string, prob []float32, mask *change.Mask) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	base := strings.TrimSuffix(name, filepath.Ext(name))
	mb := make([]byte, len(mask.Pix))
	pb := make([]byte, len(prob))
	for i, v := range mask.Pix {
		mb[i] = v * 255
		pb[i] = byte(min(max(prob[i]*255, 0), 255))
	}
	for _, f := range []struct {
		file string
		data []byte
	}{{base + ".png", mb}, {base + ".prob.png", pb}} {
		mat, err := gocv.NewMatFromBytes(mask.H, mask.W, gocv.MatTypeCV8UC1, f.data)
		if err != nil {
			return err
		}
		ok := gocv.IMWrite(filepath.Join(dir, f.file), mat)
		mat.Close()
		if !ok {
			return fmt.Errorf("write %s: OpenCV failed", filepath.Join(dir, f.file))
		}
	}
	return nil
}
