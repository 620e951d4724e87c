package georef

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// ErrGeoTIFF wraps every GeoTIFF georeferencing error.
var ErrGeoTIFF = errors.New("geotiff")

// TIFF tags and GeoKeys this reader understands.
const (
	tagImageWidth     = 256
	tagImageLength    = 257
	tagPixelScale     = 33550
	tagTiepoint       = 33922
	tagTransformation = 34264
	tagGeoKeys        = 34735

	keyModelType      = 1024 // 1 projected, 2 geographic
	keyRasterType     = 1025 // 1 PixelIsArea, 2 PixelIsPoint
	keyGeographicType = 2048
	keyProjectedCS    = 3072
)

// GeoTIFF is the georeferencing of a GeoTIFF file: its size and the world
// file equivalent of its model tags.
type GeoTIFF struct {
	W, H int
	WF   WorldFile
	CRS  CRS
}

// ReadGeoTIFF reads the georeferencing of the first image of a classic
// (not Big) TIFF: ModelPixelScale + ModelTiepoint (one tie point) or
// ModelTransformation, and the GeoKeys that name EPSG:4326 or EPSG:3857.
// The pixels are left to an image decoder (package imagery uses OpenCV's,
// which reads strips and tiles, uncompressed, deflate, LZW and PackBits).
func ReadGeoTIFF(path string) (GeoTIFF, error) {
	f, err := os.Open(path)
	if err != nil {
		return GeoTIFF{}, fmt.Errorf("%w: %v", ErrGeoTIFF, err)
	}
	defer f.Close()
	g, err := parseGeoTIFF(f)
	if err != nil {
		return g, fmt.Errorf("%s: %w", path, err)
	}
	return g, nil
}

type tiffEntry struct {
	typ   uint16
	count uint32
	raw   [4]byte // value or offset
}

