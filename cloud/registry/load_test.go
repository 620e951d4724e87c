package registry

import (
	"bytes"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTripDemo(t *testing.T) {
	r := Demo()
	dir := t.TempDir()
	if err := r.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	got, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"departments", got.depts, r.depts},
		{"streets", got.streets, r.streets},
		{"cells", got.cells, r.cells},
		{"facilities", got.facs, r.facs},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s differ after WriteDir and LoadDir", c.name)
		}
	}

	// Writing what was loaded gives the same bytes, and no temporary files are left behind.
	dir2 := t.TempDir()
	if err := got.WriteDir(dir2); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{DepartmentsFile, StreetsFile, GridFile, FacilitiesFile} {
		a, _ := os.ReadFile(filepath.Join(dir, name))
		b, err := os.ReadFile(filepath.Join(dir2, name))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s: second write differs (%v)", name, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 4 {
		t.Errorf("WriteDir left %d files, want 4", len(entries))
	}
}

// copyDir copies the small valid fixture into a temporary directory.
func copySmall(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{DepartmentsFile, StreetsFile, GridFile, FacilitiesFile} {
		b, err := os.ReadFile(filepath.Join("testdata", "small", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadDirSmall(t *testing.T) {
	r, err := LoadDir(filepath.Join("testdata", "small"))
	if err != nil {
		t.Fatal(err)
	}
	if d, s, c, f := r.Counts(); d != 3 || s != 1 || c != 2 || f != 3 {
		t.Errorf("Counts() = %d, %d, %d, %d; want 3, 1, 2, 3", d, s, c, f)
	}
	if c, ok := r.CellAt(39.92195, 116.44352); !ok || c.Code != "110105003001001" || len(c.Polygon) != 4 {
		t.Errorf("CellAt(anchor) = %v, %v", c, ok)
	}
	if d, _ := r.Department("dept-water"); !reflect.DeepEqual(d.Owns, []string{"0101", "0102", "0103"}) {
		t.Errorf("dept-water owns %q", d.Owns)
	}
}

// TestLoadDirLenient checks what other tools produce: a byte-order mark, columns in another order,
// extra columns, CRLF line ends, and an indented GeoJSON with extra members and 3-D positions.
func TestLoadDirLenient(t *testing.T) {
	dir := copySmall(t)
	facs := "\xEF\xBB\xBFowner_dept,lat,lon,id,type_code,note,type_name\r\n" +
		"dept-power,39.92195,116.44352,1101050105000123,0105,checked 2011,power cover\r\n"
	grid := `{
  "type": "FeatureCollection",
  "name": "chaoyang grid",
  "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
  "features": [
    {"type": "Feature", "id": 7,
     "properties": {"code": "110105003001001", "street": "110105003", "community": "001", "area_class": "A", "area_m2": 56000},
     "geometry": {"type": "Polygon", "coordinates": [[[116.443, 39.92, 40], [116.446, 39.92, 40], [116.446, 39.923, 41], [116.443, 39.923, 41]]]}}
  ]
}`
	os.WriteFile(filepath.Join(dir, FacilitiesFile), []byte(facs), 0o644)
	os.WriteFile(filepath.Join(dir, GridFile), []byte(grid), 0o644)
	r, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := r.Facility("1101050105000123"); !ok || f.TypeName != "power cover" || f.Lat != 39.92195 {
		t.Errorf("Facility = %+v, %v", f, ok)
	}
	if c, ok := r.CellAt(39.9215, 116.4445); !ok || c.Code != "110105003001001" {
		t.Errorf("CellAt = %v, %v", c, ok)
	}
}

// TestLoadDirErrors puts one broken file from testdata/bad into a copy of testdata/small and checks
// that the error names the file, the line and the field.
func TestLoadDirErrors(t *testing.T) {
	tests := []struct {
		fixture string // in testdata/bad; "" removes the file
		as      string
		want    string // after the directory
		field   string
		is      error
	}{
		{"facilities-bad-lat.csv", FacilitiesFile, `facilities.csv:4: lat: "39.92l89" is not a number`, "lat", nil},
		{"facilities-unknown-owner.csv", FacilitiesFile,
			`facilities.csv:3: facility "1101050102000456" (index 1): owner_dept: unknown reference: no department "dept-sewer"`,
			"owner_dept", ErrUnknownReference},
		{"facilities-duplicate-id.csv", FacilitiesFile, `facilities.csv:3: facility "1101050105000123" (index 1): id: duplicate`,
			"id", ErrDuplicate},
		{"facilities-type-mismatch.csv", FacilitiesFile, `facilities.csv:5: facility "1101050102000456" (index 1): type_code`,
			"type_code", ErrInvalid},
		{"facilities-field-count.csv", FacilitiesFile, `facilities.csv:2: wrong number of fields, want 6`, "", nil},
		{"facilities-missing-column.csv", FacilitiesFile, `facilities.csv:1: owner_dept: missing column`, "owner_dept", nil},
		{"facilities-bare-quote.csv", FacilitiesFile, `facilities.csv:3: column`, "", nil},
		{"facilities-empty.csv", FacilitiesFile, `facilities.csv:1: empty file`, "", nil},
		{"departments-bad-kind.csv", DepartmentsFile, `departments.csv:3: department "dept-water" (index 1): kind: invalid: "utility"`,
			"kind", ErrInvalid},
		{"departments-bad-owns.csv", DepartmentsFile, `departments.csv:3: department "dept-water" (index 1): owns: invalid: "102"`,
			"owns", ErrInvalid},
		{"streets-unknown-office.csv", StreetsFile, `streets.csv:2: street "110105003" (index 0): office_dept: unknown reference`,
			"office_dept", ErrUnknownReference},
		{"grid-bad-area-class.geojson", GridFile, `grid.geojson:3: cell "110105003001002" (index 1): area_class: invalid: "D"`,
			"area_class", ErrInvalid},
		{"grid-two-points.geojson", GridFile, `grid.geojson:3: cell "110105003001002" (index 1): polygon: invalid: 2 distinct points`,
			"polygon", ErrInvalid},
		{"grid-multipolygon.geojson", GridFile, `grid.geojson:2: geometry.type: feature 0: "MultiPolygon"`, "geometry.type", nil},
		{"grid-code-number.geojson", GridFile, `grid.geojson:9: properties.code: feature 1: want a string, got a JSON number`,
			"properties.code", nil},
		{"grid-truncated.geojson", GridFile, `grid.geojson:3: feature 1:`, "", nil},
		{"grid-not-collection.geojson", GridFile, `grid.geojson:1: type: want "FeatureCollection"`, "type", nil},
		{"", StreetsFile, `streets.csv: no such file`, "", fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.fixture+tt.as, func(t *testing.T) {
			dir := copySmall(t)
			dst := filepath.Join(dir, tt.as)
			if tt.fixture == "" {
				os.Remove(dst)
			} else {
				b, err := os.ReadFile(filepath.Join("testdata", "bad", tt.fixture))
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(dst, b, 0o644)
			}
			r, err := LoadDir(dir)
			if err == nil {
				t.Fatalf("LoadDir accepted it: %v", r)
			}
			if want := filepath.Join(dir, tt.want); !strings.Contains(err.Error(), want) {
				t.Errorf("error\n  %v\ndoes not contain\n  %s", err, want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
			var le *LoadError
			if tt.fixture != "" {
				if !errors.As(err, &le) {
					t.Fatalf("error %v is not a *LoadError", err)
				}
				if le.Field != tt.field {
					t.Errorf("LoadError.Field = %q, want %q", le.Field, tt.field)
				}
			}
		})
	}
}

func TestWriteDirCreatesDir(t *testing.T) {
	r, err := New(smallData())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := r.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	got, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.cells, r.cells) || !reflect.DeepEqual(got.facs, r.facs) {
		t.Error("small registry does not round-trip")
	}
}

func sameFloat(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

func fuzzSeeds(f *testing.F, pattern string) {
	files, _ := filepath.Glob(pattern)
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzLoadFacilitiesCSV checks that the facilities parser never panics, that its errors carry a file
// and line, and that what it accepts writes back to the same records.
func FuzzLoadFacilitiesCSV(f *testing.F) {
	fuzzSeeds(f, "testdata/small/facilities.csv")
	fuzzSeeds(f, "testdata/bad/facilities-*.csv")
	f.Add([]byte("id,type_code,type_name,lat,lon,owner_dept\n1,2,\"a\"\"b\",NaN,-0,x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		facs, lines, err := parseFacilitiesCSV(bytes.NewReader(data), "facilities.csv")
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) || le.File != "facilities.csv" || le.Line < 1 {
				t.Fatalf("error %#v does not name the file and line", err)
			}
			return
		}
		if len(lines) != len(facs) {
			t.Fatalf("%d lines for %d facilities", len(lines), len(facs))
		}
		for i := 1; i < len(lines); i++ {
			if lines[i] <= lines[i-1] {
				t.Fatalf("lines not increasing: %v", lines)
			}
		}
		for _, fa := range facs {
			// encoding/csv reads "\r\n" inside a quoted field as "\n"; New rejects control
			// characters, so such text never reaches WriteDir.
			if strings.ContainsRune(fa.ID+fa.TypeCode+fa.TypeName+fa.OwnerDept, '\r') {
				return
			}
		}
		var buf bytes.Buffer
		if err := writeFacilitiesCSV(&buf, facs); err != nil {
			t.Fatal(err)
		}
		again, _, err := parseFacilitiesCSV(&buf, "again.csv")
		if err != nil {
			t.Fatalf("reading what was written: %v\n%s", err, buf.Bytes())
		}
		if len(again) != len(facs) {
			t.Fatalf("wrote %d facilities, read %d", len(facs), len(again))
		}
		for i, a := range facs {
			b := again[i]
			if a.ID != b.ID || a.TypeCode != b.TypeCode || a.TypeName != b.TypeName || a.OwnerDept != b.OwnerDept ||
				!sameFloat(a.Lat, b.Lat) || !sameFloat(a.Lon, b.Lon) {
				t.Fatalf("record %d: wrote %+v, read %+v", i, a, b)
			}
		}
	})
}

// FuzzLoadGridGeoJSON does the same for the grid parser.
func FuzzLoadGridGeoJSON(f *testing.F) {
	fuzzSeeds(f, "testdata/small/grid.geojson")
	fuzzSeeds(f, "testdata/bad/grid-*.geojson")
	f.Fuzz(func(t *testing.T, data []byte) {
		cells, lines, err := parseGridGeoJSON(bytes.NewReader(data), "grid.geojson")
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) || le.File != "grid.geojson" || le.Line < 1 {
				t.Fatalf("error %#v does not name the file and line", err)
			}
			return
		}
		if len(lines) != len(cells) {
			t.Fatalf("%d lines for %d cells", len(lines), len(cells))
		}
		for _, c := range cells {
			for _, p := range c.Polygon {
				if math.IsNaN(p[0]) || math.IsInf(p[0], 0) || math.IsNaN(p[1]) || math.IsInf(p[1], 0) {
					t.Fatalf("parsed a non-finite coordinate %v", p)
				}
			}
		}
		var buf bytes.Buffer
		if err := writeGridGeoJSON(&buf, cells); err != nil {
			t.Fatal(err)
		}
		again, againLines, err := parseGridGeoJSON(&buf, "again.geojson")
		if err != nil {
			t.Fatalf("reading what was written: %v\n%s", err, buf.Bytes())
		}
		if len(again) != len(cells) {
			t.Fatalf("wrote %d cells, read %d", len(cells), len(again))
		}
		for i, a := range cells {
			b := again[i]
			if againLines[i] != i+2 {
				t.Fatalf("feature %d written on line %d, want %d", i, againLines[i], i+2)
			}
			pa, pb := openRing(a.Polygon), openRing(b.Polygon)
			if a.Code != b.Code || a.Street != b.Street || a.Community != b.Community || a.AreaClass != b.AreaClass ||
				len(pa) != len(pb) {
				t.Fatalf("feature %d: wrote %+v, read %+v", i, a, b)
			}
			for j := range pa {
				if !sameFloat(pa[j][0], pb[j][0]) || !sameFloat(pa[j][1], pb[j][1]) {
					t.Fatalf("feature %d point %d: wrote %v, read %v", i, j, pa[j], pb[j])
				}
			}
		}
	})
}
