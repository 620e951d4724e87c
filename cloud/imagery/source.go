package imagery

import (
	"database/sql"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"gocv.io/x/gocv"
	_ "modernc.org/sqlite" // database/sql driver "sqlite" for MBTiles

	"github.com/gridwatch/gridwatch/cloud/imagery/change"
	"github.com/gridwatch/gridwatch/cloud/imagery/georef"
)

// A Source cuts the two dates of a comparison into units of work that can be
// processed in any order and on any core.
type Source interface {
	// Describe says what was opened, for logs.
	Describe() string
	// Units lists the work in a stable order (a restarted job finds its
	// finished units by key).
	Units() []Unit
	// Load reads one unit's before and after pixels with context around them.
	Load(u Unit) (*Piece, error)
	// Region reads the pixels of r (in the coordinates of Piece.Origin,
	// clipped to the data) for a change that crosses unit borders.
	Region(r image.Rectangle) (*Piece, error)
	// Stats are the band statistics of both dates over all the imagery
	// (pixels both dates have), with which the network standardises every
	// unit: they do not depend on how the imagery is cut into units.
	Stats() (change.SceneStats, error)
	Close() error
}

// Unit is one piece of work of a Source.
type Unit struct {
	Key   string
	Index int
	tile  Tile // raster pairs: the region of the image
	z     int  // pyramids: zoom and the top-left tile (XYZ numbering) of the block
	x, y  int
}

// Piece is what a unit reads: both dates on one grid, the core region it
// is responsible for, and where both dates have data.
type Piece struct {
	Before, After *change.Image
	Grid          georef.Grid     // pixel (0, 0) is Before's top-left pixel
	Core          image.Rectangle // in Before's pixels
	Valid         []uint8         // nil: everywhere; else 1 where both dates have data
	// Origin is the piece's top-left pixel in the whole image (raster pairs)
	// or the block's top-left pixel at its zoom (pyramids).
	Origin image.Point
}

// SourceOptions tune OpenSource.
type SourceOptions struct {
	CRS    georef.CRS // world files' CRS ("" = guess)
	Tile   int        // raster pairs: core tile side, pixels (default 1024)
	Margin int        // context read around each unit, pixels
	Zoom   int        // pyramids: zoom to compare (0 = highest zoom both dates have)
	// Scheme of tile folders: "xyz" (y grows southwards, the web-map
	// convention), "tms" (y grows northwards) or "auto": tms when the folder
	// holds gdal2tiles' tilemapresource.xml, else xyz. MBTiles are always TMS.
	Scheme string
	Block  int          // pyramids: tiles per unit side (default 4)
	Area   *georef.Area // nil: everything; else only units touching the area
}

// OpenSource opens two dates: two tile pyramids (XYZ/TMS folders or MBTiles
// files, in any combination) or two georeferenced images on one pixel grid
// (GeoTIFF, or any image OpenCV reads with a world file beside it).
func OpenSource(before, after string, opt SourceOptions) (Source, error) {
	kb, err := inputKind(before)
	if err != nil {
		return nil, fmt.Errorf("--before: %w", err)
	}
	ka, err := inputKind(after)
	if err != nil {
		return nil, fmt.Errorf("--after: %w", err)
	}
	if (kb == kindRaster) != (ka == kindRaster) {
		return nil, fmt.Errorf("before %s is %s but after %s is %s: compare two tile pyramids or two georeferenced images", before, kb, after, ka)
	}
	if opt.Margin <= 0 {
		opt.Margin = 64
	}
	if kb == kindRaster {
		return openRasterPair(before, after, opt)
	}
	return openPyramids(before, kb, after, ka, opt)
}

type inputKindT string

const (
	kindRaster  inputKindT = "a georeferenced image"
	kindFolder  inputKindT = "a tile folder"
	kindMBTiles inputKindT = "an MBTiles file"
)

func inputKind(path string) (inputKindT, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		return kindFolder, nil
	}
	if strings.EqualFold(filepath.Ext(path), ".mbtiles") {
		return kindMBTiles, nil
	}
	return kindRaster, nil
}

