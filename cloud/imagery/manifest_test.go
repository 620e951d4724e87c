package imagery

import (
	"path/filepath"
	"testing"
)

// Record keeps a retrained model's measured metrics only when the file did
// not change, and makes it the default when asked or when there is none.
func TestRecord(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	steps := []struct {
		path        string
		sha         string
		makeDefault bool
		wantDefault string
		wantMetrics bool // a.json's metrics after the step
	}{
		{a, "1111", false, "a.json", false}, // first model: the default
		{b, "2222", false, "a.json", false},
		{a, "1111", false, "a.json", true}, // same file again: its metrics stay
		{a, "3333", true, "a.json", false}, // a new file: its old metrics go
		{b, "2222", true, "b.json", false},
	}
	for i, s := range steps {
		if i == 2 { // as eval --record would have done
			man, err := ReadManifest(dir)
			if err != nil {
				t.Fatal(err)
			}
			man.Entry("a.json").Metrics = map[string]Metrics{"dsifn": {F1: 0.5}}
			if err := man.Write(dir); err != nil {
				t.Fatal(err)
			}
		}
		if err := Record(s.path, ManifestEntry{Name: filepath.Base(s.path), SHA256: s.sha}, s.makeDefault); err != nil {
			t.Fatal(err)
		}
		man, err := ReadManifest(dir)
		if err != nil {
			t.Fatal(err)
		}
		if man.Default != s.wantDefault {
			t.Errorf("step %d: default %q, want %q", i, man.Default, s.wantDefault)
		}
		e := man.Entry("a.json")
		if e == nil || (len(e.Metrics) > 0) != s.wantMetrics {
			t.Errorf("step %d: a.json entry %+v, want metrics kept: %v", i, e, s.wantMetrics)
		}
		if e := man.Entry(filepath.Base(s.path)); e == nil || e.SHA256 != s.sha {
			t.Errorf("step %d: entry of %s is %+v, want sha256 %s", i, s.path, e, s.sha)
		}
	}
}
