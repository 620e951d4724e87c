package web

import "testing"

// GET /api/v1/scores?kind=supervisor ranks supervisors by their reports, with the cases behind each figure.
func TestSupervisorScoresOverHTTP(t *testing.T) {
	s, id := wfServer(t)
	code, b := call(t, s, "POST", "/api/v1/reports", "demo-supervisor",
		`{"kind":"part","facility_id":"1101050105000123","lat":0,"lon":0,"description":"cover missing"}`)
	if code != 200 {
		t.Fatalf("report: %d %v", code, b)
	}
	code, b = call(t, s, "GET", "/api/v1/scores?kind=supervisor", "", "")
	if code != 200 {
		t.Fatalf("scores: %d %v", code, b)
	}
	scores := b["scores"].([]any)
	if len(scores) != 1 {
		t.Fatalf("scores %v, want one supervisor", scores)
	}
	sc := scores[0].(map[string]any)
	drill := sc["cases"].(map[string]any)["valid"].([]any)
	if sc["reports"].(float64) != 1 || sc["valid_rate"].(float64) != 1 || len(drill) != 1 || drill[0].(float64) != float64(id) ||
		sc["score"].(float64) != 100 || sc["grade"] != "A" {
		t.Errorf("supervisor score %v: want 1 valid report on case %d, 100, A", sc, id)
	}
	if w := b["weights"].(map[string]any); w["valid"].(float64) != 45 || w["check_hours"].(float64) != 2 {
		t.Errorf("weights %v, want the defaults", w)
	}
	if code, b := call(t, s, "GET", "/api/v1/scores?kind=mayor", "", ""); code != 400 {
		t.Errorf("kind=mayor: %d %v, want 400", code, b)
	}
}
