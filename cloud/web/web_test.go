package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/evidence"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/cloud/web"
	"github.com/gridwatch/gridwatch/edge/wire"
)

const powerCover = "1101050105000123"

// newServer returns a server over a fresh SQLite store and evidence
// directory, with no cases yet.
func newServer(t testing.TB) *web.Server {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "gridwatch.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ev, err := evidence.Open(filepath.Join(dir, "evidence"))
	if err != nil {
		t.Fatal(err)
	}
	engine := &cases.Engine{Store: db, Registry: registry.Demo(), Log: quiet}
	return &web.Server{Store: db, Evidence: ev, Engine: engine, Users: web.DemoUsers(), Log: quiet}
}

// withGoldenCase applies the golden "new missing" report through the real
// case engine and returns the case id.
func withGoldenCase(t testing.TB, s *web.Server) (int64, wire.Report) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "edge", "wire", "testdata", "report-cover-new.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := wire.DecodeReport(raw)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Engine.Apply(context.Background(), r, raw)
	if err != nil || !out.Created {
		t.Fatalf("Apply golden report: %+v, %v", out, err)
	}
	return out.CaseID, r
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func do(t testing.TB, s *web.Server, method, target string, body []byte) response {
	t.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	return doRequest(t, s, httptest.NewRequest(method, target, rd))
}

func doRequest(t testing.TB, s *web.Server, req *http.Request) response {
	t.Helper()
	resp, err := s.Handler().Test(req, -1)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// errorBody checks that a failed call explains itself in {"error": ...}.
func errorBody(t *testing.T, r response) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	var e map[string]any
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	msg, ok := e["error"].(string)
	if !ok || msg == "" {
		t.Errorf("error body %s has no \"error\" message", r.body)
	}
	return msg
}

