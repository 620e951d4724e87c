package web

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"testing"

	"github.com/gridwatch/gridwatch/edge/wire"
)

// The case page and the verifier queue say which zone is occupied, under
// which rule, how much of it, and what the camera's object detector saw —
// kept after the episode's end report, which names no object.
func TestCaseDetailShowsTheOccupation(t *testing.T) {
	s, _ := wfServer(t)
	raw, err := os.ReadFile("../../edge/wire/testdata/report-occupation-new.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := wire.DecodeReport(raw)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Engine.Apply(context.Background(), r, raw)
	if err != nil || !out.Created {
		t.Fatalf("occupation report: %+v, %v", out, err)
	}
	end := r
	end.Seq, end.Phase, end.Share, end.Object, end.ObjectScore = r.Seq+1, wire.PhaseEnd, 0, "", 0
	endRaw, _ := json.Marshal(end)
	if _, err := s.Engine.Apply(context.Background(), end, endRaw); err != nil {
		t.Fatal(err)
	}

	code, b := call(t, s, "GET", "/api/v1/cases/"+strconv.FormatInt(out.CaseID, 10), "demo-verifier", "")
	if code != 200 {
		t.Fatalf("case detail: %d %v", code, b)
	}
	o, _ := b["occupation"].(map[string]any)
	want := map[string]any{"zone": "lane-east", "rule": "no_vending", "share": 0.42, "object": "stall", "object_score": 0.87}
	for k, v := range want {
		if o[k] != v {
			t.Errorf("occupation.%s = %v, want %v (occupation %v)", k, o[k], v, o)
		}
	}

	// A cover case has no occupation facts.
	code, b = call(t, s, "GET", "/api/v1/cases/1", "demo-verifier", "")
	if _, ok := b["occupation"]; code != 200 || ok {
		t.Errorf("cover case detail: %d, occupation %v; want none", code, b["occupation"])
	}
}