func parseGeoTIFF(r io.ReaderAt) (GeoTIFF, error) {
	var g GeoTIFF
	var hdr [8]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return g, fmt.Errorf("%w: header: %v", ErrGeoTIFF, err)
	}
	var bo binary.ByteOrder
	switch string(hdr[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return g, fmt.Errorf("%w: not a TIFF file (byte order %q)", ErrGeoTIFF, hdr[:2])
	}
	switch bo.Uint16(hdr[2:]) {
	case 42:
	case 43:
		return g, fmt.Errorf("%w: BigTIFF is not supported (write a classic TIFF: gdal_translate -co BIGTIFF=NO)", ErrGeoTIFF)
	default:
		return g, fmt.Errorf("%w: not a TIFF file (magic %d)", ErrGeoTIFF, bo.Uint16(hdr[2:]))
	}
	off := int64(bo.Uint32(hdr[4:]))
	var nb [2]byte
	if _, err := r.ReadAt(nb[:], off); err != nil {
		return g, fmt.Errorf("%w: first IFD: %v", ErrGeoTIFF, err)
	}
	n := int(bo.Uint16(nb[:]))
	buf := make([]byte, 12*n)
	if _, err := r.ReadAt(buf, off+2); err != nil {
		return g, fmt.Errorf("%w: first IFD: %v", ErrGeoTIFF, err)
	}
	tags := map[uint16]tiffEntry{}
	for i := 0; i < n; i++ {
		e := buf[12*i:]
		var t tiffEntry
		t.typ, t.count = bo.Uint16(e[2:]), bo.Uint32(e[4:])
		copy(t.raw[:], e[8:12])
		tags[bo.Uint16(e)] = t
	}
	ints := func(tag uint16) ([]int, error) {
		t, ok := tags[tag]
		if !ok {
			return nil, nil
		}
		var size int
		switch t.typ {
		case 3: // SHORT
			size = 2
		case 4: // LONG
			size = 4
		default:
			return nil, fmt.Errorf("%w: tag %d has type %d, want SHORT or LONG", ErrGeoTIFF, tag, t.typ)
		}
		if t.count > 1<<16 {
			return nil, fmt.Errorf("%w: tag %d has %d values", ErrGeoTIFF, tag, t.count)
		}
		data := t.raw[:]
		if total := size * int(t.count); total > 4 {
			data = make([]byte, total)
			if _, err := r.ReadAt(data, int64(bo.Uint32(t.raw[:]))); err != nil {
				return nil, fmt.Errorf("%w: tag %d: %v", ErrGeoTIFF, tag, err)
			}
		}
		out := make([]int, t.count)
		for i := range out {
			if size == 2 {
				out[i] = int(bo.Uint16(data[2*i:]))
			} else {
				out[i] = int(bo.Uint32(data[4*i:]))
			}
		}
		return out, nil
	}
	doubles := func(tag uint16) ([]float64, error) {
		t, ok := tags[tag]
		if !ok {
			return nil, nil
		}
		if t.typ != 12 {
			return nil, fmt.Errorf("%w: tag %d has type %d, want DOUBLE", ErrGeoTIFF, tag, t.typ)
		}
		if t.count > 1<<12 {
			return nil, fmt.Errorf("%w: tag %d has %d values", ErrGeoTIFF, tag, t.count)
		}
		data := make([]byte, 8*t.count)
		if _, err := r.ReadAt(data, int64(bo.Uint32(t.raw[:]))); err != nil {
			return nil, fmt.Errorf("%w: tag %d: %v", ErrGeoTIFF, tag, err)
		}
		out := make([]float64, t.count)
		for i := range out {
			out[i] = math.Float64frombits(bo.Uint64(data[8*i:]))
		}
		return out, nil
	}
	wv, err := ints(tagImageWidth)
	if err != nil {
		return g, err
	}
	hv, err := ints(tagImageLength)
	if err != nil {
		return g, err
	}
	if len(wv) != 1 || len(hv) != 1 || wv[0] <= 0 || hv[0] <= 0 {
		return g, fmt.Errorf("%w: ImageWidth/ImageLength missing", ErrGeoTIFF)
	}
	g.W, g.H = wv[0], hv[0]
	keys, err := ints(tagGeoKeys)
	if err != nil {
		return g, err
	}
	if len(keys) < 4 {
		return g, fmt.Errorf("%w: no GeoKeyDirectory: the file is a plain TIFF (add a .tfw world file, or gdal_translate -of GTiff)", ErrGeoTIFF)
	}
	geo := map[int]int{}
	for i := 0; i+3 < len(keys) && i/4 <= keys[3]; i += 4 {
		if i == 0 {
			continue // header: version, revision, minor, number of keys
		}
		if keys[i+1] == 0 && keys[i+2] == 1 { // value stored in place
			geo[keys[i]] = keys[i+3]
		}
	}
	switch mt := geo[keyModelType]; mt {
	case 2:
		if c := geo[keyGeographicType]; c != 4326 {
			return g, fmt.Errorf("%w: geographic CRS EPSG:%d is not supported (want EPSG:4326 or EPSG:3857: gdalwarp -t_srs EPSG:3857)", ErrGeoTIFF, c)
		}
		g.CRS = LonLat
	case 1:
		if c := geo[keyProjectedCS]; c != 3857 && c != 900913 && c != 3785 {
			return g, fmt.Errorf("%w: projected CRS EPSG:%d is not supported (want EPSG:3857 or EPSG:4326: gdalwarp -t_srs EPSG:3857)", ErrGeoTIFF, c)
		}
		g.CRS = WebMercator
	default:
		return g, fmt.Errorf("%w: GTModelTypeGeoKey %d is neither projected (1) nor geographic (2)", ErrGeoTIFF, mt)
	}
	// Raster space: PixelIsArea puts (0, 0) at the top-left pixel's corner,
	// PixelIsPoint at its centre. World files name pixel centres.
	half := 0.5
	if geo[keyRasterType] == 2 {
		half = 0
	}
	scale, err := doubles(tagPixelScale)
	if err != nil {
		return g, err
	}
	tie, err := doubles(tagTiepoint)
	if err != nil {
		return g, err
	}
	mt, err := doubles(tagTransformation)
	if err != nil {
		return g, err
	}
	switch {
	case len(mt) == 16:
		a, b, d, e, f, h := mt[0], mt[1], mt[3], mt[4], mt[5], mt[7]
		g.WF = WorldFile{A: a, B: b, D: e, E: f, C: a*half + b*half + d, F: e*half + f*half + h}
	case len(scale) >= 2 && len(tie) >= 6:
		if len(tie) > 6 {
			return g, fmt.Errorf("%w: %d tie points: only one tie point with a pixel scale is supported (gdalwarp to a regular grid)", ErrGeoTIFF, len(tie)/6)
		}
		sx, sy := scale[0], scale[1]
		i, j, x, y := tie[0], tie[1], tie[3], tie[4]
		g.WF = WorldFile{A: sx, E: -sy, C: x + (half-i)*sx, F: y - (half-j)*sy}
	default:
		return g, fmt.Errorf("%w: neither ModelTransformation nor ModelPixelScale + ModelTiepoint", ErrGeoTIFF)
	}
	if det := g.WF.A*g.WF.E - g.WF.B*g.WF.D; det == 0 || math.IsNaN(det) || math.IsInf(det, 0) {
		return g, fmt.Errorf("%w: pixel size is zero or not finite", ErrGeoTIFF)
	}
	return g, nil
}