// smallJPEG encodes a real JPEG with the standard library.
func smallJPEG(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 32, 24))
	for y := range 24 {
		for x := range 32 {
			img.Set(x, y, color.RGBA{uint8(x * 8), uint8(y * 10), 90, 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestListCases(t *testing.T) {
	s := newServer(t)

	r := do(t, s, "GET", "/api/v1/cases", nil)
	if r.code != 200 || strings.TrimSpace(string(r.body)) != "[]" {
		t.Fatalf("GET /api/v1/cases with no cases = %d %s, want 200 []", r.code, r.body)
	}

	id, rep := withGoldenCase(t, s)
	r = do(t, s, "GET", "/api/v1/cases", nil)
	if r.code != 200 {
		t.Fatalf("GET /api/v1/cases = %d %s", r.code, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var items []map[string]any
	if err := json.Unmarshal(r.body, &items); err != nil {
		t.Fatalf("body is not a JSON array: %v\n%s", err, r.body)
	}
	if len(items) != 1 {
		t.Fatalf("%d cases, want 1", len(items))
	}
	c := items[0]
	for _, field := range []string{"id", "status", "category", "facility_id", "owner_department", "grid_cell",
		"street", "lat", "lon", "created_at", "evidence_url"} {
		if _, ok := c[field]; !ok {
			t.Errorf("case lacks %q: %s", field, r.body)
		}
	}
	fac, _ := registry.Demo().Facility(powerCover)
	cell, _ := registry.Demo().CellAt(fac.Lat, fac.Lon)
	want := map[string]any{
		"id":               float64(id),
		"status":           cases.StatusReported,
		"category":         "0105",
		"facility_id":      powerCover,
		"owner_department": "dept-power",
		"grid_cell":        cell.Code,
		"street":           "110105003",
		"lat":              fac.Lat,
		"lon":              fac.Lon,
		"evidence_url":     "/api/v1/evidence/" + rep.Evidence[0].SHA256,
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("%s = %v, want %v", k, c[k], v)
		}
	}
	if s, _ := c["created_at"].(string); s == "" {
		t.Errorf("created_at = %v, want a time", c["created_at"])
	}
}

func TestListCasesLimit(t *testing.T) {
	s := newServer(t)
	withGoldenCase(t, s)
	tests := []struct {
		query string
		code  int
		n     int
	}{
		{"", 200, 1},
		{"?limit=1", 200, 1},
		{"?limit=5000", 200, 1},
		{"?limit=0", 400, 0},
		{"?limit=-1", 400, 0},
		{"?limit=5001", 400, 0},
		{"?limit=99999", 400, 0},
		{"?limit=abc", 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			r := do(t, s, "GET", "/api/v1/cases"+tt.query, nil)
			if r.code != tt.code {
				t.Fatalf("GET /api/v1/cases%s = %d %s, want %d", tt.query, r.code, r.body, tt.code)
			}
			if tt.code != 200 {
				if msg := errorBody(t, r); !strings.Contains(msg, "limit") {
					t.Errorf("error %q does not name limit", msg)
				}
				return
			}
			var items []json.RawMessage
			if err := json.Unmarshal(r.body, &items); err != nil || len(items) != tt.n {
				t.Errorf("got %d items (%v), want %d", len(items), err, tt.n)
			}
		})
	}
}

func TestGetCase(t *testing.T) {
	s := newServer(t)
	id, rep := withGoldenCase(t, s)

	r := do(t, s, "GET", fmt.Sprintf("/api/v1/cases/%d", id), nil)
	if r.code != 200 {
		t.Fatalf("GET case %d = %d %s", id, r.code, r.body)
	}
	var c struct {
		ID          int64  `json:"id"`
		FacilityID  string `json:"facility_id"`
		EvidenceURL string `json:"evidence_url"`
		Events      []struct {
			Action   string `json:"action"`
			Actor    string `json:"actor"`
			Evidence string `json:"evidence"`
		} `json:"events"`
	}
	if err := json.Unmarshal(r.body, &c); err != nil {
		t.Fatalf("%v\n%s", err, r.body)
	}
	if c.ID != id || c.FacilityID != powerCover || c.EvidenceURL != "/api/v1/evidence/"+rep.Evidence[0].SHA256 {
		t.Errorf("case = %+v", c)
	}
	if len(c.Events) == 0 || c.Events[0].Action != "reported" || c.Events[0].Actor != "device:"+rep.Device {
		t.Errorf("events = %+v, want the \"reported\" event first", c.Events)
	}
}

func TestGetCaseErrors(t *testing.T) {
	s := newServer(t)
	withGoldenCase(t, s)
	tests := []struct {
		id   string
		code int
	}{
		{"abc", 400},
		{"0", 400},
		{"-1", 400},
		{"1.5", 400},
		{"1e3", 400},
		{"99999999999999999999", 400}, // overflows int64
		{"%20", 400},
		{"4242", 404},
		{"9223372036854775807", 404},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			r := do(t, s, "GET", "/api/v1/cases/"+tt.id, nil)
			if r.code != tt.code {
				t.Fatalf("GET /api/v1/cases/%s = %d %s, want %d", tt.id, r.code, r.body, tt.code)
			}
			errorBody(t, r)
		})
	}
}

func TestPutEvidence(t *testing.T) {
	s := newServer(t)
	jpg := smallJPEG(t)
	good := sum(jpg)
	tests := []struct {
		name string
		sha  string
		body []byte
		code int
	}{
		{"new", good, jpg, 201},
		{"again", good, jpg, 200},
		{"wrong content", sum([]byte("other")), jpg, 400},
		{"truncated content", sum(jpg[:len(jpg)-1]), jpg, 400},
		{"upper-case hex", strings.ToUpper(good), jpg, 400},
		{"too short", good[:63], jpg, 400},
		{"not hex", strings.Repeat("g", 64), jpg, 400},
		{"escaped traversal", "..%2f..%2fetc%2fpasswd", []byte("root:x:0:0"), 400},
		{"dots", "..", nil, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, s, "PUT", "/api/v1/evidence/"+tt.sha, tt.body)
			if r.code != tt.code {
				t.Fatalf("PUT %s = %d %s, want %d", tt.sha, r.code, r.body, tt.code)
			}
			if tt.code >= 400 {
				errorBody(t, r)
			}
		})
	}
	// Nothing but the good file was stored.
	for _, tt := range tests {
		if tt.code >= 400 && s.Evidence.Has(strings.ToLower(tt.sha)) && strings.ToLower(tt.sha) != good {
			t.Errorf("%s: refused upload was stored", tt.name)
		}
	}
}