// ReadGeoImage reads a georeferenced image: a GeoTIFF (georeferencing from
// its tags, unless a world file is beside it) or any image OpenCV decodes
// with a world file.
func ReadGeoImage(path string, crs georef.CRS) (gocv.Mat, georef.Grid, error) {
	wf, _, err := georef.WorldFileFor(path)
	if err != nil {
		ext := strings.ToLower(filepath.Ext(path))
		if ext != ".tif" && ext != ".tiff" {
			return gocv.Mat{}, georef.Grid{}, err
		}
		gt, terr := georef.ReadGeoTIFF(path)
		if terr != nil {
			return gocv.Mat{}, georef.Grid{}, fmt.Errorf("%w (and no world file: %v)", terr, err)
		}
		wf = gt.WF
		if crs == "" {
			crs = gt.CRS
		}
	}
	m, err := ReadMat(path)
	if err != nil {
		return m, georef.Grid{}, err
	}
	g, err := georef.NewGrid(wf, crs, m.Cols(), m.Rows())
	if err != nil {
		m.Close()
		return m, g, fmt.Errorf("%s: %w", path, err)
	}
	return m, g, nil
}

type rasterPair struct {
	desc          string
	before, after gocv.Mat
	grid          georef.Grid
	units         []Unit
}

func openRasterPair(before, after string, opt SourceOptions) (*rasterPair, error) {
	mb, gb, err := ReadGeoImage(before, opt.CRS)
	if err != nil {
		return nil, err
	}
	ma, ga, err := ReadGeoImage(after, opt.CRS)
	if err != nil {
		mb.Close()
		return nil, err
	}
	if ga.WF != gb.WF || ga.W != gb.W || ga.H != gb.H {
		mb.Close()
		ma.Close()
		return nil, fmt.Errorf("before (%dx%d, %+v) and after (%dx%d, %+v) are not on one pixel grid: resample both with gdalwarp -t_srs EPSG:3857 -tr RES RES -te XMIN YMIN XMAX YMAX",
			gb.W, gb.H, gb.WF, ga.W, ga.H, ga.WF)
	}
	if opt.Tile <= 0 {
		opt.Tile = 1024
	}
	r := &rasterPair{desc: fmt.Sprintf("%s → %s: %dx%d px, %s", before, after, gb.W, gb.H, gb.CRS), before: mb, after: ma, grid: gb}
	for _, t := range Tiles(gb.W, gb.H, opt.Tile, opt.Margin) {
		if opt.Area != nil && !anySet(opt.Area.Mask(gb, t.Core)) {
			continue
		}
		r.units = append(r.units, Unit{Key: fmt.Sprintf("px%d_%d", t.Core.Min.X, t.Core.Min.Y), Index: len(r.units), tile: t})
	}
	return r, nil
}

func anySet(m []uint8) bool {
	for _, v := range m {
		if v != 0 {
			return true
		}
	}
	return false
}

func (r *rasterPair) Describe() string { return r.desc }
func (r *rasterPair) Units() []Unit    { return r.units }
func (r *rasterPair) Close() error {
	r.before.Close()
	r.after.Close()
	return nil
}

func (r *rasterPair) Stats() (change.SceneStats, error) { return MatStats(r.before, r.after) }

// MatStats are the band statistics of two whole 8-bit BGR images.
func MatStats(before, after gocv.Mat) (change.SceneStats, error) {
	var acc [2]change.StatsAcc
	for d, m := range []gocv.Mat{before, after} {
		if m.Type() != gocv.MatTypeCV8UC3 {
			return change.SceneStats{}, fmt.Errorf("image type %v, want 8-bit BGR", m.Type())
		}
		for y := 0; y < m.Rows(); y++ {
			row := m.RowRange(y, y+1)
			px, err := row.DataPtrUint8()
			if err != nil {
				row.Close()
				return change.SceneStats{}, err
			}
			acc[d].AddBGR(px[:3*m.Cols()], nil)
			row.Close()
		}
	}
	return change.SceneStats{Before: acc[0].Stats(), After: acc[1].Stats()}, nil
}

