package ui_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/cloud/registry"
)

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
	}
	return resp.StatusCode
}

type featureCollection struct {
	Features []struct {
		Properties map[string]any `json:"properties"`
		Geometry   struct {
			Type        string          `json:"type"`
			Coordinates json.RawMessage `json:"coordinates"`
		} `json:"geometry"`
	} `json:"features"`
	Count     int  `json:"count"`
	Truncated bool `json:"truncated"`
}

// The map's geometry endpoints: street outlines for the district view, cells and facilities by
// bounding box for a zoomed-in view, with limits.
func TestMapEndpoints(t *testing.T) {
	e := newEnv(t)
	var streets featureCollection
	if code := getJSON(t, e.base+"/api/v1/map/streets", &streets); code != 200 || len(streets.Features) != 44 {
		t.Fatalf("streets: HTTP %d, %d features, want 43 streets and the district", code, len(streets.Features))
	}
	sanlitun := false
	for _, f := range streets.Features {
		if f.Geometry.Type != "MultiLineString" {
			t.Fatalf("street outline is a %s", f.Geometry.Type)
		}
		sanlitun = sanlitun || f.Properties["name_zh"] == "三里屯街道"
	}
	if !sanlitun {
		t.Fatal("no 三里屯街道 among the streets")
	}

	anchor := registry.DemoAnchors()[0]
	bbox := fmt.Sprintf("%f,%f,%f,%f", anchor.Lon-0.003, anchor.Lat-0.002, anchor.Lon+0.003, anchor.Lat+0.002)
	var cells featureCollection
	if code := getJSON(t, e.base+"/api/v1/map/cells?bbox="+bbox, &cells); code != 200 || cells.Count < 4 || cells.Count > 40 || cells.Truncated {
		t.Fatalf("cells around the anchor: HTTP %d, %d cells, truncated %v", code, cells.Count, cells.Truncated)
	}
	home, _ := registry.Demo().CellAt(anchor.Lat, anchor.Lon)
	found := false
	for _, f := range cells.Features {
		var rings [][][2]float64
		json.Unmarshal(f.Geometry.Coordinates, &rings)
		if n := len(rings[0]); n < 4 || rings[0][0] != rings[0][n-1] {
			t.Fatalf("cell %v: ring of %d points, not closed", f.Properties["code"], n)
		}
		found = found || f.Properties["code"] == home.Code
	}
	if !found {
		t.Fatalf("the anchor's cell %s is not among the cells in its bbox", home.Code)
	}
	var all featureCollection
	if getJSON(t, e.base+"/api/v1/map/cells?bbox=116.3,39.8,116.7,40.1", &all); !all.Truncated || all.Count != 4000 {
		t.Fatalf("whole district: %d cells, truncated %v; want the 4000 limit", all.Count, all.Truncated)
	}
	for _, bad := range []string{"", "1,2,3", "a,b,c,d", "116.5,39.9,116.4,39.95"} {
		if code := getJSON(t, e.base+"/api/v1/map/cells?bbox="+bad, nil); code != 400 {
			t.Fatalf("bbox %q: HTTP %d, want 400", bad, code)
		}
	}

	var facs struct {
		Facilities []registry.Facility `json:"facilities"`
	}
	getJSON(t, e.base+"/api/v1/map/facilities?bbox="+bbox, &facs)
	ids := map[string]bool{}
	for _, f := range facs.Facilities {
		ids[f.ID] = true
	}
	for _, a := range registry.DemoAnchors() {
		if !ids[a.ID] {
			t.Fatalf("anchor cover %s missing from the facilities in its bbox (%d found)", a.ID, len(facs.Facilities))
		}
	}

	var refs struct {
		Departments []registry.Department   `json:"departments"`
		Streets     []registry.Street       `json:"streets"`
		Categories  []struct{ Code string } `json:"categories"`
	}
	getJSON(t, e.base+"/api/v1/departments", &refs)
	if len(refs.Departments) != 10+43 || len(refs.Streets) != 43 || len(refs.Categories) == 0 {
		t.Fatalf("departments %d, streets %d, categories %d", len(refs.Departments), len(refs.Streets), len(refs.Categories))
	}
}

// The live stream tells a subscriber about a new detection within the poll interval, and the
// server shuts down promptly with a subscriber still connected.
func TestEventsStream(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.base+"/api/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan [2]string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		var name string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				events <- [2]string{name, strings.TrimPrefix(line, "data: ")}
			}
		}
		close(events)
	}()
	next := func(want string) map[string]any {
		t.Helper()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("stream ended waiting for %q", want)
				}
				if ev[0] == want {
					var m map[string]any
					json.Unmarshal([]byte(ev[1]), &m)
					return m
				}
			case <-ctx.Done():
				t.Fatalf("no %q event", want)
			}
		}
	}
	if first := next("cases"); first["count"] != 1.0 || first["reported"] != 1.0 {
		t.Fatalf("first cases event %v, want 1 case reported", first)
	}
	start := time.Now()
	id := e.detect(registry.DemoAnchors()[1], "box-chaoyang-0001", "cam1", 0.9)
	if m := next("cases"); m["max_id"] != float64(id) || m["reported"] != 2.0 {
		t.Fatalf("after a detection: %v, want max_id %d and 2 reported", m, id)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the event took %v", d)
	}
	// Shutting down ends the stream instead of waiting for the client to go.
	start = time.Now()
	if err := e.stop(); err != nil {
		t.Fatalf("shutdown with a subscriber: %v", err)
	}
	for range events {
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown and end of stream took %v", d)
	}
}