func TestGetEvidence(t *testing.T) {
	s := newServer(t)
	jpg := smallJPEG(t)
	sha := sum(jpg)
	if r := do(t, s, "PUT", "/api/v1/evidence/"+sha, jpg); r.code != 201 {
		t.Fatalf("PUT = %d %s", r.code, r.body)
	}

	r := do(t, s, "GET", "/api/v1/evidence/"+sha, nil)
	if r.code != 200 {
		t.Fatalf("GET stored evidence = %d %s", r.code, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "image/jpeg" {
		t.Errorf("Content-Type = %q, want image/jpeg", ct)
	}
	if !bytes.Equal(r.body, jpg) {
		t.Errorf("body is %d bytes, want the %d uploaded", len(r.body), len(jpg))
	}

	tests := []struct {
		name, sha string
		code      int
	}{
		{"absent", sum([]byte("never uploaded")), 404},
		{"upper-case hex", strings.ToUpper(sha), 400},
		{"escaped traversal", "..%2f..%2fetc%2fpasswd", 400},
		{"escaped traversal into store", "..%2f" + sha[:2] + "%2f" + sha, 400},
		{"too long", sha + "0", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, s, "GET", "/api/v1/evidence/"+tt.sha, nil)
			if r.code != tt.code {
				t.Fatalf("GET %s = %d %s, want %d", tt.sha, r.code, r.body, tt.code)
			}
			errorBody(t, r)
		})
	}
}

func TestCasesPage(t *testing.T) {
	s := newServer(t)
	r := do(t, s, "GET", "/cases", nil)
	if r.code != 200 || !strings.Contains(string(r.body), "No cases yet") {
		t.Errorf("GET / with no cases = %d, want 200 and the empty notice:\n%s", r.code, r.body)
	}

	id, rep := withGoldenCase(t, s)
	r = do(t, s, "GET", "/cases", nil)
	if r.code != 200 {
		t.Fatalf("GET / = %d %s", r.code, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type = %q, want text/html", ct)
	}
	page := string(r.body)
	for _, want := range []string{
		powerCover,
		fmt.Sprintf(`id="case-%d"`, id),
		`<img class="snap" src="/api/v1/evidence/` + rep.Evidence[0].SHA256 + `"`,
		"dept-power",
		"street-110105003",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestDevices(t *testing.T) {
	s := newServer(t)
	r := do(t, s, "GET", "/api/v1/devices", nil)
	if r.code != 200 || strings.TrimSpace(string(r.body)) != "[]" {
		t.Errorf("GET /api/v1/devices with none = %d %s, want 200 []", r.code, r.body)
	}
	if err := s.Store.SetDeviceStatus(context.Background(), store.Device{Device: "box-chaoyang-0001", Online: true}); err != nil {
		t.Fatal(err)
	}
	r = do(t, s, "GET", "/api/v1/devices", nil)
	var ds []store.Device
	if err := json.Unmarshal(r.body, &ds); err != nil || len(ds) != 1 || ds[0].Device != "box-chaoyang-0001" || !ds[0].Online {
		t.Errorf("GET /api/v1/devices = %d %s (%v), want the one online box", r.code, r.body, err)
	}
}

func TestUnknownRouteIsJSON404(t *testing.T) {
	s := newServer(t)
	r := do(t, s, "GET", "/api/v1/nope", nil)
	if r.code != 404 {
		t.Fatalf("GET /api/v1/nope = %d, want 404", r.code)
	}
	errorBody(t, r)
}

// FuzzEvidenceName: whatever name a client asks for, the evidence handler
// answers 2xx or 4xx, never a server error.
func FuzzEvidenceName(f *testing.F) {
	s := newServer(f)
	jpg := smallJPEG(f)
	sha := sum(jpg)
	if r := do(f, s, "PUT", "/api/v1/evidence/"+sha, jpg); r.code != 201 {
		f.Fatalf("PUT = %d %s", r.code, r.body)
	}
	for _, seed := range []string{
		sha, strings.ToUpper(sha), sha[:63], sha + "0", "", ".", "..", "..%2f..%2fetc%2fpasswd",
		"../../etc/passwd", "%00", "%2e%2e", sha[:2] + "%2f" + sha, "\x00", "a b", "%", "?x=1", "#frag",
	} {
		f.Add(seed)
	}
	app := s.Handler()
	f.Fuzz(func(t *testing.T, name string) {
		req, err := http.NewRequest("GET", "http://gridwatch.test/api/v1/evidence/"+name, nil)
		if err != nil {
			return // not a URL a client could send
		}
		if len(req.URL.RequestURI()) > 3500 {
			// fasthttp refuses a request line longer than its 4 KiB read
			// buffer (431) before any handler runs; app.Test reports that
			// as an error instead of a response.
			return
		}
		resp, err := app.Test(req, 10000)
		if err != nil {
			t.Fatalf("GET %q: %v", name, err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("GET /api/v1/evidence/%s = %d", name, resp.StatusCode)
		}
	})
}
