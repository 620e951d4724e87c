package registry

import (
	"reflect"
	"slices"
	"testing"
)

func TestDemoCounts(t *testing.T) {
	depts, streets, cells, facs := Demo().Counts()
	if streets != 43 {
		t.Errorf("%d streets, want 43", streets)
	}
	if cells < 8300 || cells > 8500 {
		t.Errorf("%d cells, want about 8,400", cells)
	}
	if facs < 30000 {
		t.Errorf("%d facilities, want at least 30,000", facs)
	}
	if depts < 43+6 {
		t.Errorf("%d departments, want 43 street offices and at least 6 owners", depts)
	}
}

func TestDemoAnchors(t *testing.T) {
	r := Demo()
	tests := []struct {
		id, owner, typeCode string
		lat, lon            float64
	}{
		{"1101050105000123", "dept-power", "0105", 39.92195, 116.44352},
		{"1101050102000456", "dept-water", "0102", 39.92189, 116.44340},
		{"1101050107000789", "dept-telecom", "0107", 39.92201, 116.44371},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			f, ok := r.Facility(tt.id)
			if !ok {
				t.Fatal("anchor not registered")
			}
			if !slices.Contains(DemoAnchors(), f) {
				t.Errorf("DemoAnchors() = %v does not list %v", DemoAnchors(), f)
			}
			if f.OwnerDept != tt.owner || f.TypeCode != tt.typeCode || f.Lat != tt.lat || f.Lon != tt.lon {
				t.Errorf("anchor = %+v", f)
			}
			owner, ok := r.Department(f.OwnerDept)
			if !ok || owner.Kind != KindOwner || !slices.Contains(owner.Owns, f.TypeCode) {
				t.Errorf("owner = %+v, %v", owner, ok)
			}
			c, ok := r.CellAt(f.Lat, f.Lon)
			if !ok || c.Street != "110105003" {
				t.Fatalf("CellAt(anchor) = %+v, %v; want a cell of street 110105003", c, ok)
			}
			s, ok := r.Street(c.Street)
			if !ok || s.OfficeDept != "street-110105003" || s.NameZH != "三里屯街道" {
				t.Errorf("street = %+v, %v", s, ok)
			}
			office, ok := r.Department(s.OfficeDept)
			if !ok || office.Kind != KindStreet {
				t.Errorf("office = %+v, %v", office, ok)
			}
			// The camera looks for its covers near where it was told they are.
			near := r.NearestFacilities(tt.lat, tt.lon, 1, 1)
			if len(near) != 1 || near[0].ID != tt.id {
				t.Errorf("NearestFacilities(anchor, 1, 1 m) = %v", near)
			}
		})
	}
}

// TestDemoConsistent checks what New does not: every street has cells, every cover lies in a cell,
// its owner owns its type, and the generated ids never take an anchor's.
func TestDemoConsistent(t *testing.T) {
	r := Demo()
	perStreet := map[string]int{}
	perClass := map[string]int{}
	for _, c := range r.cells {
		perStreet[c.Street]++
		perClass[c.AreaClass]++
	}
	for _, s := range r.streets {
		if perStreet[s.Code] < 20 {
			t.Errorf("street %s %s has %d cells", s.Code, s.NameZH, perStreet[s.Code])
		}
	}
	for _, class := range []string{"A", "B", "C"} {
		if perClass[class] < 500 {
			t.Errorf("%d cells of class %s", perClass[class], class)
		}
	}
	anchors := 0
	for _, f := range r.facs {
		if slices.ContainsFunc(DemoAnchors(), func(a Facility) bool { return a.ID == f.ID }) {
			anchors++
		}
		if _, ok := r.CellAt(f.Lat, f.Lon); !ok {
			t.Errorf("facility %s at %v, %v is in no cell", f.ID, f.Lat, f.Lon)
		}
		if d, _ := r.Department(f.OwnerDept); !slices.Contains(d.Owns, f.TypeCode) {
			t.Errorf("facility %s of type %s belongs to %s, which owns %v", f.ID, f.TypeCode, d.ID, d.Owns)
		}
	}
	if anchors != 3 {
		t.Errorf("%d anchors, want 3", anchors)
	}
	for _, id := range []string{"dept-power", "dept-water", "dept-telecom", "dept-heat", "dept-gas", "dept-lighting"} {
		if d, ok := r.Department(id); !ok || d.Kind != KindOwner || len(d.Owns) == 0 {
			t.Errorf("Department(%q) = %+v, %v", id, d, ok)
		}
	}
}

func TestDemoDeterministic(t *testing.T) {
	d1, s1, c1, f1 := generateDemo()
	d2, s2, c2, f2 := generateDemo()
	if !reflect.DeepEqual(d1, d2) || !reflect.DeepEqual(s1, s2) || !reflect.DeepEqual(c1, c2) || !reflect.DeepEqual(f1, f2) {
		t.Error("two generations differ")
	}
	if Demo() != Demo() {
		t.Error("Demo is not cached")
	}
}

// BenchmarkDemo measures building the demo district from scratch, as the first Demo call does.
func BenchmarkDemo(b *testing.B) {
	for b.Loop() {
		if _, err := New(generateDemo()); err != nil {
			b.Fatal(err)
		}
	}
}
