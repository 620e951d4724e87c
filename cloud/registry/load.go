package registry

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The files of a registry directory. The CSV files have a header row naming their columns (in any
// order; unknown columns are ignored); departments.csv lists a department's owned type codes in one
// field separated by ";". grid.geojson is a FeatureCollection of Polygon features whose properties
// are code, street, community and area_class.
const (
	DepartmentsFile = "departments.csv"
	StreetsFile     = "streets.csv"
	GridFile        = "grid.geojson"
	FacilitiesFile  = "facilities.csv"
)

var (
	departmentColumns = []string{"id", "name", "name_zh", "kind", "owns"}
	streetColumns     = []string{"code", "name", "name_zh", "office_dept"}
	facilityColumns   = []string{"id", "type_code", "type_name", "lat", "lon", "owner_dept"}
)

// LoadError is a problem in one record of a registry file.
type LoadError struct {
	File  string // path of the file
	Line  int    // 1-based line where the record starts
	Field string // column or JSON field, if known
	Err   error  // may be a *ValidationError
}

func (e *LoadError) Error() string {
	where := e.File
	if e.Line > 0 {
		where += ":" + strconv.Itoa(e.Line)
	}
	var ve *ValidationError
	if e.Field == "" || errors.As(e.Err, &ve) { // a ValidationError names its field itself
		return fmt.Sprintf("%s: %v", where, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", where, e.Field, e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

// LoadDir reads a registry from the four files in dir (see DepartmentsFile and the others) and
// validates it as New does. Every error is a *LoadError naming the file, line and field.
func LoadDir(dir string) (*Registry, error) {
	depts, deptLines, err := loadFile(dir, DepartmentsFile, parseDepartmentsCSV)
	if err != nil {
		return nil, err
	}
	streets, streetLines, err := loadFile(dir, StreetsFile, parseStreetsCSV)
	if err != nil {
		return nil, err
	}
	cells, cellLines, err := loadFile(dir, GridFile, parseGridGeoJSON)
	if err != nil {
		return nil, err
	}
	facs, facLines, err := loadFile(dir, FacilitiesFile, parseFacilitiesCSV)
	if err != nil {
		return nil, err
	}
	r, verrs := build(depts, streets, cells, facs)
	if len(verrs) == 0 {
		return r, nil
	}
	sources := map[string]struct {
		file  string
		lines []int
	}{
		"department": {DepartmentsFile, deptLines},
		"street":     {StreetsFile, streetLines},
		"cell":       {GridFile, cellLines},
		"facility":   {FacilitiesFile, facLines},
	}
	var errs []error
	for _, ve := range verrs[:min(len(verrs), maxReported)] {
		src := sources[ve.Kind]
		errs = append(errs, &LoadError{File: filepath.Join(dir, src.file), Line: src.lines[ve.Index], Field: ve.Field, Err: ve})
	}
	if len(verrs) > maxReported {
		errs = append(errs, fmt.Errorf("and %d more errors", len(verrs)-maxReported))
	}
	return nil, errors.Join(errs...)
}

func loadFile[T any](dir, name string, parse func(io.Reader, string) ([]T, []int, error)) ([]T, []int, error) {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load registry: %w", err)
	}
	defer f.Close()
	return parse(bufio.NewReaderSize(f, 1<<16), path)
}

// WriteDir writes the registry as the four files LoadDir reads, creating dir if needed. Each file is
// written to a temporary name first and renamed, so a reader never sees half a file.
func (r *Registry) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write registry: %w", err)
	}
	for _, f := range r.files() {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.write); err != nil {
			return fmt.Errorf("write registry: %w", err)
		}
	}
	return nil
}

func writeFileAtomic(path string, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<16)
	if err = write(bw); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// CSV

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// readCSV reads a CSV file with a header row that names at least the given columns, and calls fn with
// each record's line and its fields in the order of columns.
func readCSV(r io.Reader, file string, columns []string, fn func(line int, f []string) error) error {
	br := bufio.NewReader(r)
	if b, err := br.Peek(len(utf8BOM)); err == nil && bytes.Equal(b, utf8BOM) {
		br.Discard(len(utf8BOM)) // spreadsheet programs write one
	}
	cr := csv.NewReader(br)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return &LoadError{File: file, Line: 1, Err: errors.New("empty file, want a header row")}
	}
	if err != nil {
		return csvError(file, err, 0)
	}
	pos := make([]int, len(columns))
	for j := range pos {
		pos[j] = -1
	}
	for i, h := range header {
		j := indexOf(columns, strings.TrimSpace(h))
		if j < 0 {
			continue
		}
		if pos[j] >= 0 {
			return &LoadError{File: file, Line: 1, Field: columns[j], Err: errors.New("column appears twice in the header")}
		}
		pos[j] = i
	}
	for j, p := range pos {
		if p < 0 {
			return &LoadError{File: file, Line: 1, Field: columns[j], Err: fmt.Errorf("missing column (want %s)", strings.Join(columns, ","))}
		}
	}
	f := make([]string, len(columns))
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return csvError(file, err, len(header))
		}
		line, _ := cr.FieldPos(0)
		for j, p := range pos {
			f[j] = rec[p]
		}
		if err := fn(line, f); err != nil {
			return err
		}
	}
}

