package change

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
)

// mask parses rows of '#' (changed) and '.' (unchanged).
func mask(rows ...string) *Mask {
	m := NewMask(len(rows[0]), len(rows))
	for y, r := range rows {
		for x, c := range r {
			if c == '#' {
				m.Pix[y*m.W+x] = 1
			}
		}
	}
	return m
}

func (m *Mask) String() string {
	var b strings.Builder
	for y := 0; y < m.H; y++ {
		for x := 0; x < m.W; x++ {
			b.WriteByte(".#"[m.Pix[y*m.W+x]])
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func TestConfusion(t *testing.T) {
	tests := []struct {
		name                       string
		pred, truth                *Mask
		tp, fp, fn, tn             int64
		precision, recall, f1, iou float64
	}{
		{"perfect", mask("##..", "##.."), mask("##..", "##.."), 4, 0, 0, 4, 1, 1, 1, 1},
		{"half overlap", mask("##..", "##.."), mask(".##.", ".##."), 2, 2, 2, 2, 0.5, 0.5, 0.5, 1.0 / 3},
		{"nothing predicted", mask("....", "...."), mask("#...", "...."), 0, 0, 1, 7, 0, 0, 0, 0},
		{"nothing changed, nothing predicted", mask("....", "...."), mask("....", "...."), 0, 0, 0, 8, 0, 0, 0, 0},
		{"all predicted", mask("####", "####"), mask("#...", "...."), 1, 7, 0, 0, 0.125, 1, 2.0 / 9, 0.125},
		{"one of three found, no false alarm", mask("#...", "...."), mask("###.", "...."), 1, 0, 2, 5, 1, 1.0 / 3, 0.5, 1.0 / 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Confusion
			if err := c.Add(tc.pred, tc.truth); err != nil {
				t.Fatal(err)
			}
			if c.TP != tc.tp || c.FP != tc.fp || c.FN != tc.fn || c.TN != tc.tn {
				t.Fatalf("counts %+v, want TP %d FP %d FN %d TN %d", c, tc.tp, tc.fp, tc.fn, tc.tn)
			}
			for _, v := range []struct {
				name      string
				got, want float64
			}{{"precision", c.Precision(), tc.precision}, {"recall", c.Recall(), tc.recall}, {"F1", c.F1(), tc.f1}, {"IoU", c.IoU(), tc.iou}} {
				if math.Abs(v.got-v.want) > 1e-12 {
					t.Errorf("%s = %g, want %g", v.name, v.got, v.want)
				}
			}
		})
	}
}

// Pooling sums pixels over pairs; it is not the mean of per-pair scores.
func TestConfusionPools(t *testing.T) {
	var c Confusion
	c.Add(mask("##", "##"), mask("##", "##")) // 4 TP
	c.Add(mask(".."), mask("##"))             // 2 FN
	if got, want := c.F1(), 8.0/10; math.Abs(got-want) > 1e-12 {
		t.Fatalf("pooled F1 %g, want %g", got, want)
	}
	if err := c.Add(mask("#"), mask("##")); err == nil {
		t.Fatal("masks of different sizes were scored")
	}
}

func TestMorphology(t *testing.T) {
	in := mask(
		"........",
		".####...",
		".####..#",
		".####...",
		".####...",
		"........",
	)
	if got, want := Open(in, 1).String(), mask(
		"........",
		".####...",
		".####...",
		".####...",
		".####...",
		"........",
	).String(); got != want {
		t.Errorf("open:\n%swant\n%s", got, want)
	}
	gap := mask(
		"##.##",
		"##.##",
	)
	if got, want := Close(gap, 1).String(), mask("#####", "#####").String(); got != want {
		t.Errorf("close:\n%swant\n%s", got, want)
	}
	holes := mask(
		"#####.",
		"#.#.#.",
		"#####.",
	)
	if got, want := RemoveSmall(holes, 0, 2).String(), mask("#####.", "#####.", "#####.").String(); got != want {
		t.Errorf("fill holes:\n%swant\n%s", got, want)
	}
	if got, want := RemoveSmall(in, 2, 0).String(), Open(in, 1).String(); got != want {
		t.Errorf("min area:\n%swant\n%s", got, want)
	}
}

func TestComponents(t *testing.T) {
	m := mask(
		"##....",
		"##..#.",
		"....#.",
		".#....",
	)
	_, comps := Components(m, 1)
	if len(comps) != 3 {
		t.Fatalf("%d components, want 3", len(comps))
	}
	want := []Component{{Label: 1, Area: 4, MinX: 0, MinY: 0, MaxX: 1, MaxY: 1},
		{Label: 2, Area: 2, MinX: 4, MinY: 1, MaxX: 4, MaxY: 2}, {Label: 3, Area: 1, MinX: 1, MinY: 3, MaxX: 1, MaxY: 3}}
	for i := range want {
		if comps[i] != want[i] {
			t.Errorf("component %d = %+v, want %+v", i, comps[i], want[i])
		}
	}
}

// A model trained on a synthetic task (a bright square appears in the after
// image) must find such squares in pairs it never saw, and survive a
// save/load round trip that checks its sha256.
func TestTrainDetectRoundTrip(t *testing.T) {
	mk := func(seed, sx, sy int) Pair {
		a, b := NewImage(64, 64), NewImage(64, 64)
		lab := NewMask(64, 64)
		for i := range a.R {
			n := float32((i*7919 + seed*104729) % 23) // deterministic texture
			a.R[i], a.G[i], a.B[i] = 80+n, 90+n, 70+n
			b.R[i], b.G[i], b.B[i] = 1.2*(80+n)+5, 1.2*(90+n)+5, 1.2*(70+n)+5 // illumination change only
		}
		for y := sy; y < sy+16; y++ {
			for x := sx; x < sx+16; x++ {
				i := y*64 + x
				b.R[i], b.G[i], b.B[i] = 230, 220, 210
				lab.Pix[i] = 1
			}
		}
		return Pair{Name: "p", A: a, B: b, Label: lab}
	}
	var train []Pair
	for k := 0; k < 4; k++ {
		train = append(train, mk(k, 4+10*k, 40-8*k))
	}
	cfg := DefaultTrainConfig()
	cfg.Params.Rounds = 20
	cfg.SamplesPerPair = 1500
	m, err := TrainModel(train, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.json")
	sum, err := m.Save(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(path, strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("a wrong sha256 was accepted: %v", err)
	}
	m2, _, err := Load(path, sum)
	if err != nil {
		t.Fatal(err)
	}
	test := mk(9, 30, 20)
	_, pred, err := m2.Detect(test.A, test.B)
	if err != nil {
		t.Fatal(err)
	}
	var c Confusion
	c.Add(pred, test.Label)
	if c.F1() < 0.8 {
		t.Fatalf("F1 %.3f on the synthetic square, want ≥ 0.8 (%+v)", c.F1(), c)
	}
}