// WriteGeoTIFF writes an uncompressed 8-bit RGB (3 bytes per pixel, rows top
// down) or grey (1 byte per pixel) GeoTIFF in one strip with the
// georeferencing of g (pixel scale and one tie point when g.WF has no
// rotation, else a ModelTransformation). It is the counterpart of
// ReadGeoTIFF for tests and for writing change maps.
func WriteGeoTIFF(w io.Writer, pix []byte, g GeoTIFF) error {
	n := g.W * g.H
	spp := 0
	switch len(pix) {
	case 3 * n:
		spp = 3
	case n:
		spp = 1
	default:
		return fmt.Errorf("%w: %d bytes of pixels for %dx%d", ErrGeoTIFF, len(pix), g.W, g.H)
	}
	bo := binary.LittleEndian
	type ent struct {
		tag, typ uint16
		count    uint32
		val      []byte // stored inline if ≤ 4 bytes
	}
	short := func(v ...uint16) []byte {
		b := make([]byte, 2*len(v))
		for i, x := range v {
			bo.PutUint16(b[2*i:], x)
		}
		return b
	}
	long := func(v uint32) []byte { b := make([]byte, 4); bo.PutUint32(b, v); return b }
	dbl := func(v ...float64) []byte {
		b := make([]byte, 8*len(v))
		for i, x := range v {
			bo.PutUint64(b[8*i:], math.Float64bits(x))
		}
		return b
	}
	photometric, bits := uint16(1), short(8)
	if spp == 3 {
		photometric, bits = 2, short(8, 8, 8)
	}
	var keys []uint16
	switch g.CRS {
	case LonLat:
		keys = []uint16{1, 1, 0, 3, keyModelType, 0, 1, 2, keyRasterType, 0, 1, 1, keyGeographicType, 0, 1, 4326}
	case WebMercator:
		keys = []uint16{1, 1, 0, 3, keyModelType, 0, 1, 1, keyRasterType, 0, 1, 1, keyProjectedCS, 0, 1, 3857}
	default:
		return fmt.Errorf("%w: CRS %q cannot be written", ErrGeoTIFF, g.CRS)
	}
	wf := g.WF
	ents := []ent{
		{tagImageWidth, 4, 1, long(uint32(g.W))},
		{tagImageLength, 4, 1, long(uint32(g.H))},
		{258, 3, uint32(spp), bits},
		{259, 3, 1, short(1)},
		{262, 3, 1, short(photometric)},
		{273, 4, 1, nil}, // StripOffsets, filled below
		{277, 3, 1, short(uint16(spp))},
		{278, 4, 1, long(uint32(g.H))},
		{279, 4, 1, long(uint32(len(pix)))},
		{284, 3, 1, short(1)},
	}
	if wf.B == 0 && wf.D == 0 {
		// PixelIsArea: raster (0, 0) is the corner half a pixel before the first centre.
		ents = append(ents,
			ent{tagPixelScale, 12, 3, dbl(wf.A, -wf.E, 0)},
			ent{tagTiepoint, 12, 6, dbl(0, 0, 0, wf.C-0.5*wf.A, wf.F-0.5*wf.E, 0)})
	} else {
		d, h := wf.C-0.5*wf.A-0.5*wf.B, wf.F-0.5*wf.D-0.5*wf.E
		ents = append(ents, ent{tagTransformation, 12, 16, dbl(wf.A, wf.B, 0, d, wf.D, wf.E, 0, h, 0, 0, 0, 0, 0, 0, 0, 1)})
	}
	ents = append(ents, ent{tagGeoKeys, 3, uint32(len(keys)), short(keys...)})
	ifdOff := 8
	dataOff := ifdOff + 2 + 12*len(ents) + 4
	var extra []byte
	for i := range ents {
		if len(ents[i].val) > 4 {
			extra = append(extra, ents[i].val...)
		}
	}
	pixOff := dataOff + len(extra)
	out := []byte{'I', 'I', 42, 0}
	out = append(out, long(uint32(ifdOff))...)
	out = append(out, short(uint16(len(ents)))...)
	next := dataOff
	for _, e := range ents {
		out = append(out, short(e.tag, e.typ)...)
		out = append(out, long(e.count)...)
		switch {
		case e.tag == 273:
			out = append(out, long(uint32(pixOff))...)
		case len(e.val) > 4:
			out = append(out, long(uint32(next))...)
			next += len(e.val)
		default:
			v := make([]byte, 4)
			copy(v, e.val)
			out = append(out, v...)
		}
	}
	out = append(out, 0, 0, 0, 0)
	out = append(out, extra...)
	if _, err := w.Write(out); err != nil {
		return err
	}
	_, err := w.Write(pix)
	return err
}
