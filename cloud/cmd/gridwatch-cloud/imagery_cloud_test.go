package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/evidence"
	"github.com/gridwatch/gridwatch/cloud/imagery"
	"github.com/gridwatch/gridwatch/cloud/imagery/georef"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store/storetest"
	"github.com/gridwatch/gridwatch/cloud/web"
)

// levirPair writes one LEVIR pair (0.5 m/px, new buildings) as PNGs with
// world files placing it in Chaoyang.
func levirPair(t *testing.T, dir string) (before, after string) {
	t.Helper()
	levir := filepath.Join("..", "..", "..", "..", "shared", "data", "change", "levir")
	const name = "test_2_0000_0000.png"
	x0, y0 := georef.LonLatToMercator(116.45, 39.92)
	for _, d := range []string{"A", "B"} {
		data, err := os.ReadFile(filepath.Join(levir, d, name))
		if err != nil {
			t.Fatalf("LEVIR pairs must be in ../shared/data: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, d+".png"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, d+".pgw"), []byte(fmt.Sprintf("0.5\n0\n0\n-0.5\n%f\n%f\n", x0, y0)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "A.png"), filepath.Join(dir, "B.png")
}

// imagery compare --cloud files a finished job's changes as cases in a
// running cloud through its API (crops as evidence, one report per change);
// a job stopped and resumed, or the same command run again, creates no
// second case. Bad flags, a wrong token or category stop it before the job
// runs, with an error saying what is wrong.
func TestImageryCompareFilesInCloud(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { testCompareFilesInCloud(t, backend) })
	}
}

func testCompareFilesInCloud(t *testing.T, backend string) {
	ctx := context.Background()
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	db := storetest.Open(t, backend)
	ev, err := evidence.Open(filepath.Join(dir, "evidence"))
	if err != nil {
		t.Fatal(err)
	}
	engine := &cases.Engine{Store: db.Store, Registry: registry.Demo(), Log: quiet}
	srv := &web.Server{Store: db.Store, Evidence: ev, Engine: engine, Users: web.DemoUsers(), Log: quiet}
	app := srv.Handler()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)
	t.Cleanup(func() { app.Shutdown() })
	url := "http://" + ln.Addr().String()
	if resp, err := http.Get(url + "/api/v1/cases"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("cloud not answering: %v", err)
	}

	// The endpoint names what is wrong with a change it refuses.
	good := `{"v":1,"device":"imagery-x","seq":1,"id":"c1","phase":"new","kind":"change","camera":"job-x","state":"changed",` +
		`"confidence":0.9,"observed_at":"2026-11-27T10:00:00Z","lat":39.92,"lon":116.45,"category":"0101","area_m2":50,` +
		`"polygon":[[116.45,39.92],[116.4501,39.92],[116.4501,39.9201]],` +
		`"evidence":[{"sha256":"` + strings.Repeat("ab", 32) + `","kind":"after","content_type":"image/jpeg","bytes":10}]}`
	for _, tc := range []struct{ name, token, body, want string }{
		{"verifier", "demo-verifier", good, "admin role"},
		{"unknown field", "demo-admin", strings.Replace(good, `"v":1`, `"v":1,"colour":2`, 1), "unknown field"},
		{"not a change", "demo-admin", strings.Replace(good, `"kind":"change"`, `"kind":"cover"`, 1), "kind: cover is not change"},
		{"not an imagery device", "demo-admin", strings.Replace(good, `"imagery-x"`, `"box-1"`, 1), "device: box-1"},
		{"crop not uploaded", "demo-admin", good, "is not stored: PUT /api/v1/evidence/"},
		{"unknown category", "demo-admin", strings.Replace(good, `"0101"`, `"9999"`, 1), "category: 9999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", url+"/api/v1/imagery/changes", strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+tc.token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 != 4 || !strings.Contains(string(data), tc.want) {
				t.Fatalf("%d %s, want a 4xx saying %q", resp.StatusCode, data, tc.want)
			}
		})
	}

	before, after := levirPair(t, dir)
	jobDir := filepath.Join(dir, "job")
	compare := func(extra ...string) error {
		args := append([]string{"compare", "--before", before, "--after", after, "--tile", "128",
			"--job", jobDir, "--out", filepath.Join(dir, "changes.geojson")}, extra...)
		return imageryCmd(ctx, args)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no scheme", []string{"--cloud", strings.TrimPrefix(url, "http://"), "--token", "demo-admin"}, "want the cloud's address"},
		{"no token", []string{"--cloud", url, "--token", ""}, "--token"},
		{"verifier token", []string{"--cloud", url, "--token", "demo-verifier"}, "an admin token is needed (403: filing imagery changes needs the admin role)"},
		{"unknown token", []string{"--cloud", url, "--token", "nobody"}, "refused the token"},
		{"unknown category", []string{"--cloud", url, "--token", "demo-admin", "--category", "9999"}, "--category 9999 is not an event code"},
		{"limits without cloud", []string{"--file-min-score", "0.5"}, "need --cloud"},
		{"score out of range", []string{"--cloud", url, "--token", "demo-admin", "--file-min-score", "2"}, "--file-min-score 2"},
		{"nobody listening", []string{"--cloud", "http://127.0.0.1:1", "--token", "demo-admin"}, "connect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := compare(tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
			if _, err := os.Stat(jobDir); err == nil {
				t.Fatalf("the job ran although the command was refused")
			}
		})
	}

	// A job stopped after a few units (as by Ctrl-C), with the spec the
	// command builds from its flags.
	spec := imagery.JobSpec{Before: before, After: after, Tile: 128, MinAreaM2: 20}
	m, _, err := imagery.LoadModel("")
	if err != nil {
		t.Fatal(err)
	}
	j, err := imagery.OpenJob(jobDir, &spec)
	if err != nil {
		t.Fatal(err)
	}
	stopCtx, stop := context.WithCancel(ctx)
	if _, err := j.Run(stopCtx, m, imagery.RunOptions{Workers: 1, Progress: func(p imagery.Progress) {
		if p.Done >= 3 {
			stop()
		}
	}}); err == nil {
		t.Fatal("the stopped job finished")
	}
	stop()

	// The same command with --cloud resumes it and files its changes.
	if err := compare("--cloud", url, "--token", "demo-admin"); err != nil {
		t.Fatal(err)
	}
	j, err = imagery.OpenJob(jobDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	changes := j.Changes()
	cs, err := db.Store.Cases(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) == 0 || len(cs) == 0 || len(cs) > len(changes) {
		t.Fatalf("%d changes became %d cases", len(changes), len(cs))
	}
	for _, c := range cs {
		if c.Category != "0101" || c.Source != cases.SourceImagery || c.Status != cases.StatusReported || !ev.Has(c.EvidenceSHA256) {
			t.Fatalf("case %+v: want a reported 0101 imagery case with its after crop stored", c)
		}
	}
	var reports int
	for _, c := range cs {
		ps, err := db.Store.CaseReportPayloads(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		reports += len(ps)
	}
	if reports != len(changes) {
		t.Fatalf("%d reports in the cases for %d changes", reports, len(changes))
	}
	for _, c := range changes {
		if !ev.Has(c.BeforeSHA256) || !ev.Has(c.AfterSHA256) {
			t.Fatalf("change %s: crops not in the cloud's evidence store", c.ID)
		}
	}

	// Sent again: nothing new.
	if err := compare("--cloud", url, "--token", "demo-admin"); err != nil {
		t.Fatal(err)
	}
	again, _ := db.Store.Cases(ctx, 1000)
	n, _ := db.Store.ReportCount(ctx)
	if len(again) != len(cs) || n != len(changes) {
		t.Fatalf("after sending again: %d cases (was %d), %d reports for %d changes", len(again), len(cs), n, len(changes))
	}

	// Another comparison in a directory of the same name is another device:
	// its changes are not taken for the first job's.
	other := filepath.Join(dir, "other", "job")
	if err := imageryCmd(ctx, []string{"compare", "--before", before, "--after", after, "--tile", "256", "--job", other,
		"--out", filepath.Join(dir, "other.geojson"), "--cloud", url, "--token", "demo-admin"}); err != nil {
		t.Fatal(err)
	}
	j2, err := imagery.OpenJob(other, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j2.DeviceID() == j.DeviceID() {
		t.Fatalf("both jobs file as %s", j.DeviceID())
	}
	if n2, _ := db.Store.ReportCount(ctx); n2 != n+len(j2.Changes()) {
		t.Fatalf("%d reports after the second job's %d changes, want %d", n2, len(j2.Changes()), n+len(j2.Changes()))
	}
}
