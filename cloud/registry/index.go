package registry

import (
	"cmp"
	"math"
	"slices"
)

// EarthRadius is the mean Earth radius (IUGG) in metres used by DistanceMeters.
const EarthRadius = 6371008.8

const degToRad = math.Pi / 180

// DistanceMeters is the great-circle distance between two points in metres, on a sphere of radius
// EarthRadius. NearestFacilities orders and limits by exactly this number.
func DistanceMeters(lat1, lon1, lat2, lon2 float64) float64 {
	return havToMeters(havVec(unitVector(lat1, lon1), unitVector(lat2, lon2)))
}

// unitVector is the point on the unit sphere.
func unitVector(lat, lon float64) [3]float64 {
	phi, lam := lat*degToRad, lon*degToRad
	c := math.Cos(phi)
	return [3]float64{c * math.Cos(lam), c * math.Sin(lam), math.Sin(phi)}
}

// havVec is the haversine of the angle between two unit vectors, hav θ = (chord/2)², computed without
// trigonometry so that a search can afford it for every candidate. It grows with the distance, so
// comparing it is comparing distances. The conversions keep the compiler from fusing multiply-adds,
// so that every caller gets the same bits.
func havVec(p, q [3]float64) float64 {
	dx, dy, dz := p[0]-q[0], p[1]-q[1], p[2]-q[2]
	return (float64(dx*dx) + float64(dy*dy) + float64(dz*dz)) / 4
}

func havToMeters(a float64) float64 {
	return 2 * EarthRadius * math.Asin(math.Sqrt(min(1, a)))
}

func metersToHav(m float64) float64 {
	s := math.Sin(min(m/EarthRadius, math.Pi) / 2)
	return s * s
}

// bbox is a [lon, lat] bounding box.
type bbox struct{ minLon, minLat, maxLon, maxLat float64 }

