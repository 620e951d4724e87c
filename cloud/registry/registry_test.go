package registry

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// smallData is a valid two-cell district; each test case breaks one thing in a fresh copy.
func smallData() ([]Department, []Street, []Cell, []Facility) {
	depts := []Department{
		{ID: "dept-power", Name: "Chaoyang Power Supply Co.", Kind: KindOwner, Owns: []string{"0105"}},
		{ID: "dept-water", NameZH: "北京排水集团", Kind: KindOwner, Owns: []string{"0101", "0102"}},
		{ID: "street-110105003", Name: "Sanlitun Subdistrict Office", Kind: KindStreet},
	}
	streets := []Street{{Code: "110105003", Name: "Sanlitun", NameZH: "三里屯街道", OfficeDept: "street-110105003"}}
	cells := []Cell{
		{Code: "110105003001001", Street: "110105003", Community: "001", AreaClass: "A",
			Polygon: [][2]float64{{116.443, 39.920}, {116.446, 39.920}, {116.446, 39.923}, {116.443, 39.923}}},
		{Code: "110105003001002", Street: "110105003", Community: "001", AreaClass: "B",
			Polygon: [][2]float64{{116.446, 39.920}, {116.449, 39.920}, {116.449, 39.923}, {116.446, 39.923}, {116.446, 39.920}}},
	}
	facs := []Facility{
		{ID: "1101050105000123", TypeCode: "0105", TypeName: "power cover", Lat: 39.92195, Lon: 116.44352, OwnerDept: "dept-power"},
		{ID: "1101050102000456", TypeCode: "0102", TypeName: "sewage cover", Lat: 39.92189, Lon: 116.44340, OwnerDept: "dept-water"},
		{ID: "1101050102000457", TypeCode: "0102", TypeName: "sewage cover", Lat: 39.92150, Lon: 116.44750, OwnerDept: "dept-water"},
	}
	return depts, streets, cells, facs
}

