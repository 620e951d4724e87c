package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"maps"
	"slices"
	"time"
)

// Version identifies one import of a registry: what was loaded (a content
// hash), from where, when and by whom. Cases record the version they were
// filed under, so a later re-import that changes an owner can be told apart
// from the owner the case was dispatched to.
type Version struct {
	ID          string    `json:"id"`     // the first 12 hex digits of SHA256
	SHA256      string    `json:"sha256"` // of the four files as WriteDir writes them
	Source      string    `json:"source"` // the directory, or "built-in demo district"
	LoadedAt    time.Time `json:"loaded_at"`
	LoadedBy    string    `json:"loaded_by"`
	Departments int       `json:"departments"`
	Streets     int       `json:"streets"`
	Cells       int       `json:"grid_cells"`
	Facilities  int       `json:"facilities"`
}

// NewVersion describes an import of r from source by who at at.
func NewVersion(r *Registry, source, who string, at time.Time) Version {
	sum := r.SHA256()
	d, s, c, f := r.Counts()
	return Version{ID: r.VersionID(), SHA256: sum, Source: source, LoadedAt: at.UTC(), LoadedBy: who,
		Departments: d, Streets: s, Cells: c, Facilities: f}
}

// VersionID is the short id of the registry's content, the first 12 hex
// digits of SHA256, as Version.ID.
func (r *Registry) VersionID() string { return r.SHA256()[:12] }

// SHA256 is the hex SHA-256 of the registry's content in the canonical form
// WriteDir writes (file name, then file bytes, for each of the four files),
// so the same data has the same hash whether it came from files or from
// Demo, and any change to a record changes it.
func (r *Registry) SHA256() string {
	r.hashOnce.Do(func() {
		h := sha256.New()
		for _, f := range r.files() {
			io.WriteString(h, f.name+"\n")
			f.write(h)
		}
		r.hash = hex.EncodeToString(h.Sum(nil))
	})
	return r.hash
}

// files lists the registry's files and how to write each.
func (r *Registry) files() []registryFile {
	return []registryFile{
		{DepartmentsFile, func(w io.Writer) error { return writeDepartmentsCSV(w, r.depts) }},
		{StreetsFile, func(w io.Writer) error { return writeStreetsCSV(w, r.streets) }},
		{GridFile, func(w io.Writer) error { return writeGridGeoJSON(w, r.cells) }},
		{FacilitiesFile, func(w io.Writer) error { return writeFacilitiesCSV(w, r.facs) }},
	}
}

type registryFile struct {
	name  string
	write func(io.Writer) error
}

// Diff is what changed between two registries, ids sorted.
type Diff struct {
	DepartmentsAdded, DepartmentsRemoved, DepartmentsChanged []string
	StreetsAdded, StreetsRemoved, StreetsChanged             []string
	CellsAdded, CellsRemoved                                 []string
	// CellsChanged: street, community, area class or polygon differ.
	CellsChanged                       []string
	FacilitiesAdded, FacilitiesRemoved []string
	OwnerChanged                       []OwnerChange
	// FacilitiesMoved: location or type name differ (the owner did not).
	FacilitiesMoved []string
}

// OwnerChange is a facility whose owner department differs.
type OwnerChange struct {
	Facility, From, To string
}

// Empty reports whether nothing changed.
func (d Diff) Empty() bool {
	return len(d.DepartmentsAdded)+len(d.DepartmentsRemoved)+len(d.DepartmentsChanged)+
		len(d.StreetsAdded)+len(d.StreetsRemoved)+len(d.StreetsChanged)+
		len(d.CellsAdded)+len(d.CellsRemoved)+len(d.CellsChanged)+
		len(d.FacilitiesAdded)+len(d.FacilitiesRemoved)+len(d.OwnerChanged)+len(d.FacilitiesMoved) == 0
}

// Compare lists what changed from old to new.
func Compare(old, new *Registry) Diff {
	var d Diff
	d.DepartmentsAdded, d.DepartmentsRemoved, d.DepartmentsChanged = compareBy(old.depts, new.depts,
		func(x Department) string { return x.ID },
		func(a, b Department) bool {
			return a.Name == b.Name && a.NameZH == b.NameZH && a.Kind == b.Kind && slices.Equal(a.Owns, b.Owns)
		})
	d.StreetsAdded, d.StreetsRemoved, d.StreetsChanged = compareBy(old.streets, new.streets,
		func(x Street) string { return x.Code }, func(a, b Street) bool { return a == b })
	d.CellsAdded, d.CellsRemoved, d.CellsChanged = compareBy(old.cells, new.cells,
		func(x Cell) string { return x.Code },
		func(a, b Cell) bool {
			return a.Street == b.Street && a.Community == b.Community && a.AreaClass == b.AreaClass &&
				slices.Equal(a.Polygon, b.Polygon)
		})
	var changed []string
	d.FacilitiesAdded, d.FacilitiesRemoved, changed = compareBy(old.facs, new.facs,
		func(x Facility) string { return x.ID }, func(a, b Facility) bool { return a == b })
	for _, id := range changed {
		a, b := old.facs[old.facIdx[id]], new.facs[new.facIdx[id]]
		if a.OwnerDept != b.OwnerDept {
			d.OwnerChanged = append(d.OwnerChanged, OwnerChange{Facility: id, From: a.OwnerDept, To: b.OwnerDept})
		} else {
			d.FacilitiesMoved = append(d.FacilitiesMoved, id)
		}
	}
	return d
}

// compareBy returns the keys only in b, only in a, and in both but unequal.
func compareBy[T any](a, b []T, key func(T) string, equal func(T, T) bool) (added, removed, changed []string) {
	ia := make(map[string]T, len(a))
	for _, x := range a {
		ia[key(x)] = x
	}
	ib := make(map[string]T, len(b))
	for _, x := range b {
		ib[key(x)] = x
	}
	for _, k := range slices.Sorted(maps.Keys(ib)) {
		if x, ok := ia[k]; !ok {
			added = append(added, k)
		} else if !equal(x, ib[k]) {
			changed = append(changed, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(ia)) {
		if _, ok := ib[k]; !ok {
			removed = append(removed, k)
		}
	}
	return added, removed, changed
}
