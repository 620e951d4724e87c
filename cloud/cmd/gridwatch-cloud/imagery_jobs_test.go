package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/evidence"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/cloud/web"
)

// A job started through the API runs in the background, shows its progress,
// serves its GeoJSON and files its changes as cases; posting it again is the
// same job, and filing does not repeat.
func TestImageryJobAPI(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "gridwatch.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ev, err := evidence.Open(filepath.Join(dir, "evidence"))
	if err != nil {
		t.Fatal(err)
	}
	engine := &cases.Engine{Store: db, Registry: registry.Demo(), Log: quiet}
	srv := &web.Server{Store: db, Evidence: ev, Engine: engine, Users: web.DemoUsers(), Log: quiet}
	ij, err := imageryJobs(ctx, filepath.Join(dir, "jobs"), engine, ev, quiet)
	if err != nil {
		t.Fatal(err)
	}
	srv.Imagery = ij
	app := srv.Handler()

	before, after := levirPair(t, dir)
	body := fmt.Sprintf(`{"before":%q,"after":%q}`, before, after)

	do := func(method, path, token, body string) (int, map[string]any) {
		t.Helper()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := app.Test(req, 10000)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var out map[string]any
		json.Unmarshal(data, &out)
		if out == nil {
			out = map[string]any{"raw": string(data)}
		}
		return resp.StatusCode, out
	}
	for _, tc := range []struct {
		name, token, body, want string
		code                    int
	}{
		{"no token", "", body, "", 401},
		{"verifier", "demo-verifier", body, "admin role", 403},
		{"missing before", "demo-admin", `{"after":"x"}`, "before: required", 400},
		{"unknown field", "demo-admin", `{"before":"a","after":"b","colour":1}`, "unknown field", 400},
		{"after does not exist", "demo-admin", fmt.Sprintf(`{"before":%q,"after":"/nonexistent.png"}`, filepath.Join(dir, "A.png")), "after:", 400},
		{"unknown category", "demo-admin", strings.Replace(body, "}", `,"category":"9999"}`, 1), "category: 9999", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := do("POST", "/api/v1/imagery/jobs", tc.token, tc.body)
			if code != tc.code || !strings.Contains(fmt.Sprint(out["error"]), tc.want) {
				t.Fatalf("%d %v, want %d with %q", code, out, tc.code, tc.want)
			}
		})
	}
	code, out := do("POST", "/api/v1/imagery/jobs", "demo-admin", body)
	if code != 202 {
		t.Fatalf("start: %d %v", code, out)
	}
	id := out["id"].(string)
	var st map[string]any
	for deadline := time.Now().Add(2 * time.Minute); ; {
		_, st = do("GET", "/api/v1/imagery/jobs/"+id, "", "")
		if st["state"] == "done" || st["state"] == "failed" || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st["state"] != "done" || st["progress"].(float64) != 1 {
		t.Fatalf("job status %v", st)
	}
	filed := st["filed"].(map[string]any)
	created := int(filed["created"].(float64))
	if created == 0 || int(st["changes"].(float64)) < created {
		t.Fatalf("job %v filed %d cases", st, created)
	}
	code, gj := do("GET", "/api/v1/imagery/jobs/"+id+"/changes.geojson", "", "")
	if code != 200 || gj["type"] != "FeatureCollection" || len(gj["features"].([]any)) != int(st["changes"].(float64)) {
		t.Fatalf("geojson: %d %v", code, gj)
	}
	// The same comparison again is the same job: no new work, no new cases.
	code, again := do("POST", "/api/v1/imagery/jobs", "demo-admin", body)
	if code != 202 || again["id"] != id {
		t.Fatalf("second start: %d %v", code, again)
	}
	cs, err := db.Cases(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != created {
		t.Fatalf("%d cases, want %d", len(cs), created)
	}
	c := cs[0]
	if c.Category != "0101" || c.Source != cases.SourceImagery || !ev.Has(c.EvidenceSHA256) {
		t.Fatalf("case %+v: want 0101 from imagery with its after crop stored", c)
	}
}
