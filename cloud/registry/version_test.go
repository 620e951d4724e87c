package registry

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func edit(t *testing.T, dir, file, old, new string) {
	t.Helper()
	p := filepath.Join(dir, file)
	b, _ := os.ReadFile(p)
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", file, old)
	}
	os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644)
}

func load(t *testing.T, dir string) *Registry {
	t.Helper()
	r, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestVersionHashFollowsContentNotOrigin(t *testing.T) {
	demo := Demo()
	dir := t.TempDir()
	if err := demo.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	if got, want := load(t, dir).SHA256(), demo.SHA256(); got != want {
		t.Fatalf("the demo district exported and re-imported hashes %s, built in %s", got, want)
	}
	small := copySmall(t)
	before := load(t, small).SHA256()
	edit(t, small, FacilitiesFile, "39.92195,116.44352,dept-power", "39.92195,116.44352,dept-water")
	if after := load(t, small).SHA256(); after == before {
		t.Fatal("changing a facility's owner did not change the registry hash")
	}
	at := time.Date(2026, 5, 1, 9, 0, 0, 0, time.FixedZone("CST", 8*3600))
	v := NewVersion(demo, "built-in demo district", "ops", at)
	if v.ID != v.SHA256[:12] || len(v.SHA256) != 64 || v.LoadedBy != "ops" || !v.LoadedAt.Equal(at) ||
		v.Cells != 8423 || v.Facilities != 30003 {
		t.Fatalf("NewVersion = %+v", v)
	}
}

func TestCompare(t *testing.T) {
	base := copySmall(t)
	old := load(t, base)
	if d := Compare(old, old); !d.Empty() {
		t.Fatalf("a registry differs from itself: %+v", d)
	}
	next := copySmall(t)
	// An owner change, a move, a removed and an added facility, a cell whose area class changed.
	edit(t, next, FacilitiesFile, "1101050105000123,0105,电力井盖 power cover,39.92195,116.44352,dept-power",
		"1101050105000123,0105,电力井盖 power cover,39.92195,116.44352,dept-water")
	edit(t, next, FacilitiesFile, "1101050102000456,0102,污水井盖 sewage cover,39.92189,116.4434",
		"1101050102000456,0102,污水井盖 sewage cover,39.92190,116.4434")
	edit(t, next, FacilitiesFile, "1101050102000457,0102,污水井盖 sewage cover,39.9215,116.4475,dept-water\n",
		"1101050102000999,0102,污水井盖 sewage cover,39.9215,116.4475,dept-water\n")
	edit(t, next, GridFile, `"code":"110105003001002","street":"110105003","community":"001","area_class":"A"`,
		`"code":"110105003001002","street":"110105003","community":"001","area_class":"B"`)
	d := Compare(old, load(t, next))
	want := Diff{
		CellsChanged:      []string{"110105003001002"},
		FacilitiesAdded:   []string{"1101050102000999"},
		FacilitiesRemoved: []string{"1101050102000457"},
		OwnerChanged:      []OwnerChange{{"1101050105000123", "dept-power", "dept-water"}},
		FacilitiesMoved:   []string{"1101050102000456"},
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("Compare:\n got %+v\nwant %+v", d, want)
	}
}
