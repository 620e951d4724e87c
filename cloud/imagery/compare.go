package imagery

import (
	"context"
	"fmt"
	"image"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/cloud/imagery/change"
	"github.com/gridwatch/gridwatch/cloud/imagery/georef"
)

// CompareOptions tune Compare.
type CompareOptions struct {
	Tile      int     // core tile side, pixels (default 768)
	Margin    int     // context read around each tile, pixels (at least the model's reach)
	MinAreaM2 float64 // changes smaller than this on the ground are dropped
	Workers   int     // tiles processed at once (default GOMAXPROCS)
	// Progress, if set, is called after every tile.
	Progress func(done, total int)
}

// CompareStats summarise a run.
type CompareStats struct {
	Tiles    int
	Pixels   int // pixels of both dates
	Duration time.Duration
	CPU      time.Duration // CPU time of all threads
	Shifts   []Shift       // per tile
}

// Tile is one unit of work: Core is the region it is responsible for, Read
// the region read (Core plus margin, clipped to the image).
type Tile struct {
	Core, Read image.Rectangle
}

// Tiles splits a w×h image into core tiles of side size read with margin.
func Tiles(w, h, size, margin int) []Tile {
	var out []Tile
	for y := 0; y < h; y += size {
		for x := 0; x < w; x += size {
			core := image.Rect(x, y, min(x+size, w), min(y+size, h))
			read := image.Rect(x-margin, y-margin, x+size+margin, y+size+margin).Intersect(image.Rect(0, 0, w, h))
			out = append(out, Tile{Core: core, Read: read})
		}
	}
	return out
}

// ReadMat decodes an image as 8-bit BGR, keeping it compact (3 bytes/pixel)
// until tiles are cut from it.
func ReadMat(path string) (gocv.Mat, error) {
	m := gocv.IMRead(path, gocv.IMReadColor)
	if m.Empty() {
		m.Close()
		return m, fmt.Errorf("read image %s: missing or not decodable by OpenCV", path)
	}
	return m, nil
}

func cropMat(m gocv.Mat, r image.Rectangle) (*change.Image, error) {
	reg := m.Region(r)
	defer reg.Close()
	c := reg.Clone()
	defer c.Close()
	return matToImage(c)
}

// Compare finds the changes between before and after (same size, same grid
// g). Tiles are processed in parallel, each read with a margin of context;
// their probability maps are cleaned locally (smoothing, threshold,
// morphology) and stitched into one mask for the whole image, on which the
// area limits and polygons run, so a change crossing tile borders stays one
// polygon. The stitched mask and scores take 2 bytes per pixel (plus 4 for
// labelling): images of a few hundred megapixels; larger areas go tile
// folder by tile folder.
func Compare(ctx context.Context, m *change.Model, before, after gocv.Mat, g georef.Grid, opt CompareOptions) ([]georef.Change, CompareStats, error) {
	start, cpu0 := time.Now(), cpuTime()
	if before.Cols() != after.Cols() || before.Rows() != after.Rows() {
		return nil, CompareStats{}, fmt.Errorf("compare: before is %dx%d, after %dx%d: resample them onto one grid first",
			before.Cols(), before.Rows(), after.Cols(), after.Rows())
	}
	if opt.Tile <= 0 {
		opt.Tile = 768
	}
	if opt.Margin <= 0 {
		opt.Margin = 64
	}
	opt.Margin = max(opt.Margin, m.Reach())
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	w, h := before.Cols(), before.Rows()
	// The network standardises every tile with the whole images' band
	// statistics, so its result does not depend on the tiling.
	var sc *change.SceneStats
	if m.Net != nil {
		st, err := MatStats(before, after)
		if err != nil {
			return nil, CompareStats{}, fmt.Errorf("compare: %w", err)
		}
		sc = &st
	}
	tiles := Tiles(w, h, opt.Tile, opt.Margin)
	stats := CompareStats{Tiles: len(tiles), Pixels: 2 * w * h, Shifts: make([]Shift, len(tiles))}
	mask := change.NewMask(w, h)
	score := make([]uint8, w*h) // probability × 255
	errs := make([]error, len(tiles))
	next := make(chan int)
	var done atomic.Int64
	var wg sync.WaitGroup
	for k := 0; k < opt.Workers; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				stats.Shifts[i], errs[i] = compareTile(m, sc, before, after, tiles[i], mask, score)
				d := done.Add(1)
				if opt.Progress != nil {
					opt.Progress(int(d), len(tiles))
				}
			}
		}()
	}
	for i := range tiles {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, stats, err
	}
	for i, err := range errs {
		if err != nil {
			return nil, stats, fmt.Errorf("tile %v: %w", tiles[i].Core, err)
		}
	}
	mask = change.RemoveSmall(mask, m.Post.MinArea, m.Post.MaxHole)
	out, err := Polygons(mask, func(i int) float64 { return float64(score[i]) / 255 }, image.Point{}, g, opt.MinAreaM2)
	if err != nil {
		return nil, stats, err
	}
	for i := range out {
		out[i].ID = i + 1
	}
	stats.Duration, stats.CPU = time.Since(start), cpuTime()-cpu0
	return out, stats, nil
}