func csvError(file string, err error, want int) error {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return &LoadError{File: file, Err: err}
	}
	if errors.Is(pe.Err, csv.ErrFieldCount) {
		return &LoadError{File: file, Line: pe.StartLine, Err: fmt.Errorf("wrong number of fields, want %d as in the header", want)}
	}
	return &LoadError{File: file, Line: pe.Line, Err: fmt.Errorf("column %d: %w", pe.Column, pe.Err)}
}

func parseFloat(file string, line int, field, s string) (float64, error) {
	x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, &LoadError{File: file, Line: line, Field: field, Err: fmt.Errorf("%q is not a number", s)}
	}
	return x, nil
}

func parseDepartmentsCSV(r io.Reader, file string) (depts []Department, lines []int, err error) {
	err = readCSV(r, file, departmentColumns, func(line int, f []string) error {
		d := Department{ID: f[0], Name: f[1], NameZH: f[2], Kind: f[3]}
		if f[4] != "" {
			d.Owns = strings.Split(f[4], ";")
			for i := range d.Owns {
				d.Owns[i] = strings.TrimSpace(d.Owns[i])
			}
		}
		depts, lines = append(depts, d), append(lines, line)
		return nil
	})
	return depts, lines, err
}

func writeDepartmentsCSV(w io.Writer, depts []Department) error {
	cw := csv.NewWriter(w)
	cw.Write(departmentColumns)
	for _, d := range depts {
		cw.Write([]string{d.ID, d.Name, d.NameZH, d.Kind, strings.Join(d.Owns, ";")})
	}
	cw.Flush()
	return cw.Error()
}

func parseStreetsCSV(r io.Reader, file string) (streets []Street, lines []int, err error) {
	err = readCSV(r, file, streetColumns, func(line int, f []string) error {
		streets = append(streets, Street{Code: f[0], Name: f[1], NameZH: f[2], OfficeDept: f[3]})
		lines = append(lines, line)
		return nil
	})
	return streets, lines, err
}

func writeStreetsCSV(w io.Writer, streets []Street) error {
	cw := csv.NewWriter(w)
	cw.Write(streetColumns)
	for _, s := range streets {
		cw.Write([]string{s.Code, s.Name, s.NameZH, s.OfficeDept})
	}
	cw.Flush()
	return cw.Error()
}

func parseFacilitiesCSV(r io.Reader, file string) (facs []Facility, lines []int, err error) {
	err = readCSV(r, file, facilityColumns, func(line int, f []string) error {
		lat, err := parseFloat(file, line, "lat", f[3])
		if err != nil {
			return err
		}
		lon, err := parseFloat(file, line, "lon", f[4])
		if err != nil {
			return err
		}
		facs = append(facs, Facility{ID: f[0], TypeCode: f[1], TypeName: f[2], Lat: lat, Lon: lon, OwnerDept: f[5]})
		lines = append(lines, line)
		return nil
	})
	return facs, lines, err
}

func writeFacilitiesCSV(w io.Writer, facs []Facility) error {
	cw := csv.NewWriter(w)
	cw.Write(facilityColumns)
	for _, f := range facs {
		cw.Write([]string{f.ID, f.TypeCode, f.TypeName, formatFloat(f.Lat), formatFloat(f.Lon), f.OwnerDept})
	}
	cw.Flush()
	return cw.Error()
}

