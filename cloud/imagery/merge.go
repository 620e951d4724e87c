package imagery

import (
	"fmt"
	"image"
	"sort"
	"sync"

	"github.com/gridwatch/gridwatch/cloud/imagery/change"
)

// maxCropSide bounds the region read around a merged change for its crops,
// pixels per side: a verifier needs the building and its surroundings, not
// a whole construction site at full resolution.
const maxCropSide = 1024

// merge turns the finished units' findings into the job's changes: a
// region that crosses unit borders was found as one piece per unit (Part);
// pieces that touch (8-connected, as within a unit) become one change with
// one polygon traced over all of them, one area, the pixel-weighted mean
// score, crops read around the whole region, and the id and sequence
// number of its first piece (so the result, and what filing it does, is
// the same however often the job was stopped and resumed). Size limits
// (the model's minimum pixels, the job's minimum m²) apply to the whole.
// Groups are merged on workers goroutines (each reads its own pixels).
func (j *Job) merge(src Source, m *change.Model, minAreaM2 float64, workers int) ([]JobChange, error) {
	var out, parts []JobChange
	for _, c := range j.unitChanges() {
		if c.Part == nil {
			out = append(out, c)
		} else {
			parts = append(parts, c)
		}
	}
	groups := groupParts(parts)
	merged := make([][]JobChange, len(groups))
	errs := make([]error, len(groups))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < max(workers, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for gi := range next {
				members := make([]JobChange, len(groups[gi]))
				for i, k := range groups[gi] {
					members[i] = parts[k]
				}
				merged[gi], errs[gi] = j.mergeGroup(src, m, minAreaM2, members)
				if errs[gi] != nil {
					errs[gi] = fmt.Errorf("change %s: %w", members[0].ID, errs[gi])
				}
			}
		}()
	}
	for gi := range groups {
		next <- gi
	}
	close(next)
	wg.Wait()
	for gi := range groups {
		if errs[gi] != nil {
			return nil, errs[gi]
		}
		out = append(out, merged[gi]...)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Seq < out[b].Seq })
	if out == nil {
		out = []JobChange{}
	}
	return out, nil
}

// borderPixels calls fn for each pixel of a part on its unit core's edge
// (only those can touch a piece in another unit).
func borderPixels(p *Part, fn func(image.Point)) {
	x0, y0, x1, y1 := p.Core[0], p.Core[1], p.Core[2], p.Core[3]
	for _, r := range p.Runs {
		y := r[0]
		if y == y0 || y == y1-1 {
			for x := r[1]; x < r[2]; x++ {
				fn(image.Pt(x, y))
			}
			continue
		}
		if r[1] == x0 {
			fn(image.Pt(r[1], y))
		}
		if r[2] == x1 {
			fn(image.Pt(r[2]-1, y))
		}
	}
}

// groupParts returns the sets of pieces that touch across unit borders,
// each in the pieces' order, the sets ordered by their first piece.
func groupParts(parts []JobChange) [][]int {
	parent := make([]int, len(parts))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	at := map[image.Point]int{}
	for i, p := range parts {
		borderPixels(p.Part, func(q image.Point) { at[q] = i })
	}
	for i, p := range parts {
		borderPixels(p.Part, func(q image.Point) {
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					if k, ok := at[q.Add(image.Pt(dx, dy))]; ok && k != i {
						a, b := find(i), find(k)
						if a != b {
							parent[max(a, b)] = min(a, b)
						}
					}
				}
			}
		})
	}
	idx := map[int]int{}
	var out [][]int
	for i := range parts {
		r := find(i)
		g, ok := idx[r]
		if !ok {
			g = len(out)
			idx[r] = g
			out = append(out, nil)
		}
		out[g] = append(out[g], i)
	}
	return out
}

// maxMergeSide bounds a merged change, pixels per side: touching pieces
// spanning more than this are not a building but a region of change (or a
// misregistered stretch); they stay one change per unit, as found, rather
// than be traced as one mask of that size.
const maxMergeSide = 8192

