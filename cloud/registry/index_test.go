package registry

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// bruteCellAt is the first cell containing the point, by testing every cell.
func bruteCellAt(r *Registry, lat, lon float64) int {
	for i, c := range r.cells {
		if inRing(c.Polygon, lon, lat) {
			return i
		}
	}
	return -1
}

// bruteNearest measures every facility and keeps the n best in a sorted list.
func bruteNearest(r *Registry, lat, lon float64, n int, maxMeters float64) []Facility {
	type fd struct {
		f Facility
		d float64
	}
	less := func(a, b fd) bool { return a.d < b.d || (a.d == b.d && a.f.ID < b.f.ID) }
	var best []fd
	for _, f := range r.facs {
		x := fd{f, DistanceMeters(lat, lon, f.Lat, f.Lon)}
		if (maxMeters > 0 && x.d > maxMeters) || (len(best) == n && !less(x, best[n-1])) {
			continue
		}
		i := len(best)
		for i > 0 && less(x, best[i-1]) {
			i--
		}
		best = slices.Insert(best, i, x)
		if len(best) > n {
			best = best[:n]
		}
	}
	var out []Facility
	for _, x := range best {
		out = append(out, x.f)
	}
	return out
}

func TestCellAtSmall(t *testing.T) {
	r, err := New(smallData())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		lat, lon float64
		want     string // "" for none
	}{
		{"west cell", 39.9215, 116.4445, "110105003001001"},
		{"east cell", 39.9215, 116.4475, "110105003001002"},
		{"anchor", 39.92195, 116.44352, "110105003001001"},
		{"shared edge goes east", 39.9215, 116.446, "110105003001002"},
		{"south-west corner", 39.920, 116.443, "110105003001001"},
		{"north of both", 39.9235, 116.4445, ""},
		{"west of both", 39.9215, 116.44, ""},
		{"far away", 0, 0, ""},
		{"NaN", math.NaN(), 116.4445, ""},
		{"infinite", 39.9215, math.Inf(1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := r.CellAt(tt.lat, tt.lon)
			if ok != (tt.want != "") || c.Code != tt.want {
				t.Errorf("CellAt(%v, %v) = %q, %v; want %q", tt.lat, tt.lon, c.Code, ok, tt.want)
			}
		})
	}
}

func TestCellAtDemoCentroids(t *testing.T) {
	r := Demo()
	for _, c := range r.cells {
		var lat, lon float64
		for _, p := range c.Polygon {
			lon += p[0] / float64(len(c.Polygon))
			lat += p[1] / float64(len(c.Polygon))
		}
		if got, ok := r.CellAt(lat, lon); !ok || got.Code != c.Code {
			t.Fatalf("CellAt(centroid of %s) = %q, %v", c.Code, got.Code, ok)
		}
	}
}

func TestCellAtDemoOutside(t *testing.T) {
	r := Demo()
	for _, p := range [][2]float64{
		{39.81, 116.50}, {40.09, 116.50}, {39.95, 116.39}, {39.95, 116.63}, // beyond each side
		{40.079, 116.401}, {39.821, 116.619}, // corners cut off by the outline
		{39.8607, 116.3846}, // Temple of Heaven, in Dongcheng
		{0, 0}, {-90, -180}, {90, 180},
	} {
		if c, ok := r.CellAt(p[0], p[1]); ok {
			t.Errorf("CellAt(%v, %v) = %s, want none: outside the district", p[0], p[1], c.Code)
		}
	}
}

// TestCellAtMatchesBruteForce checks the index against testing every cell, on points in and around
// the district.
func TestCellAtMatchesBruteForce(t *testing.T) {
	r := Demo()
	rng := rand.New(rand.NewPCG(1, 2))
	inside := 0
	for range 10000 {
		lat := 39.81 + rng.Float64()*0.28
		lon := 116.39 + rng.Float64()*0.24
		want := bruteCellAt(r, lat, lon)
		got, ok := r.CellAt(lat, lon)
		switch {
		case want < 0 && ok:
			t.Fatalf("CellAt(%v, %v) = %s, brute force finds none", lat, lon, got.Code)
		case want >= 0 && (!ok || got.Code != r.cells[want].Code):
			t.Fatalf("CellAt(%v, %v) = %q, %v; brute force finds %s", lat, lon, got.Code, ok, r.cells[want].Code)
		}
		if ok {
			inside++
		}
	}
	// The district covers 468 of the 610 km² sampled.
	if inside < 7000 || inside > 8200 {
		t.Errorf("%d of 10000 points in a cell, want about 7,700", inside)
	}
}

