package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/evidence"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// wfServer is a server with a case reported by a camera.
func wfServer(t *testing.T) (*Server, int64) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "gw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ev, _ := evidence.Open(filepath.Join(dir, "ev"))
	e := &cases.Engine{Store: db, Registry: registry.Demo(), Log: quiet}
	raw, err := os.ReadFile("../../edge/wire/testdata/report-cover-new.json")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := wire.DecodeReport(raw)
	out, err := e.Apply(context.Background(), r, raw)
	if err != nil {
		t.Fatal(err)
	}
	return &Server{Store: db, Evidence: ev, Engine: e, Users: DemoUsers(), Log: quiet}, out.CaseID
}

func call(t *testing.T, s *Server, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.Handler().Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestWorkflowOverHTTP(t *testing.T) {
	s, id := wfServer(t)
	p := func(f string) string { return "/api/v1/cases/" + itoa(id) + f }
	steps := []struct {
		name, method, path, token, body string
		code                            int
		status                          string
	}{
		{"no token", "POST", p("/verify"), "", `{"accept":true}`, 401, ""},
		{"unknown token", "POST", p("/verify"), "nope-nope-nope", `{"accept":true}`, 401, ""},
		{"wrong role", "POST", p("/verify"), "demo-power", `{"accept":true}`, 403, ""},
		{"unknown field", "POST", p("/verify"), "demo-verifier", `{"accept":true,"x":1}`, 400, ""},
		{"not JSON", "POST", p("/verify"), "demo-verifier", `accept`, 400, ""},
		{"no such case", "POST", "/api/v1/cases/999/verify", "demo-verifier", `{"accept":true}`, 404, ""},
		{"verifier accepts", "POST", p("/verify"), "demo-verifier", `{"accept":true,"reason":"clear in the snapshot"}`, 200, "dispatched"},
		{"twice is a conflict", "POST", p("/verify"), "demo-verifier", `{"accept":true}`, 409, ""},
	}
	for _, st := range steps {
		code, body := call(t, s, st.method, st.path, st.token, st.body)
		if code != st.code {
			t.Fatalf("%s: HTTP %d %v, want %d", st.name, code, body, st.code)
		}
		if code >= 400 && body["error"] == nil {
			t.Fatalf("%s: error body without \"error\": %v", st.name, body)
		}
		if st.status != "" && body["status"] != st.status {
			t.Fatalf("%s: status %v, want %s", st.name, body["status"], st.status)
		}
	}
	code, detail := call(t, s, "GET", p(""), "", "")
	if ev, _ := detail["evidence"].([]any); code != 200 || len(ev) != 1 {
		t.Fatalf("case detail evidence: %d %v, want the golden report's one snapshot", code, detail["evidence"])
	}
	// The tasks are visible per department; the owner reports the fix, the
	// supervisor checks and closes.
	ks, _ := s.Store.Tasks(context.Background(), store.TaskFilter{Dept: "dept-power"})
	if len(ks) != 1 {
		t.Fatalf("power company has %d tasks", len(ks))
	}
	task := "/api/v1/tasks/" + itoa(ks[0].ID)
	if code, b := call(t, s, "POST", task+"/fixed", "demo-water", `{"note":"done","photo":"ab"}`); code != 403 {
		t.Fatalf("another department's fix: %d %v", code, b)
	}
	if code, b := call(t, s, "POST", task+"/fixed", "demo-power", `{"note":"new cover"}`); code != 400 {
		t.Fatalf("fix without photo: %d %v", code, b)
	}
	if code, b := call(t, s, "POST", task+"/fixed", "demo-power", `{"note":"new cover","photo":"ab12"}`); code != 200 || b["status"] != "fixed" {
		t.Fatalf("fix: %d %v", code, b)
	}
	if code, b := call(t, s, "POST", p("/check"), "demo-supervisor", `{"pass":true,"photo":"cd34","note":"solid"}`); code != 200 || b["status"] != "closed" {
		t.Fatalf("check: %d %v", code, b)
	}
	code, b := call(t, s, "GET", "/api/v1/scores?kind=department", "", "")
	if code != 200 || len(b["scores"].([]any)) != 1 {
		t.Fatalf("scores: %d %v", code, b)
	}
	if code, _ := call(t, s, "GET", "/api/v1/scores?from=yesterday", "", ""); code != 400 {
		t.Fatalf("bad from: %d", code)
	}
}

func TestHumanReportJoinsCameraCase(t *testing.T) {
	s, id := wfServer(t)
	code, b := call(t, s, "POST", "/api/v1/reports", "demo-supervisor",
		`{"kind":"part","facility_id":"1101050105000123","lat":0,"lon":0,"description":"cover missing, I stand next to it"}`)
	if code != 200 || b["created"] != false || b["case"].(map[string]any)["id"].(float64) != float64(id) {
		t.Fatalf("supervisor's report of the same cover: %d %v", code, b)
	}
	code, b = call(t, s, "POST", "/api/v1/reports", "demo-supervisor",
		`{"kind":"event","category":"0505","lat":39.92190,"lon":116.44360,"description":"car on the pavement"}`)
	if code != 201 || b["case"].(map[string]any)["status"] != "dispatched" || len(b["nearby"].([]any)) != 1 {
		t.Fatalf("new event: %d %v", code, b)
	}
	if code, b := call(t, s, "POST", "/api/v1/reports", "demo-supervisor",
		`{"kind":"event","category":"0505","lat":10,"lon":10}`); code != 400 {
		t.Fatalf("outside the district: %d %v", code, b)
	}
	if code, _ := call(t, s, "POST", "/api/v1/reports", "demo-power", `{"kind":"event","category":"0505","lat":39.9219,"lon":116.4436}`); code != 403 {
		t.Fatalf("a department filed a report: %d", code)
	}
}

func TestOpenAPIIsValidJSON(t *testing.T) {
	s, _ := wfServer(t)
	code, b := call(t, s, "GET", "/api/v1/openapi.json", "", "")
	if code != 200 || b["openapi"] != "3.0.3" || len(b["paths"].(map[string]any)) < 15 {
		t.Fatalf("openapi: %d", code)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