func (r *rasterPair) Load(u Unit) (*Piece, error) {
	a, err := cropMat(r.before, u.tile.Read)
	if err != nil {
		return nil, err
	}
	b, err := cropMat(r.after, u.tile.Read)
	if err != nil {
		return nil, err
	}
	o := u.tile.Read.Min
	g := r.grid
	g.WF.C, g.WF.F = g.WF.ToMap(float64(o.X)+0.5, float64(o.Y)+0.5)
	g.W, g.H = a.W, a.H
	return &Piece{Before: a, After: b, Grid: g, Core: u.tile.Core.Sub(o), Origin: o}, nil
}

func (r *rasterPair) Region(rr image.Rectangle) (*Piece, error) {
	rr = rr.Intersect(image.Rect(0, 0, r.grid.W, r.grid.H))
	if rr.Empty() {
		return nil, fmt.Errorf("region %v is outside the %dx%d image", rr, r.grid.W, r.grid.H)
	}
	a, err := cropMat(r.before, rr)
	if err != nil {
		return nil, err
	}
	b, err := cropMat(r.after, rr)
	if err != nil {
		return nil, err
	}
	g := r.grid
	g.WF.C, g.WF.F = g.WF.ToMap(float64(rr.Min.X)+0.5, float64(rr.Min.Y)+0.5)
	g.W, g.H = a.W, a.H
	return &Piece{Before: a, After: b, Grid: g, Core: image.Rect(0, 0, a.W, a.H), Origin: rr.Min}, nil
}

// tileStore is one date's tile pyramid.
type tileStore interface {
	Zooms() ([]int, error)
	Tiles(z int) ([][2]int, error) // XYZ numbering
	Read(z, x, y int) ([]byte, error)
	Close() error
}

func openTileStore(path string, k inputKindT, scheme string) (tileStore, error) {
	if k == kindMBTiles {
		return openMBTiles(path)
	}
	tms := false
	switch strings.ToLower(scheme) {
	case "", "auto":
		_, err := os.Stat(filepath.Join(path, "tilemapresource.xml"))
		tms = err == nil
	case "xyz":
	case "tms":
		tms = true
	default:
		return nil, fmt.Errorf("--scheme %q: want xyz, tms or auto", scheme)
	}
	return &xyzDir{root: path, tms: tms}, nil
}

type xyzDir struct {
	root string
	tms  bool
}

func (d *xyzDir) Zooms() ([]int, error) {
	es, err := os.ReadDir(d.root)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range es {
		if z, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() && z >= 0 && z <= 30 {
			out = append(out, z)
		}
	}
	return out, nil
}

var tileExts = []string{".png", ".jpg", ".jpeg", ".webp"}

func (d *xyzDir) flip(z, y int) int {
	if d.tms {
		return 1<<z - 1 - y
	}
	return y
}