// TestCellAtSharedEdges checks that the cells tile: a point on an edge between two cells is in
// exactly one of them, and in at most one on the district's boundary.
func TestCellAtSharedEdges(t *testing.T) {
	r := Demo()
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		c := r.cells[rng.IntN(len(r.cells))]
		k := rng.IntN(len(c.Polygon))
		a, b := c.Polygon[k], c.Polygon[(k+1)%len(c.Polygon)]
		lon, lat := (a[0]+b[0])/2, (a[1]+b[1])/2
		var in []string
		for _, o := range r.cells {
			if inRing(o.Polygon, lon, lat) {
				in = append(in, o.Code)
			}
		}
		if len(in) > 1 {
			t.Fatalf("midpoint of an edge of %s is in %v", c.Code, in)
		}
		if len(in) == 0 && bruteCellAt(r, lat+1e-6, lon) >= 0 && bruteCellAt(r, lat-1e-6, lon) >= 0 &&
			bruteCellAt(r, lat, lon+1e-6) >= 0 && bruteCellAt(r, lat, lon-1e-6) >= 0 {
			t.Fatalf("midpoint of an inner edge of %s is in no cell", c.Code)
		}
	}
}

func TestDistanceMeters(t *testing.T) {
	tests := []struct {
		name                   string
		lat1, lon1, lat2, lon2 float64
		want, tolerance        float64
	}{
		{"same point", 39.92, 116.44, 39.92, 116.44, 0, 0},
		{"one degree of latitude", 39.5, 116.4, 40.5, 116.4, EarthRadius * math.Pi / 180, 1e-6},
		{"anchors power to telecom", 39.92195, 116.44352, 39.92201, 116.44371, 17.52, 0.01},
		{"Beijing to Shanghai", 39.9042, 116.4074, 31.2304, 121.4737, 1067.3e3, 1e3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DistanceMeters(tt.lat1, tt.lon1, tt.lat2, tt.lon2)
			if math.Abs(got-tt.want) > tt.tolerance {
				t.Errorf("DistanceMeters = %.3f, want %.3f ± %v", got, tt.want, tt.tolerance)
			}
			if back := DistanceMeters(tt.lat2, tt.lon2, tt.lat1, tt.lon1); back != got {
				t.Errorf("not symmetric: %v and %v", got, back)
			}
		})
	}
}

