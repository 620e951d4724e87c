package cover

import (
	"bytes"
	"image/jpeg"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/edge/coverclass"
	"github.com/gridwatch/gridwatch/edge/sim"
	"github.com/gridwatch/gridwatch/edge/wire"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// runScene checks the skeleton scene once a second from second `from` on,
// as the agent does on keyframes, and returns every confirmed change; with
// classify set the monitor uses the shipped classifier too.
func runScene(t *testing.T, seed int64, from int, classify Classifier) ([]Change, sim.Truth, *Monitor) {
	t.Helper()
	sc := sim.Skeleton(seed)
	truth := sc.Truth()
	var specs []Spec
	for _, c := range sc.Covers {
		specs = append(specs, Spec{FacilityID: c.FacilityID, Region: c.Region})
	}
	m := New("cam1", 3, specs).WithClassifier(classify)
	buf := make([]byte, sc.Width*sc.Height*3)
	var all []Change
	for sec := from; sec < int(sc.Duration/time.Second); sec++ {
		sc.Frame(sec*sc.FPS, buf)
		mat, err := gocv.NewMatFromBytes(sc.Height, sc.Width, gocv.MatTypeCV8UC3, buf)
		if err != nil {
			t.Fatal(err)
		}
		ch, err := m.Check(mat, t0.Add(time.Duration(sec)*time.Second))
		mat.Close()
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ch...)
	}
	return all, truth, m
}

func TestSkeletonSceneChanges(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		t.Run("seed", func(t *testing.T) {
			changes, truth, m := runScene(t, seed, 0, nil)
			defer m.Close()
			var missingFrom, backFrom float64
			for _, iv := range truth.Intervals(sim.PowerCover) {
				if iv.State == wire.CoverMissing {
					missingFrom, backFrom = iv.From, iv.To
				}
			}
			if len(changes) != 2 {
				t.Fatalf("seed %d: %d changes, want exactly 2 (missing, back): %+v", seed, len(changes), changes)
			}
			newC, endC := changes[0], changes[1]
			if newC.FacilityID != sim.PowerCover || newC.Phase != wire.PhaseNew || newC.State != wire.CoverMissing {
				t.Fatalf("first change %+v, want the power cover new/missing", newC)
			}
			if endC.Phase != wire.PhaseEnd || endC.State != wire.CoverPresent || endC.EventID != newC.EventID {
				t.Fatalf("second change %+v, want end/present of event %s", endC, newC.EventID)
			}
			// Confirmed within confirm+1 checks of the truth (1 s apart).
			if lat := newC.At.Sub(t0).Seconds() - missingFrom; lat < 0 || lat > 4.5 {
				t.Errorf("missing reported %.1f s after it happened", lat)
			}
			if lat := endC.At.Sub(t0).Seconds() - backFrom; lat < 0 || lat > 4.5 {
				t.Errorf("restoration reported %.1f s after it happened", lat)
			}
			if newC.Confidence < 0.5 || newC.Confidence > 1 {
				t.Errorf("confidence %v", newC.Confidence)
			}
		})
	}
}

func TestSnapshotIsJPEG(t *testing.T) {
	sc := sim.Skeleton(1)
	buf := make([]byte, sc.Width*sc.Height*3)
	sc.Frame(20*sc.FPS, buf)
	mat, err := gocv.NewMatFromBytes(sc.Height, sc.Width, gocv.MatTypeCV8UC3, buf)
	if err != nil {
		t.Fatal(err)
	}
	defer mat.Close()
	m := New("cam1", 1, []Spec{{FacilityID: sim.PowerCover, Region: sc.Covers[0].Region}})
	defer m.Close()
	clean, ann, err := m.Snapshot(mat, sim.PowerCover)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"clean": clean, "annotated": ann} {
		img, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if img.Bounds().Dx() != sc.Width || img.Bounds().Dy() != sc.Height {
			t.Fatalf("%s: %v", name, img.Bounds())
		}
	}
	if bytes.Equal(clean, ann) {
		t.Fatal("annotated snapshot equals the clean one")
	}
}

func TestRegionOutsideFrame(t *testing.T) {
	mat := gocv.NewMatWithSize(100, 100, gocv.MatTypeCV8UC3)
	defer mat.Close()
	sc := sim.Skeleton(1)
	m := New("cam1", 1, []Spec{{FacilityID: sim.PowerCover, Region: sc.Covers[0].Region}})
	defer m.Close()
	if _, err := m.Check(mat, time.Now()); err == nil {
		t.Fatal("a region outside the frame must be an error naming it")
	}
}

func BenchmarkCheck720p(b *testing.B) {
	sc := sim.Skeleton(1)
	buf := make([]byte, sc.Width*sc.Height*3)
	sc.Frame(5*sc.FPS, buf)
	mat, _ := gocv.NewMatFromBytes(sc.Height, sc.Width, gocv.MatTypeCV8UC3, buf)
	defer mat.Close()
	var specs []Spec
	for _, c := range sc.Covers {
		specs = append(specs, Spec{FacilityID: c.FacilityID, Region: c.Region})
	}
	m := New("cam1", 3, specs)
	defer m.Close()
	at := time.Now()
	for b.Loop() {
		if _, err := m.Check(mat, at); err != nil {
			b.Fatal(err)
		}
	}
}

func shippedClassifier(t testing.TB) Classifier {
	t.Helper()
	c, err := coverclass.Load("../../models/cover-state/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	return FromCoverclass(c)
}

// TestFirstSeenOpen: the box starts while the cover is already missing. The
// reference look must not be enrolled from the hole; the classifier reports
// it, and once the owner replaces the cover the event ends.
func TestFirstSeenOpen(t *testing.T) {
	changes, _, m := runScene(t, 3, 20, shippedClassifier(t)) // the box boots at 20 s
	defer m.Close()
	if len(changes) != 2 || changes[0].FacilityID != sim.PowerCover || changes[0].Phase != wire.PhaseNew ||
		changes[0].State != wire.CoverMissing || changes[1].Phase != wire.PhaseEnd {
		t.Fatalf("changes %+v, want the power cover new/missing then end", changes)
	}
	if at := changes[0].At.Sub(t0).Seconds(); at > 24 {
		t.Errorf("first-seen-open cover reported at %.0f s, want within the first checks after boot at 20 s", at)
	}
}

func TestSkeletonWithClassifier(t *testing.T) {
	changes, _, m := runScene(t, 2, 0, shippedClassifier(t))
	defer m.Close()
	n := len(changes)
	if n != 2 {
		t.Fatalf("%d changes with the classifier, want 2 (missing, back)", n)
	}
}
