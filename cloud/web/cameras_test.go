package web_test

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/web"
)

func TestCamerasAPI(t *testing.T) {
	s := newServer(t)
	if r := do(t, s, http.MethodGet, "/api/v1/cameras", nil); r.code != http.StatusNotFound ||
		!strings.Contains(errorBody(t, r), "--fleet") {
		t.Fatalf("without a fleet: %d %s, want 404 naming --fleet", r.code, r.body)
	}

	fleet, err := registry.LoadFleetDir(filepath.Join("..", "..", "firmware-config"), registry.Demo())
	if err != nil {
		t.Fatal(err)
	}
	s.Engine.Fleet = fleet
	r := do(t, s, http.MethodGet, "/api/v1/cameras", nil)
	if r.code != http.StatusOK {
		t.Fatalf("GET /api/v1/cameras: %d %s", r.code, r.body)
	}
	var cams []struct {
		Device, ID string
		Lat, Lon   float64
		Covers     []struct {
			FacilityID string `json:"facility_id"`
			Region     struct{ X, Y, W, H int }
		}
		Zones []struct{ ID, Rule string }
	}
	if err := json.Unmarshal(r.body, &cams); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	if len(cams) != 1 {
		t.Fatalf("cameras = %s, want the demo box's one camera", r.body)
	}
	c := cams[0]
	if c.Device != "box-chaoyang-0001" || c.ID != "cam1" || c.Lat != 39.92195 || c.Lon != 116.44352 || len(c.Covers) != 3 ||
		c.Covers[0].FacilityID != "1101050105000123" || c.Covers[0].Region.W != 120 || c.Zones == nil {
		t.Errorf("camera = %+v, want demo-box.yaml's cam1 with its three covers", c)
	}
}

// The map places a registered camera where the fleet registry says it stands (with its case
// count); without a fleet, where its cases are.
func TestMapCamerasUseTheFleet(t *testing.T) {
	type spot struct {
		Device, Camera string
		Lat, Lon       float64
		Cases          int
		Registered     bool
	}
	get := func(s *web.Server) []spot {
		t.Helper()
		r := do(t, s, http.MethodGet, "/api/v1/map/cameras", nil)
		var out []spot
		if r.code != http.StatusOK || json.Unmarshal(r.body, &out) != nil {
			t.Fatalf("GET /api/v1/map/cameras: %d %s", r.code, r.body)
		}
		return out
	}
	plain := newServer(t)
	withGoldenCase(t, plain)
	if got := get(plain); len(got) != 1 || got[0].Registered || got[0].Cases != 1 {
		t.Fatalf("without a fleet: %+v, want cam1 placed by its one case", got)
	}
	fleet, err := registry.LoadFleetDir(filepath.Join("..", "..", "firmware-config"), registry.Demo())
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t)
	s.Engine.Fleet = fleet
	if got := get(s); len(got) != 1 || !got[0].Registered || got[0].Cases != 0 {
		t.Fatalf("with the fleet, no case yet: %+v, want cam1 at its registered place", got)
	}
	withGoldenCase(t, s)
	want := spot{Device: "box-chaoyang-0001", Camera: "cam1", Lat: 39.92195, Lon: 116.44352, Cases: 1, Registered: true}
	if got := get(s); len(got) != 1 || got[0] != want {
		t.Fatalf("with the fleet: %+v, want %+v", got, want)
	}
}
