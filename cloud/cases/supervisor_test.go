package cases_test

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/registry"
)

// TestSupervisorScores: three supervisors over one afternoon, with the
// figures worked out by hand.
//
//	wang: reports covers A, B, C (C is voided later); checks A 1 h after its fix (on time, passes)
//	li:   reports cover D and joins wang's report on A; checks B 3 h after its fix (late, rework)
//	zhou: reports nothing; checks D 30 min after its fix (on time)
//
// Default weights 10 volume / 45 valid / 45 check on time, checks on time within 2 h:
//
//	wang: volume 3/3, valid 2/3, on time 1/1 → 10 + 30 + 45 = 85 (B)
//	li:   volume 2/3, valid 2/2, on time 0/1 → 6.67 + 45 + 0 = 51.67 (D)
//	zhou: volume 0, no reports (valid leaves the mean), on time 1/1 → 100 × 45/55 = 81.82 (B)
func TestSupervisorScores(t *testing.T) {
	e := newEngine(t)
	clk := &clock{t: now}
	e.Now = clk.now
	ctx := context.Background()
	r0, _ := golden(t, "report-cover-new.json")
	facs := registry.Demo().NearestFacilities(r0.Lat, r0.Lon, 4, 0)
	if len(facs) != 4 {
		t.Fatalf("%d covers near the anchor", len(facs))
	}
	wang := cases.Actor{Name: "wang", Role: cases.Supervisor}
	li := cases.Actor{Name: "li", Role: cases.Supervisor}
	zhou := cases.Actor{Name: "zhou", Role: cases.Supervisor}
	report := func(a cases.Actor, f int) int64 {
		t.Helper()
		out, err := e.Report(ctx, a, cases.HumanReport{Kind: "part", FacilityID: facs[f].ID, Description: "cover gone", Photo: strings.Repeat("a", 64)})
		if err != nil {
			t.Fatal(err)
		}
		clk.advance(5 * time.Minute)
		return out.Case.ID
	}
	fix := func(id int64) {
		t.Helper()
		owner, _ := tasksOf(t, e, id)
		if _, err := e.ReportFixed(ctx, owner.ID, cases.Actor{Name: "desk", Role: cases.Department, Dept: owner.Dept}, "replaced", strings.Repeat("b", 64)); err != nil {
			t.Fatal(err)
		}
	}
	checkCase := func(id int64, a cases.Actor, pass bool) {
		t.Helper()
		if _, err := e.Check(ctx, id, a, pass, "seen on site", strings.Repeat("c", 64)); err != nil {
			t.Fatal(err)
		}
	}
	start := clk.now()
	a, b, c := report(wang, 0), report(wang, 1), report(wang, 2)
	d := report(li, 3)
	if joined := report(li, 0); joined != a {
		t.Fatalf("li's report on cover A made case %d, want it joined to %d", joined, a)
	}
	if _, err := e.Void(ctx, c, dispatcher, "duplicate of a works order"); err != nil {
		t.Fatal(err)
	}
	fix(a)
	fix(b)
	fix(d)
	clk.advance(30 * time.Minute)
	checkCase(d, zhou, true)
	clk.advance(30 * time.Minute)
	checkCase(a, wang, true)
	clk.advance(2 * time.Hour)
	checkCase(b, li, false)
	end := clk.now().Add(time.Minute)

	scores, err := e.SupervisorScores(ctx, start, end, cases.DefaultSupervisorWeights)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		party                                string
		reports, valid, checks, checksOnTime int
		score                                float64
		grade                                string
		validCases, onTimeCases              []int64
	}
	want := []row{
		{"wang", 3, 2, 1, 1, 85, "B", []int64{a, b}, []int64{a}},
		{"zhou", 0, 0, 1, 1, 100 * 45.0 / 55, "B", nil, []int64{d}},
		{"li", 2, 2, 1, 0, 10*2.0/3 + 45, "D", []int64{d, a}, nil},
	}
	if len(scores) != len(want) {
		t.Fatalf("%d scores %+v, want %d", len(scores), scores, len(want))
	}
	for i, w := range want {
		s := scores[i]
		if s.Party != w.party || s.Reports != w.reports || s.Valid != w.valid || s.Checks != w.checks || s.ChecksOnTime != w.checksOnTime ||
			math.Abs(s.Score-w.score) > 1e-9 || s.Grade != w.grade || !slices.Equal(s.Cases.Valid, w.validCases) || !slices.Equal(s.Cases.ChecksOnTime, w.onTimeCases) {
			t.Errorf("rank %d: %+v\nwant %+v", i+1, s, w)
		}
	}

	// Another period, another answer: the first quarter hour holds wang's three reports only.
	early, err := e.SupervisorScores(ctx, start, start.Add(15*time.Minute), cases.DefaultSupervisorWeights)
	if err != nil {
		t.Fatal(err)
	}
	if len(early) != 1 || early[0].Party != "wang" || early[0].Reports != 3 || early[0].Checks != 0 ||
		math.Abs(early[0].Score-100*(10+45*2.0/3)/55) > 1e-9 {
		t.Errorf("first quarter hour: %+v; want wang alone, 3 reports, score %.2f", early, 100*(10+45*2.0/3)/55)
	}
	// The weights are configuration: checks alone.
	only, err := e.SupervisorScores(ctx, start, end, cases.SupervisorWeights{CheckOnTime: 1, CheckHours: 4})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range only {
		if s.Score != 100 {
			t.Errorf("checks only, within 4 h: %s scores %.2f, want 100 (every check was within 4 h)", s.Party, s.Score)
		}
	}
}