func (d *xyzDir) Tiles(z int) ([][2]int, error) {
	zd := filepath.Join(d.root, strconv.Itoa(z))
	xs, err := os.ReadDir(zd)
	if err != nil {
		return nil, err
	}
	var out [][2]int
	for _, xe := range xs {
		x, err := strconv.Atoi(xe.Name())
		if err != nil || !xe.IsDir() {
			continue
		}
		ys, err := os.ReadDir(filepath.Join(zd, xe.Name()))
		if err != nil {
			return nil, err
		}
		for _, ye := range ys {
			ext := strings.ToLower(filepath.Ext(ye.Name()))
			y, err := strconv.Atoi(strings.TrimSuffix(ye.Name(), filepath.Ext(ye.Name())))
			if err != nil || !containsStr(tileExts, ext) || y < 0 || y >= 1<<z {
				continue
			}
			out = append(out, [2]int{x, d.flip(z, y)})
		}
	}
	return out, nil
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (d *xyzDir) Read(z, x, y int) ([]byte, error) {
	base := filepath.Join(d.root, strconv.Itoa(z), strconv.Itoa(x), strconv.Itoa(d.flip(z, y)))
	for _, ext := range tileExts {
		b, err := os.ReadFile(base + ext)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return nil, nil
}

func (d *xyzDir) Close() error { return nil }

type mbtiles struct {
	path string
	db   *sql.DB
}

func openMBTiles(path string) (*mbtiles, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, fmt.Errorf("mbtiles %s: %w", path, err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM tiles`).Scan(&n); err != nil {
		db.Close()
		return nil, fmt.Errorf("mbtiles %s: no readable tiles table: %w", path, err)
	}
	return &mbtiles{path: path, db: db}, nil
}

func (m *mbtiles) Zooms() ([]int, error) {
	rows, err := m.db.Query(`SELECT DISTINCT zoom_level FROM tiles`)
	if err != nil {
		return nil, fmt.Errorf("mbtiles %s: %w", m.path, err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var z int
		if err := rows.Scan(&z); err != nil {
			return nil, err
		}
		out = append(out, z)
	}
	return out, rows.Err()
}

func (m *mbtiles) Tiles(z int) ([][2]int, error) {
	rows, err := m.db.Query(`SELECT tile_column, tile_row FROM tiles WHERE zoom_level = ?`, z)
	if err != nil {
		return nil, fmt.Errorf("mbtiles %s: %w", m.path, err)
	}
	defer rows.Close()
	var out [][2]int
	for rows.Next() {
		var x, y int
		if err := rows.Scan(&x, &y); err != nil {
			return nil, err
		}
		out = append(out, [2]int{x, 1<<z - 1 - y}) // MBTiles rows are TMS
	}
	return out, rows.Err()
}

func (m *mbtiles) Read(z, x, y int) ([]byte, error) {
	var b []byte
	err := m.db.QueryRow(`SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?`, z, x, 1<<z-1-y).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mbtiles %s: tile %d/%d/%d: %w", m.path, z, x, y, err)
	}
	return b, nil
}

func (m *mbtiles) Close() error { return m.db.Close() }

type pyramids struct {
	tsOnce        sync.Once
	ts            int // tile side, pixels (read from a tile when first needed)
	tsErr         error
	desc          string
	before, after tileStore
	z, block      int
	margin        int
	units         []Unit
	have          map[[2]int]bool // tiles both dates have
}

func openPyramids(before string, kb inputKindT, after string, ka inputKindT, opt SourceOptions) (_ *pyramids, err error) {
	p := &pyramids{block: opt.Block, margin: opt.Margin}
	if p.block <= 0 {
		p.block = 4
	}
	if p.before, err = openTileStore(before, kb, opt.Scheme); err != nil {
		return nil, fmt.Errorf("--before: %w", err)
	}
	if p.after, err = openTileStore(after, ka, opt.Scheme); err != nil {
		p.before.Close()
		return nil, fmt.Errorf("--after: %w", err)
	}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	zb, err := p.before.Zooms()
	if err != nil {
		return nil, fmt.Errorf("--before: %w", err)
	}
	za, err := p.after.Zooms()
	if err != nil {
		return nil, fmt.Errorf("--after: %w", err)
	}
	var common []int
	for _, z := range zb {
		if containsInt(za, z) {
			common = append(common, z)
		}
	}
	sort.Ints(common)
	switch {
	case opt.Zoom > 0 && !containsInt(common, opt.Zoom):
		return nil, fmt.Errorf("--zoom %d: zooms both dates have: %v (before %v, after %v)", opt.Zoom, common, zb, za)
	case opt.Zoom > 0:
		p.z = opt.Zoom
	case len(common) == 0:
		return nil, fmt.Errorf("the dates share no zoom level (before %v, after %v)", zb, za)
	default:
		p.z = common[len(common)-1]
	}
	tb, err := p.before.Tiles(p.z)
	if err != nil {
		return nil, fmt.Errorf("--before: %w", err)
	}
	ta, err := p.after.Tiles(p.z)
	if err != nil {
		return nil, fmt.Errorf("--after: %w", err)
	}
	inAfter := map[[2]int]bool{}
	for _, t := range ta {
		inAfter[t] = true
	}
	p.have = map[[2]int]bool{}
	blocks := map[[2]int]bool{}
	for _, t := range tb {
		if inAfter[t] {
			p.have[t] = true
			blocks[[2]int{t[0] / p.block, t[1] / p.block}] = true
		}
	}
	if len(p.have) == 0 {
		return nil, fmt.Errorf("zoom %d: no tile is in both dates (before has %d, after %d; TMS folder read as XYZ? try --scheme tms)", p.z, len(tb), len(ta))
	}
	keys := make([][2]int, 0, len(blocks))
	for k := range blocks {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][1] < keys[j][1] || keys[i][1] == keys[j][1] && keys[i][0] < keys[j][0]
	})
	for _, k := range keys {
		u := Unit{Key: fmt.Sprintf("z%d_%d_%d", p.z, k[0]*p.block, k[1]*p.block), z: p.z, x: k[0] * p.block, y: k[1] * p.block}
		if opt.Area != nil {
			g := georef.TileGrid(p.z, u.x, u.y, 16, 16*p.block, 16*p.block) // coarse look: 16 px per tile
			if !anySet(opt.Area.Mask(g, image.Rect(0, 0, g.W, g.H))) {
				continue
			}
		}
		u.Index = len(p.units)
		p.units = append(p.units, u)
	}
	p.desc = fmt.Sprintf("%s → %s: zoom %d, %d tiles in both dates, %d blocks of %d×%d tiles", before, after, p.z, len(p.have), len(p.units), p.block, p.block)
	return p, nil
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// statsTiles is about how many tiles (of both dates) Stats reads.
const statsTiles = 32

// Stats reads every k-th tile both dates have, in row order, so that about
// statsTiles tiles spread over the whole pyramid at the zoom are read; the
// choice depends only on the tiles, not on the blocks or the area.
func (p *pyramids) Stats() (change.SceneStats, error) {
	keys := make([][2]int, 0, len(p.have))
	for t := range p.have {
		keys = append(keys, t)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][1] < keys[j][1] || keys[i][1] == keys[j][1] && keys[i][0] < keys[j][0]
	})
	k := (len(keys) + statsTiles - 1) / statsTiles
	var acc [2]change.StatsAcc
	for i := 0; i < len(keys); i += k {
		bufs, valid, ts, err := p.mosaic(p.z, keys[i][0], keys[i][1], 1, 1)
		if err != nil {
			return change.SceneStats{}, err
		}
		if ts == 0 {
			continue
		}
		for d := range acc {
			acc[d].AddBGR(bufs[d], valid)
		}
	}
	return change.SceneStats{Before: acc[0].Stats(), After: acc[1].Stats()}, nil
}

func (p *pyramids) Describe() string { return p.desc }
func (p *pyramids) Units() []Unit    { return p.units }
func (p *pyramids) Close() error {
	p.before.Close()
	return p.after.Close()
}

// decodeTile decodes a tile to BGR; alpha (gdal2tiles' transparent no-data)
// comes back as a validity mask, nil when the tile is opaque.
func decodeTile(data []byte) (gocv.Mat, []uint8, error) {
	m, err := gocv.IMDecode(data, gocv.IMReadUnchanged)
	if err != nil || m.Empty() {
		m.Close()
		return gocv.Mat{}, nil, fmt.Errorf("tile not decodable by OpenCV: %v", err)
	}
	switch m.Channels() {
	case 3:
		return m, nil, nil
	case 1:
		c := gocv.NewMat()
		gocv.CvtColor(m, &c, gocv.ColorGrayToBGR)
		m.Close()
		return c, nil, nil
	case 4:
		alpha := gocv.NewMat()
		gocv.ExtractChannel(m, &alpha, 3)
		a, _ := alpha.DataPtrUint8()
		valid := make([]uint8, len(a))
		for i, v := range a {
			if v >= 128 {
				valid[i] = 1
			}
		}
		alpha.Close()
		c := gocv.NewMat()
		gocv.CvtColor(m, &c, gocv.ColorBGRAToBGR)
		m.Close()
		return c, valid, nil
	}
	ch := m.Channels()
	m.Close()
	return gocv.Mat{}, nil, fmt.Errorf("tile has %d channels", ch)
}

// Load assembles the block's tiles and a ring of neighbours, cut to the
// margin, for both dates. Pixels where either date has no tile (or a
// transparent one) are not valid.
func (p *pyramids) Load(u Unit) (*Piece, error) {
	ring := 1
	n := p.block + 2*ring
	bufs, valid, ts, err := p.mosaic(u.z, u.x-ring, u.y-ring, n, n)
	if err != nil {
		return nil, err
	}
	if ts == 0 {
		return nil, fmt.Errorf("block %s has no tiles", u.Key)
	}
	W := n * ts
	core := image.Rect(ring*ts, ring*ts, (ring+p.block)*ts, (ring+p.block)*ts)
	mg := min(p.margin, ts)
	read := image.Rect(core.Min.X-mg, core.Min.Y-mg, core.Max.X+mg, core.Max.Y+mg)
	// Only the part with data: statistics (normalisation, features) over
	// empty tiles would skew the rest.
	vb := image.Rectangle{}
	for y := read.Min.Y; y < read.Max.Y; y++ {
		for x := read.Min.X; x < read.Max.X; x++ {
			if valid[y*W+x] != 0 {
				vb = vb.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	if vb.Empty() {
		return nil, fmt.Errorf("block %s: no pixel has data in both dates", u.Key)
	}
	read = read.Intersect(vb)
	core = core.Intersect(vb)
	var imgs [2]*change.Image
	for d := range imgs {
		full, err := change.FromBGR(W, W, bufs[d])
		if err != nil {
			return nil, err
		}
		imgs[d] = full.Crop(read)
	}
	v := make([]uint8, read.Dx()*read.Dy())
	for y := 0; y < read.Dy(); y++ {
		copy(v[y*read.Dx():(y+1)*read.Dx()], valid[(read.Min.Y+y)*W+read.Min.X:])
	}
	for _, im := range imgs {
		fillInvalid(im, v)
	}
	// Grid of the read region: the block's top-left tile minus the context.
	off := read.Min.Sub(image.Pt(ring*ts, ring*ts)) // read's top-left relative to the block's
	g := georef.TileGrid(u.z, u.x, u.y, ts, read.Dx(), read.Dy())
	g.WF.C += float64(off.X) * g.WF.A
	g.WF.F += float64(off.Y) * g.WF.E
	return &Piece{Before: imgs[0], After: imgs[1], Grid: g, Core: core.Sub(read.Min), Valid: v,
		Origin: image.Pt(u.x*ts, u.y*ts).Add(off)}, nil
}

// mosaic assembles nx×ny tiles from (x0, y0) of both dates as BGR, with
// 1 in valid where both dates have data; ts is the tile side (0 when no
// tile of the range is in both dates).
func (p *pyramids) mosaic(z, x0, y0, nx, ny int) (bufs [2][]byte, valid []uint8, ts int, err error) {
	for ty := 0; ty < ny; ty++ {
		for tx := 0; tx < nx; tx++ {
			x, y := x0+tx, y0+ty
			if x < 0 || y < 0 || x >= 1<<z || y >= 1<<z || !p.have[[2]int{x, y}] {
				continue
			}
			for d, st := range []tileStore{p.before, p.after} {
				data, err := st.Read(z, x, y)
				if err != nil {
					return bufs, nil, 0, err
				}
				if data == nil {
					return bufs, nil, 0, fmt.Errorf("tile %d/%d/%d disappeared", z, x, y)
				}
				m, alpha, err := decodeTile(data)
				if err != nil {
					return bufs, nil, 0, fmt.Errorf("tile %d/%d/%d: %w", z, x, y, err)
				}
				if ts == 0 {
					ts = m.Cols()
					bufs[0], bufs[1] = make([]byte, 3*nx*ts*ny*ts), make([]byte, 3*nx*ts*ny*ts)
					valid = make([]uint8, nx*ts*ny*ts)
				}
				if m.Cols() != ts || m.Rows() != ts {
					m.Close()
					return bufs, nil, 0, fmt.Errorf("tile %d/%d/%d is %dx%d, other tiles %dx%d", z, x, y, m.Cols(), m.Rows(), ts, ts)
				}
				px, _ := m.DataPtrUint8()
				W := nx * ts
				for r := 0; r < ts; r++ {
					o := ((ty*ts+r)*W + tx*ts)
					copy(bufs[d][3*o:3*(o+ts)], px[3*r*ts:3*(r+1)*ts])
					for c := 0; c < ts; c++ {
						ok := uint8(1)
						if alpha != nil && alpha[r*ts+c] == 0 {
							ok = 0
						}
						if d == 0 {
							valid[o+c] = ok
						} else {
							valid[o+c] &= ok
						}
					}
				}
				m.Close()
			}
		}
	}
	return bufs, valid, ts, nil
}

// tileSide reads the side of the pyramid's tiles from one of them.
func (p *pyramids) tileSide() (int, error) {
	p.tsOnce.Do(func() {
		for t := range p.have {
			_, _, p.ts, p.tsErr = p.mosaic(p.z, t[0], t[1], 1, 1)
			return
		}
		p.tsErr = errors.New("no tiles")
	})
	return p.ts, p.tsErr
}

// Region reads r (pixels at the zoom) from the tiles that cover it.
func (p *pyramids) Region(r image.Rectangle) (*Piece, error) {
	ts, err := p.tileSide()
	if err != nil {
		return nil, err
	}
	floor := func(v int) int {
		if v < 0 {
			return -((-v + ts - 1) / ts)
		}
		return v / ts
	}
	x0, y0 := max(floor(r.Min.X), 0), max(floor(r.Min.Y), 0)
	x1, y1 := min(floor(r.Max.X-1)+1, 1<<p.z), min(floor(r.Max.Y-1)+1, 1<<p.z)
	if x1 <= x0 || y1 <= y0 {
		return nil, fmt.Errorf("region %v is outside zoom %d", r, p.z)
	}
	nx, ny := x1-x0, y1-y0
	bufs, valid, got, err := p.mosaic(p.z, x0, y0, nx, ny)
	if err != nil {
		return nil, err
	}
	if got == 0 {
		return nil, fmt.Errorf("region %v: no tile in both dates", r)
	}
	W, H := nx*ts, ny*ts
	base := image.Pt(x0*ts, y0*ts)
	local := r.Sub(base).Intersect(image.Rect(0, 0, W, H))
	var imgs [2]*change.Image
	for d := range imgs {
		full, err := change.FromBGR(W, H, bufs[d])
		if err != nil {
			return nil, err
		}
		imgs[d] = full.Crop(local)
	}
	v := make([]uint8, local.Dx()*local.Dy())
	for y := 0; y < local.Dy(); y++ {
		copy(v[y*local.Dx():(y+1)*local.Dx()], valid[(local.Min.Y+y)*W+local.Min.X:])
	}
	for _, im := range imgs {
		fillInvalid(im, v)
	}
	g := georef.TileGrid(p.z, x0, y0, ts, local.Dx(), local.Dy())
	g.WF.C += float64(local.Min.X) * g.WF.A
	g.WF.F += float64(local.Min.Y) * g.WF.E
	return &Piece{Before: imgs[0], After: imgs[1], Grid: g, Core: image.Rect(0, 0, local.Dx(), local.Dy()), Valid: v,
		Origin: base.Add(local.Min)}, nil
}

// fillInvalid paints the pixels without data in the mean colour of those
// with data, so they add no edges and no change.
func fillInvalid(im *change.Image, valid []uint8) {
	var s [3]float64
	n := 0
	for i, v := range valid {
		if v != 0 {
			s[0], s[1], s[2] = s[0]+float64(im.R[i]), s[1]+float64(im.G[i]), s[2]+float64(im.B[i])
			n++
		}
	}
	if n == 0 || n == len(valid) {
		return
	}
	for i, v := range valid {
		if v == 0 {
			im.R[i], im.G[i], im.B[i] = float32(s[0]/float64(n)), float32(s[1]/float64(n)), float32(s[2]/float64(n))
		}
	}
}