func TestNearestFacilitiesSmall(t *testing.T) {
	depts, streets, cells, facs := smallData()
	// A second cover at exactly the first's place: ties go by id.
	facs = append(facs, Facility{ID: "1101050105000122", TypeCode: "0105", Lat: 39.92195, Lon: 116.44352, OwnerDept: "dept-power"})
	r, err := New(depts, streets, cells, facs)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(fs []Facility) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.ID)
		}
		return out
	}
	tests := []struct {
		name      string
		lat, lon  float64
		n         int
		maxMeters float64
		want      []string
	}{
		{"nearest two tie by id", 39.92195, 116.44352, 2, 0, []string{"1101050105000122", "1101050105000123"}},
		{"all, nearest first", 39.9215, 116.4476, 10, 0,
			[]string{"1101050102000457", "1101050105000122", "1101050105000123", "1101050102000456"}},
		{"within 20 m", 39.92190, 116.44345, 10, 20,
			[]string{"1101050102000456", "1101050105000122", "1101050105000123"}},
		{"within 1 m", 39.92190, 116.44345, 10, 1, nil},
		{"far away, no limit", 0, 0, 1, 0, []string{"1101050102000456"}},
		{"far away, 1 km", 0, 0, 1, 1000, nil},
		{"n = 0", 39.92, 116.44, 0, 0, nil},
		{"NaN", math.NaN(), 116.44, 3, 0, nil},
		{"NaN limit", 39.92, 116.44, 3, math.NaN(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ids(r.NearestFacilities(tt.lat, tt.lon, tt.n, tt.maxMeters))
			if !slices.Equal(got, tt.want) {
				t.Errorf("NearestFacilities = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNearestFacilitiesMatchesBruteForce(t *testing.T) {
	r := Demo()
	rng := rand.New(rand.NewPCG(5, 6))
	queries := []struct {
		n         int
		maxMeters float64
	}{{1, 0}, {5, 100}, {5, 300}, {20, 500}, {50, 0}, {3, 20}}
	for i := range 600 {
		q := queries[i%len(queries)]
		lat := 39.80 + rng.Float64()*0.30
		lon := 116.38 + rng.Float64()*0.26
		if i%100 == 0 { // far outside the district
			lat, lon = rng.Float64()*60, 80+rng.Float64()*60
		}
		got := r.NearestFacilities(lat, lon, q.n, q.maxMeters)
		want := bruteNearest(r, lat, lon, q.n, q.maxMeters)
		if !slices.Equal(got, want) {
			t.Fatalf("NearestFacilities(%v, %v, %d, %v):\n got %v\nwant %v", lat, lon, q.n, q.maxMeters, got, want)
		}
		prev := 0.0
		for _, f := range got {
			d := DistanceMeters(lat, lon, f.Lat, f.Lon)
			if d < prev || (q.maxMeters > 0 && d > q.maxMeters) {
				t.Fatalf("NearestFacilities(%v, %v, %d, %v): %s at %v m out of order or too far", lat, lon, q.n, q.maxMeters, f.ID, d)
			}
			prev = d
		}
	}
}

// squareGrid is a registry of rows × cols square cells of about 1 ha and one facility per cell.
func squareGrid(tb testing.TB, rows, cols int) *Registry {
	depts := []Department{
		{ID: "dept-power", Name: "Power", Kind: KindOwner, Owns: []string{"0105"}},
		{ID: "street-110105001", Name: "Office", Kind: KindStreet},
	}
	streets := []Street{{Code: "110105001", Name: "Street", OfficeDept: "street-110105001"}}
	var cells []Cell
	var facs []Facility
	const d = 0.001
	for j := range rows {
		for i := range cols {
			x, y := 116.4+float64(i)*d, 39.9+float64(j)*d
			k := j*cols + i
			cells = append(cells, Cell{
				Code: fmt.Sprintf("110105001%03d%03d", k/1000, k%1000), Street: "110105001",
				Community: fmt.Sprintf("%03d", k/1000), AreaClass: "A",
				Polygon: [][2]float64{{x, y}, {x + d, y}, {x + d, y + d}, {x, y + d}},
			})
			facs = append(facs, Facility{ID: fmt.Sprintf("1101050105%06d", k), TypeCode: "0105",
				Lat: y + d/3, Lon: x + d/3, OwnerDept: "dept-power"})
		}
	}
	r, err := New(depts, streets, cells, facs)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func TestSquareGrid(t *testing.T) {
	r := squareGrid(t, 100, 100)
	rng := rand.New(rand.NewPCG(7, 8))
	for range 2000 {
		lat, lon := 39.89+rng.Float64()*0.12, 116.39+rng.Float64()*0.12
		want := bruteCellAt(r, lat, lon)
		got, ok := r.CellAt(lat, lon)
		if (want >= 0) != ok || (ok && got.Code != r.cells[want].Code) {
			t.Fatalf("CellAt(%v, %v) = %q, %v; brute force %d", lat, lon, got.Code, ok, want)
		}
	}
}

func BenchmarkCellAt(b *testing.B) {
	for _, bc := range []struct {
		name string
		r    func() *Registry
	}{
		{"demo_8423", Demo},
		{"square_10000", func() *Registry { return squareGrid(b, 100, 100) }},
	} {
		r := bc.r()
		ext := r.cellGrid.extent
		rng := rand.New(rand.NewPCG(9, 10))
		pts := make([][2]float64, 4096)
		for i := range pts {
			pts[i] = [2]float64{ext.minLat + rng.Float64()*(ext.maxLat-ext.minLat), ext.minLon + rng.Float64()*(ext.maxLon-ext.minLon)}
		}
		b.Run(bc.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				p := pts[i%len(pts)]
				r.CellAt(p[0], p[1])
				i++
			}
		})
		b.Run(bc.name+"/brute_force", func(b *testing.B) {
			i := 0
			for b.Loop() {
				p := pts[i%len(pts)]
				bruteCellAt(r, p[0], p[1])
				i++
			}
		})
	}
}

func BenchmarkNearestFacilities(b *testing.B) {
	r := Demo()
	rng := rand.New(rand.NewPCG(11, 12))
	pts := make([][2]float64, 4096)
	for i := range pts {
		pts[i] = [2]float64{39.85 + rng.Float64()*0.2, 116.42 + rng.Float64()*0.18}
	}
	for _, q := range []struct {
		n         int
		maxMeters float64
	}{{1, 50}, {3, 30}, {5, 200}, {10, 0}, {100, 0}} {
		b.Run(fmt.Sprintf("n=%d/max=%gm", q.n, q.maxMeters), func(b *testing.B) {
			i := 0
			for b.Loop() {
				p := pts[i%len(pts)]
				r.NearestFacilities(p[0], p[1], q.n, q.maxMeters)
				i++
			}
		})
	}
}

func TestConcurrentLookups(t *testing.T) {
	r := Demo()
	done := make(chan bool)
	for g := range 4 {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(g), 13))
			for range 500 {
				lat, lon := 39.85+rng.Float64()*0.2, 116.42+rng.Float64()*0.18
				r.CellAt(lat, lon)
				r.NearestFacilities(lat, lon, 5, 300)
			}
			done <- true
		}()
	}
	for range 4 {
		<-done
	}
}