func ringBox(ring [][2]float64) bbox {
	b := bbox{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	for _, p := range ring {
		b.minLon, b.maxLon = min(b.minLon, p[0]), max(b.maxLon, p[0])
		b.minLat, b.maxLat = min(b.minLat, p[1]), max(b.maxLat, p[1])
	}
	return b
}

func (b bbox) contains(lat, lon float64) bool {
	return lon >= b.minLon && lon <= b.maxLon && lat >= b.minLat && lat <= b.maxLat
}

// cellIndex is a uniform grid of buckets over the cells' extent. Each bucket lists, in cell order, the
// cells whose bounding box overlaps it, so a look-up tests a handful of boxes and one or two polygons.
// Buckets are about the size of an average cell: smaller ones would list each cell many times, larger
// ones would make every look-up test more polygons.
type cellIndex struct {
	extent     bbox
	nx, ny     int
	invW, invH float64 // buckets per degree
	start      []int32 // bucket b lists items[start[b]:start[b+1]]
	items      []int32
	boxes      []bbox // per cell
}

func newCellIndex(cells []Cell) cellIndex {
	if len(cells) == 0 {
		return cellIndex{}
	}
	ix := cellIndex{boxes: make([]bbox, len(cells))}
	ix.extent = bbox{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	var sumW, sumH float64
	for i, c := range cells {
		b := ringBox(c.Polygon)
		ix.boxes[i] = b
		ix.extent.minLon, ix.extent.maxLon = min(ix.extent.minLon, b.minLon), max(ix.extent.maxLon, b.maxLon)
		ix.extent.minLat, ix.extent.maxLat = min(ix.extent.minLat, b.minLat), max(ix.extent.maxLat, b.maxLat)
		sumW += b.maxLon - b.minLon
		sumH += b.maxLat - b.minLat
	}
	n := float64(len(cells))
	w, h := ix.extent.maxLon-ix.extent.minLon, ix.extent.maxLat-ix.extent.minLat
	// Every polygon has a non-zero area, so the averages are positive.
	fx, fy := math.Ceil(w/(sumW/n)), math.Ceil(h/(sumH/n))
	// Overlapping or very uneven cells could ask for far more buckets than cells; keep it linear.
	if limit := 4*n + 64; fx*fy > limit {
		s := math.Sqrt(limit / (fx * fy))
		fx, fy = math.Ceil(fx*s), math.Ceil(fy*s)
	}
	ix.nx, ix.ny = max(1, int(fx)), max(1, int(fy))
	ix.invW, ix.invH = float64(ix.nx)/w, float64(ix.ny)/h

	// Counting sort of (bucket, cell) pairs keeps each bucket's cells in cell order.
	ix.start = make([]int32, ix.nx*ix.ny+1)
	for _, b := range ix.boxes {
		x0, y0, x1, y1 := ix.span(b)
		for y := y0; y <= y1; y++ {
			for x := x0; x <= x1; x++ {
				ix.start[y*ix.nx+x+1]++
			}
		}
	}
	for i := 1; i < len(ix.start); i++ {
		ix.start[i] += ix.start[i-1]
	}
	ix.items = make([]int32, ix.start[len(ix.start)-1])
	next := slices.Clone(ix.start[:len(ix.start)-1])
	for i, b := range ix.boxes {
		x0, y0, x1, y1 := ix.span(b)
		for y := y0; y <= y1; y++ {
			for x := x0; x <= x1; x++ {
				k := y*ix.nx + x
				ix.items[next[k]] = int32(i)
				next[k]++
			}
		}
	}
	return ix
}

func (ix *cellIndex) bucketX(lon float64) int {
	return min(ix.nx-1, max(0, int((lon-ix.extent.minLon)*ix.invW)))
}

func (ix *cellIndex) bucketY(lat float64) int {
	return min(ix.ny-1, max(0, int((lat-ix.extent.minLat)*ix.invH)))
}

func (ix *cellIndex) span(b bbox) (x0, y0, x1, y1 int) {
	return ix.bucketX(b.minLon), ix.bucketY(b.minLat), ix.bucketX(b.maxLon), ix.bucketY(b.maxLat)
}

// find returns the index of the first cell containing the point, or -1.
func (ix *cellIndex) find(cells []Cell, lat, lon float64) int {
	if ix.nx == 0 || !ix.extent.contains(lat, lon) {
		return -1
	}
	k := ix.bucketY(lat)*ix.nx + ix.bucketX(lon)
	for _, i := range ix.items[ix.start[k]:ix.start[k+1]] {
		if ix.boxes[i].contains(lat, lon) && inRing(cells[i].Polygon, lon, lat) {
			return int(i)
		}
	}
	return -1
}

// inRing is the crossing-number point-in-polygon test. Each edge is evaluated with its endpoints in a
// fixed order, so two cells sharing an edge compute the same crossing and a point on the edge lands in
// exactly one of them.
func inRing(ring [][2]float64, x, y float64) bool {
	in := false
	j := len(ring) - 1
	for i := range ring {
		a, b := ring[i], ring[j]
		j = i
		if a[1] > b[1] {
			a, b = b, a
		}
		if y < a[1] || y >= b[1] {
			continue
		}
		if x < a[0]+(y-a[1])*(b[0]-a[0])/(b[1]-a[1]) {
			in = !in
		}
	}
	return in
}

// facilityIndex is a uniform grid of buckets, square in metres, each holding a few facilities. A
// search scans rings of buckets outwards from the query's bucket and stops when no unscanned bucket
// can hold anything nearer than what it already has, or anything within the limit.
type facilityIndex struct {
	lat0, lon0 float64 // south-west corner of bucket (0, 0), degrees
	dLat, dLon float64 // bucket size, degrees
	nx, ny     int
	start      []int32 // bucket b holds pts[start[b]:start[b+1]]
	pts        []facPoint
}

type facPoint struct {
	v   [3]float64 // unitVector
	idx int32      // into the facility slice
}

// facilitiesPerBucket trades scanning empty buckets against computing distances to far facilities.
const facilitiesPerBucket = 4

func newFacilityIndex(facs []Facility) facilityIndex {
	if len(facs) == 0 {
		return facilityIndex{}
	}
	ext := bbox{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	for _, f := range facs {
		ext.minLon, ext.maxLon = min(ext.minLon, f.Lon), max(ext.maxLon, f.Lon)
		ext.minLat, ext.maxLat = min(ext.minLat, f.Lat), max(ext.maxLat, f.Lat)
	}
	mLat := EarthRadius * degToRad
	mLon := mLat * max(0.01, math.Cos((ext.minLat+ext.maxLat)/2*degToRad))
	wm, hm := (ext.maxLon-ext.minLon)*mLon, (ext.maxLat-ext.minLat)*mLat
	target := max(1, float64(len(facs))/facilitiesPerBucket)
	side := max(math.Sqrt(wm*hm/target), max(wm, hm)/target, 1)
	ix := facilityIndex{
		lat0: ext.minLat, lon0: ext.minLon,
		dLat: side / mLat, dLon: side / mLon,
		nx: int(wm/side) + 1, ny: int(hm/side) + 1,
	}

	bucket := make([]int32, len(facs))
	ix.start = make([]int32, ix.nx*ix.ny+1)
	for i, f := range facs {
		x := min(ix.nx-1, max(0, int((f.Lon-ix.lon0)/ix.dLon)))
		y := min(ix.ny-1, max(0, int((f.Lat-ix.lat0)/ix.dLat)))
		bucket[i] = int32(y*ix.nx + x)
		ix.start[bucket[i]+1]++
	}
	for i := 1; i < len(ix.start); i++ {
		ix.start[i] += ix.start[i-1]
	}
	ix.pts = make([]facPoint, len(facs))
	next := slices.Clone(ix.start[:len(ix.start)-1])
	for i, f := range facs {
		ix.pts[next[bucket[i]]] = facPoint{v: unitVector(f.Lat, f.Lon), idx: int32(i)}
		next[bucket[i]]++
	}
	return ix
}

type candidate struct {
	hav float64
	idx int32
}

// search is one NearestFacilities query: the best n so far in a max-heap, the worst on top.
type search struct {
	facs  []Facility
	q     [3]float64
	limit float64 // haversine of maxMeters
	n     int
	heap  []candidate
}

// worse reports whether a sorts after b: farther, or as far with a larger id.
func (s *search) worse(a, b candidate) bool {
	if a.hav != b.hav {
		return a.hav > b.hav
	}
	return s.facs[a.idx].ID > s.facs[b.idx].ID
}

func (s *search) scan(pts []facPoint) {
	for i := range pts {
		h := havVec(s.q, pts[i].v)
		if h > s.limit {
			continue
		}
		c := candidate{h, pts[i].idx}
		if len(s.heap) < s.n {
			s.push(c)
		} else if s.worse(s.heap[0], c) {
			s.replaceTop(c)
		}
	}
}

func (s *search) push(c candidate) {
	s.heap = append(s.heap, c)
	for i := len(s.heap) - 1; i > 0; {
		p := (i - 1) / 2
		if !s.worse(s.heap[i], s.heap[p]) {
			break
		}
		s.heap[i], s.heap[p] = s.heap[p], s.heap[i]
		i = p
	}
}

func (s *search) replaceTop(c candidate) {
	h := s.heap
	h[0] = c
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h) && s.worse(h[l], h[m]) {
			m = l
		}
		if r < len(h) && s.worse(h[r], h[m]) {
			m = r
		}
		if m == i {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

func (ix *facilityIndex) nearest(facs []Facility, lat, lon float64, n int, maxMeters float64) []int32 {
	if n <= 0 || ix.nx == 0 || !validLat(lat) || !validLon(lon) || math.IsNaN(maxMeters) {
		return nil
	}
	s := search{facs: facs, q: unitVector(lat, lon), limit: math.Inf(1), n: min(n, len(facs))}
	if maxMeters > 0 {
		s.limit = metersToHav(maxMeters)
	}
	s.heap = make([]candidate, 0, min(s.n, 64))
	cosPhi := math.Cos(lat * degToRad)
	bucket := func(x, y int) []facPoint {
		b := y*ix.nx + x
		return ix.pts[ix.start[b]:ix.start[b+1]]
	}

	bx := int(math.Floor((lon - ix.lon0) / ix.dLon))
	by := int(math.Floor((lat - ix.lat0) / ix.dLat))
	// Rings closer than kStart miss the grid; rings beyond kEnd are past its far corner.
	kStart := max(0, -bx, bx-(ix.nx-1), -by, by-(ix.ny-1))
	kEnd := max(bx, ix.nx-1-bx, by, ix.ny-1-by)
	for k := kStart; k <= kEnd; k++ {
		if bound := ix.outsideBound(lat, lon, cosPhi, bx, by, k-1); bound > s.limit || (len(s.heap) == s.n && s.heap[0].hav < bound) {
			break
		}
		x0, x1 := max(bx-k, 0), min(bx+k, ix.nx-1)
		for y := max(by-k, 0); y <= min(by+k, ix.ny-1); y++ {
			if y == by-k || y == by+k {
				for x := x0; x <= x1; x++ {
					s.scan(bucket(x, y))
				}
				continue
			}
			if x := bx - k; x >= 0 {
				s.scan(bucket(x, y))
			}
			if x := bx + k; x < ix.nx {
				s.scan(bucket(x, y))
			}
		}
	}

	slices.SortFunc(s.heap, func(a, b candidate) int {
		if c := cmp.Compare(a.hav, b.hav); c != 0 {
			return c
		}
		return cmp.Compare(facs[a.idx].ID, facs[b.idx].ID)
	})
	out := make([]int32, len(s.heap))
	for i, c := range s.heap {
		out[i] = c.idx
	}
	return out
}

// outsideBound is a lower bound on the haversine of the distance from the query to any point outside
// the square of buckets within Chebyshev distance k of the query's bucket (bx, by).
func (ix *facilityIndex) outsideBound(lat, lon, cosPhi float64, bx, by, k int) float64 {
	if k < 0 {
		return 0
	}
	// Gaps from the query to the nearest edges of the square, in radians.
	gLat := min(lat-(ix.lat0+float64(by-k)*ix.dLat), ix.lat0+float64(by+k+1)*ix.dLat-lat) * degToRad
	gLon := min(lon-(ix.lon0+float64(bx-k)*ix.dLon), ix.lon0+float64(bx+k+1)*ix.dLon-lon) * degToRad
	gLat, gLon = min(max(gLat, 0), math.Pi), min(max(gLon, 0), math.Pi)
	// A point beyond the latitude gap: hav >= sin²(Δφ/2). Otherwise it lies within gLat of the query's
	// latitude and beyond the longitude gap: hav >= cosφ1·cosφ2·sin²(Δλ/2), cosφ2 at least its value at
	// the band's highest absolute latitude.
	s := math.Sin(gLat / 2)
	byLat := s * s
	s = math.Sin(gLon / 2)
	byLon := cosPhi * math.Cos(min(math.Abs(lat*degToRad)+gLat, math.Pi/2)) * s * s
	// Shave a little off for rounding in the bucket edges and in havVec.
	return min(byLat, byLon)*(1-1e-9) - 1e-20
}