// formatFloat writes the shortest decimal that parses back to exactly x.
func formatFloat(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

// GeoJSON

type geoFeature struct {
	Type       string `json:"type"`
	Properties struct {
		Code      string `json:"code"`
		Street    string `json:"street"`
		Community string `json:"community"`
		AreaClass string `json:"area_class"`
	} `json:"properties"`
	Geometry *struct {
		Type        string        `json:"type"`
		Coordinates [][][]float64 `json:"coordinates"`
	} `json:"geometry"`
}

// lineCounter turns byte offsets into line numbers, counting newlines only once for offsets that grow.
type lineCounter struct {
	data []byte
	off  int
	line int
}

func (lc *lineCounter) at(off int) int {
	off = min(max(off, 0), len(lc.data))
	if off < lc.off {
		lc.off, lc.line = 0, 1
	}
	lc.line += bytes.Count(lc.data[lc.off:off], []byte{'\n'})
	lc.off = off
	return lc.line
}

// parseGridGeoJSON reads a FeatureCollection of cell polygons. It walks the features one at a time so
// that each error carries the line where its feature starts.
func parseGridGeoJSON(r io.Reader, file string) (cells []Cell, lines []int, err error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, &LoadError{File: file, Err: err}
	}
	lc := &lineCounter{data: data, line: 1}
	dec := json.NewDecoder(bytes.NewReader(data))
	fail := func(field string, err error) error {
		return &LoadError{File: file, Line: lc.at(int(dec.InputOffset())), Field: field, Err: err}
	}
	delim := func(want json.Delim, what string) error {
		tok, err := dec.Token()
		if err != nil {
			return fail("", fmt.Errorf("want %s: %w", what, err))
		}
		if d, ok := tok.(json.Delim); !ok || d != want {
			return fail("", fmt.Errorf("want %s, got %v", what, tok))
		}
		return nil
	}

	if err := delim('{', "a FeatureCollection object"); err != nil {
		return nil, nil, err
	}
	var sawType, sawFeatures bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fail("", err)
		}
		key, _ := tok.(string)
		switch key {
		case "type":
			var t string
			if err := dec.Decode(&t); err != nil || t != "FeatureCollection" {
				return nil, nil, fail("type", fmt.Errorf("want \"FeatureCollection\""))
			}
			sawType = true
		case "features":
			if sawFeatures {
				return nil, nil, fail("features", errors.New("appears twice"))
			}
			sawFeatures = true
			if err := delim('[', "an array of features"); err != nil {
				return nil, nil, err
			}
			for dec.More() {
				// InputOffset is just past the previous token; the feature starts after the comma and blanks.
				off := int(dec.InputOffset())
				for off < len(data) && (data[off] == ',' || data[off] == ' ' || data[off] == '\t' || data[off] == '\n' || data[off] == '\r') {
					off++
				}
				line := lc.at(off)
				c, field, err := decodeFeature(dec)
				if err != nil {
					return nil, nil, &LoadError{File: file, Line: line, Field: field, Err: fmt.Errorf("feature %d: %w", len(cells), err)}
				}
				cells, lines = append(cells, c), append(lines, line)
			}
			if err := delim(']', "the end of the features array"); err != nil {
				return nil, nil, err
			}
		default:
			var skip json.RawMessage // crs, bbox, name and such
			if err := dec.Decode(&skip); err != nil {
				return nil, nil, fail(key, err)
			}
		}
	}
	if err := delim('}', "the end of the FeatureCollection"); err != nil {
		return nil, nil, err
	}
	if !sawType {
		return nil, nil, fail("type", errors.New("missing, want \"FeatureCollection\""))
	}
	if !sawFeatures {
		return nil, nil, fail("features", errors.New("missing"))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fail("", errors.New("data after the FeatureCollection"))
	}
	return cells, lines, nil
}

// decodeFeature decodes one Polygon feature; on error it names the offending field.
func decodeFeature(dec *json.Decoder) (Cell, string, error) {
	var f geoFeature
	if err := dec.Decode(&f); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return Cell{}, te.Field, fmt.Errorf("want a %v, got a JSON %s", te.Type, te.Value)
		}
		return Cell{}, "", err
	}
	if f.Type != "Feature" {
		return Cell{}, "type", fmt.Errorf("%q, want \"Feature\"", f.Type)
	}
	if f.Geometry == nil {
		return Cell{}, "geometry", errors.New("missing")
	}
	if f.Geometry.Type != "Polygon" {
		return Cell{}, "geometry.type", fmt.Errorf("%q, want \"Polygon\"", f.Geometry.Type)
	}
	rings := f.Geometry.Coordinates
	if len(rings) != 1 {
		return Cell{}, "geometry.coordinates", fmt.Errorf("%d rings, want exactly one (cells have no holes)", len(rings))
	}
	poly := make([][2]float64, len(rings[0]))
	for i, p := range rings[0] {
		if len(p) < 2 {
			return Cell{}, "geometry.coordinates", fmt.Errorf("position %d has %d numbers, want [lon, lat]", i, len(p))
		}
		poly[i] = [2]float64{p[0], p[1]}
	}
	p := f.Properties
	return Cell{Code: p.Code, Street: p.Street, Community: p.Community, AreaClass: p.AreaClass, Polygon: poly}, "", nil
}

// writeGridGeoJSON writes one feature per line, so that a line number finds a cell and diffs stay small.
func writeGridGeoJSON(w io.Writer, cells []Cell) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(`{"type":"FeatureCollection","features":[`)
	var buf []byte
	for i, c := range cells {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n")
		buf = buf[:0]
		buf = append(buf, `{"type":"Feature","properties":{"code":`...)
		buf = appendJSONString(buf, c.Code)
		buf = append(buf, `,"street":`...)
		buf = appendJSONString(buf, c.Street)
		buf = append(buf, `,"community":`...)
		buf = appendJSONString(buf, c.Community)
		buf = append(buf, `,"area_class":`...)
		buf = appendJSONString(buf, c.AreaClass)
		buf = append(buf, `},"geometry":{"type":"Polygon","coordinates":[[`...)
		ring := c.Polygon
		if len(ring) > 0 && ring[0] != ring[len(ring)-1] {
			ring = append(ring[:len(ring):len(ring)], ring[0]) // GeoJSON rings are closed
		}
		for j, p := range ring {
			if j > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, '[')
			buf = strconv.AppendFloat(buf, p[0], 'g', -1, 64)
			buf = append(buf, ',')
			buf = strconv.AppendFloat(buf, p[1], 'g', -1, 64)
			buf = append(buf, ']')
		}
		buf = append(buf, "]]}}"...)
		bw.Write(buf)
	}
	bw.WriteString("\n]}\n")
	return bw.Flush()
}

func appendJSONString(buf []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(buf, b...)
}