// mergeGroup makes one change of touching pieces (none when the whole is
// below the size limits).
func (j *Job) mergeGroup(src Source, m *change.Model, minAreaM2 float64, parts []JobChange) ([]JobChange, error) {
	asFound := func() []JobChange {
		var out []JobChange
		for _, c := range parts {
			if c.Pixels >= m.Post.MinArea && c.AreaM2 >= minAreaM2 && c.Before != "" {
				c.Part = nil
				out = append(out, c)
			}
		}
		return out
	}
	if len(parts) == 1 && (parts[0].Before != "" || parts[0].Pixels < m.Post.MinArea || parts[0].AreaM2 < minAreaM2) {
		// Touches no piece of another unit: the change is the piece as its
		// unit found it (crops included when it is large enough).
		return asFound(), nil
	}
	var box image.Rectangle
	var pixels int
	var scoreSum float64
	for _, p := range parts {
		for _, r := range p.Part.Runs {
			box = box.Union(image.Rect(r[1], r[0], r[2], r[0]+1))
			pixels += r[2] - r[1]
		}
		scoreSum += p.Score * float64(p.Pixels)
	}
	if pixels < m.Post.MinArea {
		return nil, nil
	}
	if box.Dx() > maxMergeSide || box.Dy() > maxMergeSide {
		return asFound(), nil
	}
	// The whole region as one mask, with a one-pixel empty frame; holes
	// across the border are filled as within a unit.
	org := box.Min.Sub(image.Pt(1, 1))
	mask := change.NewMask(box.Dx()+2, box.Dy()+2)
	for _, p := range parts {
		for _, r := range p.Part.Runs {
			row := (r[0] - org.Y) * mask.W
			for x := r[1]; x < r[2]; x++ {
				mask.Pix[row+x-org.X] = 1
			}
		}
	}
	mask = change.RemoveSmall(mask, 0, m.Post.MaxHole)
	// The pixels around the region, for the crops and the georeferencing.
	g := max(32, max(box.Dx(), box.Dy())/2)
	read := box.Inset(-g)
	if read.Dx() > maxCropSide || read.Dy() > maxCropSide {
		c := image.Pt((box.Min.X+box.Max.X)/2, (box.Min.Y+box.Max.Y)/2)
		read = read.Intersect(image.Rect(c.X-maxCropSide/2, c.Y-maxCropSide/2, c.X+maxCropSide/2, c.Y+maxCropSide/2))
	}
	piece, err := src.Region(read)
	if err != nil {
		return nil, err
	}
	polys, err := Polygons(mask, func(int) float64 { return 0 }, org.Sub(piece.Origin), piece.Grid, 0)
	if err != nil {
		return nil, err
	}
	if len(polys) == 0 {
		return nil, nil
	}
	// One region by construction; should tracing ever split it, the
	// largest piece gives the outline and all count for the area.
	best := 0
	var area float64
	var px int
	for i, q := range polys {
		area += q.AreaM2
		px += q.Pixels
		if q.Pixels > polys[best].Pixels {
			best = i
		}
	}
	if area < minAreaM2 {
		return nil, nil
	}
	first := parts[0]
	c := JobChange{ID: first.ID, Seq: first.Seq, Ring: polys[best].Ring, AreaM2: area, Score: scoreSum / float64(pixels), Pixels: px}
	for _, p := range parts {
		c.Parts = append(c.Parts, p.ID)
	}
	pb := polys[best].PixelBox
	c.Lon, c.Lat = piece.Grid.LonLat(float64(pb[0]+pb[2])/2, float64(pb[1]+pb[3])/2)
	cropBox := box.Sub(piece.Origin).Intersect(image.Rect(0, 0, piece.Before.W, piece.Before.H))
	if err := j.writeCrops(&c, piece.Before, piece.After, piece.Grid, cropBox); err != nil {
		return nil, err
	}
	return []JobChange{c}, nil
}
