// Package registry owns the district's reference data — the departments that own city parts and the
// street offices (属地), the streets, the unit grid cells (万米单元网格) and the registered facilities
// (部件, such as manhole covers) — and answers the spatial questions the case workflow asks of it: which
// cell, and so which street office, a point falls in, and which registered facilities are near a point.
// A Registry is validated once by New, never changes afterwards and is safe for concurrent use; it loads
// from and writes to a directory of CSV and GeoJSON files, and Demo builds a Chaoyang-like district in code.
package registry

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Department kinds.
const (
	KindOwner  = "owner"  // a utility or agency that owns and repairs parts
	KindStreet = "street" // a street (or township) office, responsible for its area (属地)
)

// Department is an owner of parts or a street office.
type Department struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	NameZH string   `json:"name_zh"`
	Kind   string   `json:"kind"` // KindOwner or KindStreet
	Owns   []string `json:"owns"` // part type codes such as "0105"
}

// Street is a street (街道) or township (地区) of the district.
type Street struct {
	Code       string `json:"code"` // 9 digits: 6 county + 3 street
	Name       string `json:"name"`
	NameZH     string `json:"name_zh"`
	OfficeDept string `json:"office_dept"` // Department.ID of its street office
}

// Cell is a unit grid cell.
type Cell struct {
	Code      string `json:"code"`       // 15 digits: 6 county + 3 street + 3 community + 3 sequence
	Street    string `json:"street"`     // Street.Code, equal to Code[:9]
	Community string `json:"community"`  // 3 digits, equal to Code[9:12]
	AreaClass string `json:"area_class"` // management grade "A" (core), "B" or "C"
	// Polygon is the cell's outer ring of [lon, lat] points. New accepts it closed or not and stores it
	// open (without repeating the first point); GeoJSON output closes it.
	Polygon [][2]float64 `json:"polygon"`
}

// Facility is a registered part (部件), such as a manhole cover.
type Facility struct {
	ID        string  `json:"id"`        // 16 digits: 6 admin + 2 大类 + 2 小类 + 6 sequence
	TypeCode  string  `json:"type_code"` // 4 digits, equal to ID[6:10], e.g. "0105" power cover
	TypeName  string  `json:"type_name"`
	Lat       float64 `json:"lat"`
	Lon       float64 `json:"lon"`
	OwnerDept string  `json:"owner_dept"` // Department.ID
}

// Errors wrapped by a ValidationError.
var (
	ErrInvalid          = errors.New("invalid")
	ErrDuplicate        = errors.New("duplicate")
	ErrUnknownReference = errors.New("unknown reference")
)

// ValidationError is one problem New found in its input. New returns them joined with errors.Join;
// use errors.As to get the first.
type ValidationError struct {
	Kind  string // "department", "street", "cell" or "facility"
	Index int    // position in the slice given to New
	ID    string // the record's id or code, as given
	Field string // JSON name of the offending field
	Err   error  // wraps ErrInvalid, ErrDuplicate or ErrUnknownReference
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("%s %q (index %d): %s: %v", e.Kind, e.ID, e.Index, e.Field, e.Err)
}

func (e *ValidationError) Unwrap() error { return e.Err }

// maxReported bounds how many validation errors one error value carries: a broken export can have
// thousands, and the first screenful is what someone fixing it reads.
const maxReported = 20

// Registry holds validated reference data and its spatial indexes.
type Registry struct {
	depts    []Department
	streets  []Street
	cells    []Cell
	facs     []Facility
	deptIdx  map[string]int
	streetIx map[string]int
	cellIdx  map[string]int
	facIdx   map[string]int
	cellGrid cellIndex
	facGrid  facilityIndex

	hashOnce sync.Once // SHA256 is computed on first use
	hash     string
}

// New validates the data and builds the registry. It checks code formats (digits and lengths, and that
// a cell code agrees with its street and community, a facility id with its type code), that referenced
// departments and streets exist, that coordinates are finite and in range, that each polygon has at
// least 3 distinct points and a non-zero area, and that ids are unique. Every problem is a
// *ValidationError naming the record and the field.
//
// New copies its input. Slices inside values returned by the registry's methods (Department.Owns,
// Cell.Polygon) share the registry's storage and must not be modified.
func New(depts []Department, streets []Street, cells []Cell, facs []Facility) (*Registry, error) {
	r, errs := build(depts, streets, cells, facs)
	if len(errs) > 0 {
		out := make([]error, 0, min(len(errs), maxReported)+1)
		for _, e := range errs[:min(len(errs), maxReported)] {
			out = append(out, e)
		}
		if len(errs) > maxReported {
			out = append(out, fmt.Errorf("and %d more errors", len(errs)-maxReported))
		}
		return nil, errors.Join(out...)
	}
	return r, nil
}