// compareTile writes the tile's core into the shared mask and score (tiles'
// cores do not overlap, so no locking is needed); sc are the whole images'
// band statistics (nil: the tile's own).
func compareTile(m *change.Model, sc *change.SceneStats, before, after gocv.Mat, t Tile, mask *change.Mask, score []uint8) (Shift, error) {
	a, err := cropMat(before, t.Read)
	if err != nil {
		return Shift{}, err
	}
	b, err := cropMat(after, t.Read)
	if err != nil {
		return Shift{}, err
	}
	b, shift := PrepareFor(m, a, b)
	prob, err := m.ProbScene(a, b, sc, 1)
	if err != nil {
		return shift, err
	}
	local := m.Post.Local(prob, a.W, a.H)
	for y := t.Core.Min.Y; y < t.Core.Max.Y; y++ {
		for x := t.Core.Min.X; x < t.Core.Max.X; x++ {
			j := (y-t.Read.Min.Y)*a.W + x - t.Read.Min.X
			mask.Pix[y*mask.W+x] = local.Pix[j]
			score[y*mask.W+x] = uint8(min(max(prob[j]*255+0.5, 0), 255))
		}
	}
	return shift, nil
}

// Polygons turns the regions of mask into WGS84 polygons (outer contours,
// simplified to within one pixel) with ground area and score, the mean of
// prob over the region. off is the mask's origin in the grid's pixels.
func Polygons(mask *change.Mask, prob func(i int) float64, off image.Point, g georef.Grid, minAreaM2 float64) ([]georef.Change, error) {
	labels, comps := change.Components(mask, 1)
	var out []georef.Change
	for _, c := range comps {
		cx, cy := float64(off.X)+float64(c.MinX+c.MaxX+1)/2, float64(off.Y)+float64(c.MinY+c.MaxY+1)/2
		area := float64(c.Area) * g.PixelAreaM2(cx, cy)
		if area < minAreaM2 {
			continue
		}
		// A one-pixel border of zeros lets the contour close around the region.
		bw, bh := c.MaxX-c.MinX+3, c.MaxY-c.MinY+3
		buf := make([]byte, bw*bh)
		var sum float64
		for y := c.MinY; y <= c.MaxY; y++ {
			for x := c.MinX; x <= c.MaxX; x++ {
				i := y*mask.W + x
				if labels[i] == c.Label {
					buf[(y-c.MinY+1)*bw+x-c.MinX+1] = 255
					sum += prob(i)
				}
			}
		}
		mat, err := gocv.NewMatFromBytes(bh, bw, gocv.MatTypeCV8UC1, buf)
		if err != nil {
			return nil, err
		}
		cs := gocv.FindContours(mat, gocv.RetrievalExternal, gocv.ChainApproxSimple)
		mat.Close()
		best, bestA := -1, -1.0
		for i := 0; i < cs.Size(); i++ {
			if a := gocv.ContourArea(cs.At(i)); a > bestA {
				best, bestA = i, a
			}
		}
		var pts []image.Point
		if best >= 0 {
			ap := gocv.ApproxPolyDP(cs.At(best), 1.0, true)
			pts = ap.ToPoints()
			ap.Close()
		}
		cs.Close()
		if len(pts) < 3 { // a line or a dot: use the bounding box
			pts = []image.Point{{1, 1}, {bw - 1, 1}, {bw - 1, bh - 1}, {1, bh - 1}}
		}
		ring := make([][2]float64, len(pts))
		for i, p := range pts {
			// Contour points are pixel indices; +0.5 is the pixel centre.
			px := float64(off.X+c.MinX-1+p.X) + 0.5
			py := float64(off.Y+c.MinY-1+p.Y) + 0.5
			lon, lat := g.LonLat(px, py)
			ring[i] = [2]float64{lon, lat}
		}
		out = append(out, georef.Change{Ring: ring, AreaM2: area, Score: sum / float64(c.Area), Pixels: c.Area,
			PixelBox: [4]int{off.X + c.MinX, off.Y + c.MinY, off.X + c.MaxX + 1, off.Y + c.MaxY + 1}})
	}
	return out, nil
}