func TestNewRejects(t *testing.T) {
	type data struct {
		depts   []Department
		streets []Street
		cells   []Cell
		facs    []Facility
	}
	tests := []struct {
		name   string
		mutate func(d *data)
		is     error
		want   []string // substrings of the error
	}{
		{"department empty id", func(d *data) { d.depts[0].ID = "" }, ErrInvalid,
			[]string{`department "" (index 0): id`}},
		{"department kind", func(d *data) { d.depts[1].Kind = "utility" }, ErrInvalid,
			[]string{`department "dept-water" (index 1): kind`, `"utility"`}},
		{"department owns", func(d *data) { d.depts[1].Owns = []string{"0101", "102"} }, ErrInvalid,
			[]string{`department "dept-water"`, "owns", `"102"`}},
		{"department owns twice", func(d *data) { d.depts[1].Owns = []string{"0101", "0101"} }, ErrDuplicate,
			[]string{`department "dept-water"`, "owns"}},
		{"department no name", func(d *data) { d.depts[0].Name = "" }, ErrInvalid,
			[]string{`department "dept-power"`, "name"}},
		{"department control character", func(d *data) { d.depts[0].Name = "Power\nCo." }, ErrInvalid,
			[]string{`department "dept-power"`, "name", "control character"}},
		{"department invalid utf-8", func(d *data) { d.depts[1].NameZH = "\xff" }, ErrInvalid,
			[]string{`department "dept-water"`, "name_zh", "UTF-8"}},
		{"department duplicate", func(d *data) { d.depts[1].ID = "dept-power" }, ErrDuplicate,
			[]string{`department "dept-power" (index 1): id`, "first at index 0"}},
		{"street code", func(d *data) { d.streets[0].Code = "11010503" }, ErrInvalid,
			[]string{`street "11010503"`, "code", "9 digits"}},
		{"street unknown office", func(d *data) { d.streets[0].OfficeDept = "street-x" }, ErrUnknownReference,
			[]string{`street "110105003"`, "office_dept", `"street-x"`}},
		{"street office is an owner", func(d *data) { d.streets[0].OfficeDept = "dept-power" }, ErrInvalid,
			[]string{`street "110105003"`, "office_dept", `"owner"`}},
		{"street duplicate", func(d *data) { d.streets = append(d.streets, d.streets[0]) }, ErrDuplicate,
			[]string{`street "110105003" (index 1): code`}},
		{"cell code", func(d *data) { d.cells[1].Code = "11010500300100A" }, ErrInvalid,
			[]string{`cell "11010500300100A"`, "code", "15 digits"}},
		{"cell unknown street", func(d *data) { d.cells[1].Street = "110105004" }, ErrUnknownReference,
			[]string{`cell "110105003001002"`, "street", `"110105004"`}},
		{"cell street disagrees with code", func(d *data) { d.cells[1].Code = "110105004001002" }, ErrInvalid,
			[]string{`cell "110105004001002"`, "street", `the code says "110105004"`}},
		{"cell community", func(d *data) { d.cells[0].Community = "1" }, ErrInvalid,
			[]string{`cell "110105003001001"`, "community", "3 digits"}},
		{"cell community disagrees with code", func(d *data) { d.cells[0].Community = "002" }, ErrInvalid,
			[]string{`cell "110105003001001"`, "community", `the code says "001"`}},
		{"cell area class", func(d *data) { d.cells[0].AreaClass = "D" }, ErrInvalid,
			[]string{`cell "110105003001001"`, "area_class", `"D"`}},
		{"cell two points", func(d *data) { d.cells[0].Polygon = d.cells[0].Polygon[:2] }, ErrInvalid,
			[]string{`cell "110105003001001"`, "polygon", "2 distinct points"}},
		{"cell closed triangle of two points", func(d *data) {
			p := d.cells[0].Polygon
			d.cells[0].Polygon = [][2]float64{p[0], p[1], p[0]}
		}, ErrInvalid, []string{`cell "110105003001001"`, "polygon", "2 distinct points"}},
		{"cell zero area", func(d *data) {
			d.cells[0].Polygon = [][2]float64{{116.443, 39.92}, {116.444, 39.92}, {116.445, 39.92}}
		}, ErrInvalid, []string{`cell "110105003001001"`, "polygon", "zero area"}},
		{"cell point out of range", func(d *data) { d.cells[0].Polygon[2] = [2]float64{39.923, 116.446} }, ErrInvalid,
			[]string{`cell "110105003001001"`, "polygon", "in range"}},
		{"cell NaN point", func(d *data) { d.cells[0].Polygon[2][0] = math.NaN() }, ErrInvalid,
			[]string{`cell "110105003001001"`, "polygon"}},
		{"cell duplicate", func(d *data) { d.cells[1].Code = d.cells[0].Code }, ErrDuplicate,
			[]string{`cell "110105003001001" (index 1): code`}},
		{"facility id", func(d *data) { d.facs[0].ID = "110105010500012" }, ErrInvalid,
			[]string{`facility "110105010500012"`, "id", "16 digits"}},
		{"facility type code", func(d *data) { d.facs[0].TypeCode = "105" }, ErrInvalid,
			[]string{`facility "1101050105000123"`, "type_code", "4 digits"}},
		{"facility type disagrees with id", func(d *data) { d.facs[0].TypeCode = "0102" }, ErrInvalid,
			[]string{`facility "1101050105000123"`, "type_code", `the id says "0105"`}},
		{"facility lat NaN", func(d *data) { d.facs[1].Lat = math.NaN() }, ErrInvalid,
			[]string{`facility "1101050102000456"`, "lat"}},
		{"facility lon out of range", func(d *data) { d.facs[1].Lon = 216.4 }, ErrInvalid,
			[]string{`facility "1101050102000456"`, "lon", "216.4"}},
		{"facility unknown owner", func(d *data) { d.facs[2].OwnerDept = "dept-sewer" }, ErrUnknownReference,
			[]string{`facility "1101050102000457" (index 2): owner_dept`, `"dept-sewer"`}},
		{"facility duplicate", func(d *data) { d.facs[2].ID = d.facs[1].ID }, ErrDuplicate,
			[]string{`facility "1101050102000456" (index 2): id`, "first at index 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d data
			d.depts, d.streets, d.cells, d.facs = smallData()
			tt.mutate(&d)
			r, err := New(d.depts, d.streets, d.cells, d.facs)
			if err == nil {
				t.Fatalf("New accepted it: %v", r)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %v", err, tt.is)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Errorf("error %q is not a *ValidationError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestNewCapsErrors(t *testing.T) {
	depts, streets, cells, facs := smallData()
	for i := range 50 {
		facs = append(facs, Facility{ID: "x", TypeCode: "0105", Lat: float64(i), OwnerDept: "dept-power"})
	}
	_, err := New(depts, streets, cells, facs)
	if err == nil {
		t.Fatal("New accepted 50 bad facilities")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxReported+1 || !strings.Contains(lines[maxReported], "more errors") {
		t.Errorf("got %d lines ending %q, want %d errors and a count of the rest", len(lines), lines[len(lines)-1], maxReported)
	}
}

func TestNewCopiesAndNormalizes(t *testing.T) {
	depts, streets, cells, facs := smallData()
	depts[2].Owns = []string{}
	r, err := New(depts, streets, cells, facs)
	if err != nil {
		t.Fatal(err)
	}
	depts[0].Owns[0] = "0999"
	cells[0].Polygon[0][0] = 0
	facs[0].OwnerDept = "dept-water"

	if d, _ := r.Department("dept-power"); d.Owns[0] != "0105" {
		t.Errorf("registry shares Owns with the caller: %v", d.Owns)
	}
	if d, _ := r.Department("street-110105003"); d.Owns != nil {
		t.Errorf("empty Owns stored as %#v, want nil", d.Owns)
	}
	if c, _ := r.Cell("110105003001001"); c.Polygon[0][0] != 116.443 {
		t.Errorf("registry shares Polygon with the caller: %v", c.Polygon)
	}
	if c, _ := r.Cell("110105003001002"); len(c.Polygon) != 4 {
		t.Errorf("closed ring stored with %d points, want 4 (open)", len(c.Polygon))
	}
	if f, _ := r.Facility("1101050105000123"); f.OwnerDept != "dept-power" {
		t.Errorf("registry shares facilities with the caller: %v", f)
	}
}

func TestLookups(t *testing.T) {
	r, err := New(smallData())
	if err != nil {
		t.Fatal(err)
	}
	if d, s, c, f := r.Counts(); d != 3 || s != 1 || c != 2 || f != 3 {
		t.Errorf("Counts() = %d, %d, %d, %d; want 3, 1, 2, 3", d, s, c, f)
	}
	if f, ok := r.Facility("1101050102000457"); !ok || f.Lon != 116.4475 {
		t.Errorf("Facility = %v, %v", f, ok)
	}
	if _, ok := r.Facility("1101050102000458"); ok {
		t.Error("Facility found an unknown id")
	}
	if d, ok := r.Department("dept-water"); !ok || !slices.Equal(d.Owns, []string{"0101", "0102"}) {
		t.Errorf("Department = %v, %v", d, ok)
	}
	if _, ok := r.Department("dept-gas"); ok {
		t.Error("Department found an unknown id")
	}
	if s, ok := r.Street("110105003"); !ok || s.OfficeDept != "street-110105003" {
		t.Errorf("Street = %v, %v", s, ok)
	}
	if _, ok := r.Street("110105004"); ok {
		t.Error("Street found an unknown code")
	}
	if c, ok := r.Cell("110105003001002"); !ok || c.AreaClass != "B" {
		t.Errorf("Cell = %v, %v", c, ok)
	}

	empty, err := New(nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := empty.CellAt(39.92, 116.44); ok {
		t.Error("empty registry found a cell")
	}
	if got := empty.NearestFacilities(39.92, 116.44, 5, 0); got != nil {
		t.Errorf("empty registry found facilities %v", got)
	}
}