// build is New without joining the errors, so that LoadDir can map each one to a file and line.
func build(depts []Department, streets []Street, cells []Cell, facs []Facility) (*Registry, []*ValidationError) {
	var v validator
	r := &Registry{
		depts:    make([]Department, len(depts)),
		streets:  make([]Street, len(streets)),
		cells:    make([]Cell, len(cells)),
		facs:     make([]Facility, len(facs)),
		deptIdx:  make(map[string]int, len(depts)),
		streetIx: make(map[string]int, len(streets)),
		cellIdx:  make(map[string]int, len(cells)),
		facIdx:   make(map[string]int, len(facs)),
	}

	for i, d := range depts {
		v.kind, v.index, v.id = "department", i, d.ID
		if d.ID == "" {
			v.fail("id", ErrInvalid, "empty")
		} else {
			v.text("id", d.ID)
		}
		v.names(d.Name, d.NameZH)
		if d.Kind != KindOwner && d.Kind != KindStreet {
			v.fail("kind", ErrInvalid, "%q, want %q or %q", d.Kind, KindOwner, KindStreet)
		}
		var owns []string
		for j, code := range d.Owns {
			if !isDigits(code, 4) {
				v.fail("owns", ErrInvalid, "%q, want 4 digits", code)
			} else if indexOf(d.Owns[:j], code) >= 0 {
				v.fail("owns", ErrDuplicate, "type code %q listed twice", code)
			}
			owns = append(owns, code)
		}
		d.Owns = owns
		v.unique(r.deptIdx, d.ID, "id")
		r.depts[i] = d
	}

	for i, s := range streets {
		v.kind, v.index, v.id = "street", i, s.Code
		if !isDigits(s.Code, 9) {
			v.fail("code", ErrInvalid, "%q, want 9 digits", s.Code)
		}
		v.names(s.Name, s.NameZH)
		if j, ok := r.deptIdx[s.OfficeDept]; !ok {
			v.fail("office_dept", ErrUnknownReference, "no department %q", s.OfficeDept)
		} else if k := r.depts[j].Kind; k != KindStreet {
			v.fail("office_dept", ErrInvalid, "department %q is of kind %q, want %q", s.OfficeDept, k, KindStreet)
		}
		v.unique(r.streetIx, s.Code, "code")
		r.streets[i] = s
	}

	for i, c := range cells {
		v.kind, v.index, v.id = "cell", i, c.Code
		codeOK := isDigits(c.Code, 15)
		if !codeOK {
			v.fail("code", ErrInvalid, "%q, want 15 digits", c.Code)
		}
		if _, ok := r.streetIx[c.Street]; !ok {
			v.fail("street", ErrUnknownReference, "no street %q", c.Street)
		} else if codeOK && c.Code[:9] != c.Street {
			v.fail("street", ErrInvalid, "%q, but the code says %q", c.Street, c.Code[:9])
		}
		if !isDigits(c.Community, 3) {
			v.fail("community", ErrInvalid, "%q, want 3 digits", c.Community)
		} else if codeOK && c.Code[9:12] != c.Community {
			v.fail("community", ErrInvalid, "%q, but the code says %q", c.Community, c.Code[9:12])
		}
		if c.AreaClass != "A" && c.AreaClass != "B" && c.AreaClass != "C" {
			v.fail("area_class", ErrInvalid, "%q, want A, B or C", c.AreaClass)
		}
		c.Polygon = openRing(c.Polygon)
		v.polygon(c.Polygon)
		v.unique(r.cellIdx, c.Code, "code")
		r.cells[i] = c
	}

	for i, f := range facs {
		v.kind, v.index, v.id = "facility", i, f.ID
		idOK := isDigits(f.ID, 16)
		if !idOK {
			v.fail("id", ErrInvalid, "%q, want 16 digits", f.ID)
		}
		if !isDigits(f.TypeCode, 4) {
			v.fail("type_code", ErrInvalid, "%q, want 4 digits", f.TypeCode)
		} else if idOK && f.ID[6:10] != f.TypeCode {
			v.fail("type_code", ErrInvalid, "%q, but the id says %q", f.TypeCode, f.ID[6:10])
		}
		v.text("type_name", f.TypeName)
		if !validLat(f.Lat) {
			v.fail("lat", ErrInvalid, "%v, want a latitude in [-90, 90]", f.Lat)
		}
		if !validLon(f.Lon) {
			v.fail("lon", ErrInvalid, "%v, want a longitude in [-180, 180]", f.Lon)
		}
		if _, ok := r.deptIdx[f.OwnerDept]; !ok {
			v.fail("owner_dept", ErrUnknownReference, "no department %q", f.OwnerDept)
		}
		v.unique(r.facIdx, f.ID, "id")
		r.facs[i] = f
	}

	if len(v.errs) > 0 {
		return nil, v.errs
	}
	r.cellGrid = newCellIndex(r.cells)
	r.facGrid = newFacilityIndex(r.facs)
	return r, nil
}

type validator struct {
	kind  string
	index int
	id    string
	errs  []*ValidationError
}

