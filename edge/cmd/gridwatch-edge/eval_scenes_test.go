package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCombineScenes: runs over disjoint seeds add up as one run over all of
// them would score: counts summed, ratios recomputed, latencies pooled; a
// seed in two files is refused.
func TestCombineScenes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, last string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("table\n"+last+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.out", `{"seeds":[1,2],"camera_hours":12,"cover_episodes":10,"cover_found":9,"cover_false_reports":1,"occupancy_episodes":4,"occupancy_found":4,"occupancy_correct":4,"occupancy_reports":5,"cover_latencies_s":[1,2],"occupancy_latencies_s":[0]}`)
	b := write("b.out", `{"seeds":[3],"camera_hours":12,"cover_episodes":10,"cover_found":10,"cover_false_reports":0,"occupancy_episodes":0,"occupancy_found":0,"occupancy_correct":0,"occupancy_reports":0,"cover_latencies_s":[3],"occupancy_latencies_s":null}`)
	var out, errOut bytes.Buffer
	if err := runEvalScenes(t.Context(), []string{"--combine", a, b}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{
		"camera_hours": 24, "cover_recall": 0.95, "cover_false_reports_per_camera_day": 1,
		"occupancy_precision": 0.8, "occupancy_recall": 1, "cover_latency_p50_s": 2,
	} {
		if g, ok := got[k].(float64); !ok || g != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	// A combined result is itself a result: combining it with another run
	// keeps every latency and count.
	ab := write("ab.out", lines[len(lines)-1])
	c := write("c.out", `{"seeds":[4],"camera_hours":24,"cover_episodes":1,"cover_found":1,"cover_false_reports":0,"occupancy_episodes":0,"occupancy_found":0,"occupancy_correct":0,"occupancy_reports":0,"cover_latencies_s":[10],"occupancy_latencies_s":null}`)
	out.Reset()
	if err := runEvalScenes(t.Context(), []string{"--combine", ab, c}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSpace(out.String()), "\n")
	got = nil
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{
		"camera_hours": 48, "cover_false_reports_per_camera_day": 0.5, "cover_latency_p50_s": 2.5,
	} {
		if g, ok := got[k].(float64); !ok || g != want {
			t.Errorf("combined again: %s = %v, want %v", k, got[k], want)
		}
	}
	if err := runEvalScenes(t.Context(), []string{"--combine", a, a}, &out, &errOut); err == nil {
		t.Error("the same seeds twice: no error")
	}
}