func (v *validator) fail(field string, kind error, format string, args ...any) {
	v.errs = append(v.errs, &ValidationError{
		Kind: v.kind, Index: v.index, ID: v.id, Field: field,
		Err: fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...)),
	})
}

// unique records the current record's key in seen, or reports it as a duplicate.
func (v *validator) unique(seen map[string]int, key, field string) {
	if first, dup := seen[key]; dup {
		v.fail(field, ErrDuplicate, "%q, first at index %d", key, first)
		return
	}
	seen[key] = v.index
}

// text rejects what would not survive CSV and JSON unchanged or would be invisible on a screen.
func (v *validator) text(field, s string) {
	if !utf8.ValidString(s) {
		v.fail(field, ErrInvalid, "not valid UTF-8")
		return
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		v.fail(field, ErrInvalid, "%q contains a control character", s)
	} else if strings.TrimSpace(s) != s {
		v.fail(field, ErrInvalid, "%q has leading or trailing space", s)
	}
}

func (v *validator) names(name, nameZH string) {
	if name == "" && nameZH == "" {
		v.fail("name", ErrInvalid, "name and name_zh are both empty")
	}
	v.text("name", name)
	v.text("name_zh", nameZH)
}

func (v *validator) polygon(ring [][2]float64) {
	for _, p := range ring {
		if !validLon(p[0]) || !validLat(p[1]) {
			v.fail("polygon", ErrInvalid, "point %v is not a [lon, lat] in range", p)
			return
		}
	}
	distinct := 0
	for i, p := range ring {
		if indexOf(ring[:i], p) < 0 {
			distinct++
		}
	}
	if distinct < 3 {
		v.fail("polygon", ErrInvalid, "%d distinct points, want at least 3", distinct)
		return
	}
	if ringArea(ring) == 0 {
		v.fail("polygon", ErrInvalid, "zero area")
	}
}

// openRing copies a ring, dropping a closing point equal to the first.
func openRing(ring [][2]float64) [][2]float64 {
	n := len(ring)
	if n > 1 && ring[0] == ring[n-1] {
		n--
	}
	if n == 0 {
		return nil
	}
	return append([][2]float64(nil), ring[:n]...)
}

// ringArea is the unsigned shoelace area in square degrees.
func ringArea(ring [][2]float64) float64 {
	var s float64
	for i, p := range ring {
		q := ring[(i+1)%len(ring)]
		s += p[0]*q[1] - q[0]*p[1]
	}
	return math.Abs(s) / 2
}

func indexOf[T comparable](s []T, x T) int {
	for i, y := range s {
		if y == x {
			return i
		}
	}
	return -1
}

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func validLat(x float64) bool { return x >= -90 && x <= 90 }   // false for NaN
func validLon(x float64) bool { return x >= -180 && x <= 180 } // false for NaN

// Facility returns the facility with the given 16-digit id.
func (r *Registry) Facility(id string) (Facility, bool) {
	i, ok := r.facIdx[id]
	if !ok {
		return Facility{}, false
	}
	return r.facs[i], true
}

// Department returns the department with the given id.
func (r *Registry) Department(id string) (Department, bool) {
	i, ok := r.deptIdx[id]
	if !ok {
		return Department{}, false
	}
	return r.depts[i], true
}

// Street returns the street with the given 9-digit code.
func (r *Registry) Street(code string) (Street, bool) {
	i, ok := r.streetIx[code]
	if !ok {
		return Street{}, false
	}
	return r.streets[i], true
}

// Cell returns the cell with the given 15-digit code.
func (r *Registry) Cell(code string) (Cell, bool) {
	i, ok := r.cellIdx[code]
	if !ok {
		return Cell{}, false
	}
	return r.cells[i], true
}

// CellAt returns the cell whose polygon contains the point. Cells are expected to tile without
// overlapping; where they do overlap, the one given first to New wins. A point exactly on an edge
// shared by two cells belongs to exactly one of them.
func (r *Registry) CellAt(lat, lon float64) (Cell, bool) {
	i := r.cellGrid.find(r.cells, lat, lon)
	if i < 0 {
		return Cell{}, false
	}
	return r.cells[i], true
}

// NearestFacilities returns up to n facilities within maxMeters of the point, nearest first (ties by
// id). Distances are great-circle (haversine) metres, as DistanceMeters computes them. maxMeters <= 0
// means no limit. Longitudes are not wrapped: the data must not straddle the antimeridian.
func (r *Registry) NearestFacilities(lat, lon float64, n int, maxMeters float64) []Facility {
	idx := r.facGrid.nearest(r.facs, lat, lon, n, maxMeters)
	if len(idx) == 0 {
		return nil
	}
	out := make([]Facility, len(idx))
	for i, j := range idx {
		out[i] = r.facs[j]
	}
	return out
}

// Counts returns how many records of each kind the registry holds.
func (r *Registry) Counts() (depts, streets, cells, facilities int) {
	return len(r.depts), len(r.streets), len(r.cells), len(r.facs)
}
