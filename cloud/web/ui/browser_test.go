package ui_test

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
	"math"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/evidence"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/cloud/web"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// The browser tests start a real gridwatch-cloud web server (fiber, SQLite in a temporary directory,
// the demo registry) and drive its pages in Debian's headless Chromium. Screenshots go to
// $GRIDWATCH_ARTIFACTS (default: a temporary directory, removed afterwards).

// env is one server with its store, engine and a browser tab factory.
type env struct {
	t       *testing.T
	base    string
	store   *store.Store
	ev      *evidence.Store
	engine  *cases.Engine
	golden  int64 // the case made from edge/wire/testdata/report-cover-new.json
	seq     uint64
	evBytes map[string][]byte
	stop    func() error // shuts the server down
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "gw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ev, err := evidence.Open(filepath.Join(dir, "evidence"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: db, ev: ev, engine: &cases.Engine{Store: db, Registry: registry.Demo(), Log: quiet}, seq: 100, evBytes: map[string][]byte{}}
	raw, err := os.ReadFile("../../../edge/wire/testdata/report-cover-new.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := wire.DecodeReport(raw)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.engine.Apply(context.Background(), r, raw)
	if err != nil {
		t.Fatal(err)
	}
	e.golden = out.CaseID

	srv := &web.Server{Store: db, Evidence: ev, Engine: e.engine, Users: web.DemoUsers(), Log: quiet}
	app := srv.Handler()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Listener(ln)
	e.stop = func() error { return app.ShutdownWithTimeout(3 * time.Second) }
	t.Cleanup(func() { e.stop() })
	e.base = "http://" + ln.Addr().String()
	return e
}

// detect applies a camera report of a missing cover with an uploaded snapshot, as ingest would.
func (e *env) detect(f registry.Facility, device, camera string, confidence float64) int64 {
	e.t.Helper()
	e.seq++
	snap := sceneJPEG(e.t, int64(e.seq), true)
	sum := sha256.Sum256(snap)
	sha := hex.EncodeToString(sum[:])
	if _, err := e.ev.Put(sha, bytes.NewReader(snap)); err != nil {
		e.t.Fatal(err)
	}
	r := wire.Report{V: wire.Version, Device: device, Seq: e.seq, ID: fmt.Sprintf("%s-%s-%d", camera, f.ID, e.seq), Phase: wire.PhaseNew,
		Kind: wire.ReportCover, Camera: camera, FacilityID: f.ID, State: wire.CoverMissing, Confidence: confidence,
		ObservedAt: time.Now().UTC().Add(-5 * time.Second), Lat: f.Lat, Lon: f.Lon,
		Evidence: []wire.Evidence{{SHA256: sha, Kind: wire.EvidenceSnapshot, ContentType: "image/jpeg", Bytes: int64(len(snap))}}}
	raw, _ := json.Marshal(r)
	out, err := e.engine.Apply(context.Background(), r, raw)
	if err != nil {
		e.t.Fatal(err)
	}
	return out.CaseID
}

func (e *env) status(id int64) string {
	e.t.Helper()
	c, err := e.store.Case(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return c.Status
}

var (
	verifier   = cases.Actor{Name: "li-verifier", Role: cases.Verifier}
	supervisor = cases.Actor{Name: "wang-supervisor", Role: cases.Supervisor}
)

// facility returns a demo cover of the given type near a point.
func facility(t *testing.T, typeCode string, lat, lon float64) registry.Facility {
	t.Helper()
	for _, f := range registry.Demo().NearestFacilities(lat, lon, 200, 3000) {
		if f.TypeCode == typeCode {
			return f
		}
	}
	t.Fatalf("no %s cover near %v,%v", typeCode, lat, lon)
	return registry.Facility{}
}

// seedCity fills the store with a small day of work: detections waiting, dispatched, fixed,
// closed, rejected and overdue across several departments and streets, and two boxes.
func (e *env) seedCity() {
	t := e.t
	ctx := context.Background()
	type spot struct {
		code     string
		lat, lon float64
	}
	spots := []spot{{"0102", 39.935, 116.47}, {"0107", 39.95, 116.50}, {"0105", 39.90, 116.46}, {"0103", 39.98, 116.44},
		{"0110", 39.92, 116.55}, {"0111", 40.00, 116.49}, {"0101", 39.87, 116.48}, {"0105", 39.96, 116.42}}
	var ids []int64
	for i, s := range spots {
		cam := fmt.Sprintf("cam%d", 1+i%2)
		dev := "box-chaoyang-0001"
		if i >= 4 {
			dev = "box-chaoyang-0002"
		}
		ids = append(ids, e.detect(facility(t, s.code, s.lat, s.lon), dev, cam, 0.8+0.02*float64(i)))
	}
	// ids[0], ids[1]: still waiting for the verifier. The golden case and ids[2..]: accepted, then
	// further along.
	for _, id := range append([]int64{e.golden}, ids[2:]...) {
		if _, err := e.engine.Verify(ctx, id, verifier, true, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.engine.Verify(ctx, e.detect(facility(t, "0104", 39.91, 116.52), "box-chaoyang-0002", "cam1", 0.62), verifier, false, "shadow_lighting"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.engine.Verify(ctx, e.detect(facility(t, "0102", 39.94, 116.45), "box-chaoyang-0001", "cam2", 0.58), verifier, false, "occluded"); err != nil {
		t.Fatal(err)
	}
	// Owners fix ids[2] and ids[3]; the supervisor closes ids[2].
	photo := sceneJPEG(t, 7, false)
	sum := sha256.Sum256(photo)
	sha := hex.EncodeToString(sum[:])
	e.ev.Put(sha, bytes.NewReader(photo))
	for _, id := range ids[2:4] {
		ks, _ := e.store.CaseTasks(ctx, id)
		for _, k := range ks {
			if k.Role == cases.RoleOwner {
				if _, err := e.engine.ReportFixed(ctx, k.ID, cases.Actor{Name: "desk", Role: cases.Department, Dept: k.Dept}, "new cover fitted", sha); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if _, err := e.engine.Check(ctx, ids[2], supervisor, true, "cover in place", sha); err != nil {
		t.Fatal(err)
	}
	// One case dispatched seven hours ago: past its limit, overdue.
	past := *e.engine
	past.Now = func() time.Time { return time.Now().UTC().Add(-7 * time.Hour) }
	old := e.detect(facility(t, "0107", 39.93, 116.43), "box-chaoyang-0001", "cam1", 0.91)
	if _, err := past.Verify(ctx, old, verifier, true, "clear"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.engine.MarkOverdue(ctx); err != nil {
		t.Fatal(err)
	}
	// Boxes: one healthy, one silent for ten minutes.
	tel, err := os.ReadFile("../../../edge/wire/testdata/telemetry.json")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	e.store.SetDeviceStatus(ctx, store.Device{Device: "box-chaoyang-0001", Online: true, StatusAt: now, LastSeen: now, Software: "gridwatch-edge 0.9.2", ConfigVer: "7"})
	e.store.SetTelemetry(ctx, "box-chaoyang-0001", now, tel)
	e.store.SetDeviceStatus(ctx, store.Device{Device: "box-chaoyang-0002", Online: true, StatusAt: now.Add(-10 * time.Minute), LastSeen: now.Add(-10 * time.Minute), Software: "gridwatch-edge 0.9.1", ConfigVer: "6"})
	tel2 := bytes.Replace(tel, []byte(`"box-chaoyang-0001"`), []byte(`"box-chaoyang-0002"`), 1)
	tel2 = bytes.Replace(tel2, []byte(`"grade": "good"`), []byte(`"grade": "poor"`), 1)
	e.store.SetTelemetry(ctx, "box-chaoyang-0002", now.Add(-10*time.Minute), tel2)
}

// sceneJPEG draws a street seen from a pole camera: asphalt, lane marks, a kerb and a cover, missing
// (a dark hole) or in place.
func sceneJPEG(t *testing.T, seed int64, missing bool) []byte {
	t.Helper()
	const w, h = 640, 360
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewSource(seed))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			g := uint8(92 + rng.Intn(18) + y/12)
			c := color.RGBA{g, g, g + 4, 255}
			if y < 70 {
				c = color.RGBA{uint8(150 + rng.Intn(10)), uint8(146 + rng.Intn(10)), 138, 255} // pavement
			} else if y < 78 {
				c = color.RGBA{200, 200, 196, 255} // kerb
			}
			if y > 200 && y < 212 && (x/60)%2 == 0 {
				c = color.RGBA{230, 230, 220, 255} // lane mark
			}
			img.Set(x, y, c)
		}
	}
	cx, cy := 330.0+float64(seed%40), 140.0
	for y := 100; y < 185; y++ {
		for x := 250; x < 420; x++ {
			d := math.Pow((float64(x)-cx)/62, 2) + math.Pow((float64(y)-cy)/30, 2)
			switch {
			case missing && d < 1:
				v := uint8(18 + rng.Intn(12))
				img.Set(x, y, color.RGBA{v, v, v, 255})
			case missing && d < 1.15:
				img.Set(x, y, color.RGBA{120, 110, 96, 255})
			case !missing && d < 1:
				v := uint8(58 + rng.Intn(10))
				if int(float64(x)+float64(y))%9 < 2 {
					v += 30
				}
				img.Set(x, y, color.RGBA{v, v, v + 6, 255})
			}
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 82}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ---- the browser ----

var (
	browserOnce sync.Once
	browserCtx  context.Context
	browserErr  error
)

// browser is one headless Chromium shared by all tests of the package, with a fresh profile.
func browser(t *testing.T) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	browserOnce.Do(func() {
		path, err := exec.LookPath("chromium")
		if err != nil {
			browserErr = fmt.Errorf("chromium not found (make deps installs Debian's chromium): %w", err)
			return
		}
		profile, err := os.MkdirTemp("", "gridwatch-chromium-")
		if err != nil {
			browserErr = err
			return
		}
		opts := []chromedp.ExecAllocatorOption{
			chromedp.ExecPath(path),
			chromedp.UserDataDir(profile),
			chromedp.Flag("headless", true),
			chromedp.Flag("no-sandbox", true),
			chromedp.Flag("disable-gpu", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("no-first-run", true),
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("no-default-browser-check", true),
			chromedp.Flag("hide-scrollbars", true),
			chromedp.Flag("font-render-hinting", "none"),
			chromedp.WindowSize(1600, 1000),
		}
		alloc, _ := chromedp.NewExecAllocator(context.Background(), opts...)
		browserCtx, _ = chromedp.NewContext(alloc)
		browserErr = chromedp.Do(browserCtx) // starts the browser
	})
	if browserErr != nil {
		t.Fatal(browserErr)
	}
	return browserCtx
}

// tab opens a new tab; JavaScript exceptions and console errors on the page fail the test.
func (e *env) tab() context.Context {
	e.t.Helper()
	ctx, cancel := chromedp.NewContext(browser(e.t))
	e.t.Cleanup(cancel)
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			e.t.Errorf("javascript exception at %s:%d: %s", d.URL, d.LineNumber+1, msg)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				e.t.Errorf("console.error: %s", strings.Join(parts, " "))
			}
		}
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return ctx
}

// as opens path signed in with token in language lang ("zh" or "en").
func (e *env) as(ctx context.Context, token, lang, path string) {
	e.t.Helper()
	run(e.t, ctx, chromedp.Navigate(e.base+"/ui/login"))
	waitJS(e.t, ctx, "the login page", `location.pathname === "/ui/login" && document.readyState === "complete"`)
	run(e.t, ctx,
		js(fmt.Sprintf(`localStorage.setItem("gw_token", %q); localStorage.setItem("gw_lang", %q);
			document.cookie = "gw_lang=%s; path=/"; true`, token, lang, lang)),
		chromedp.Navigate(e.base+path),
	)
	waitJS(e.t, ctx, path+" ready", `document.body && document.body.dataset.ready === "1"`)
}

// waitJS polls a JavaScript condition until it is true; errors (a page between two documents)
// count as false.
func waitJS(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := chromedp.Run(sctx, chromedp.Evaluate[bool](`!!(`+cond+`)`))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			diag, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`location.href + " " + JSON.stringify(document.body && document.body.dataset) + " " +
				JSON.stringify(performance.getEntriesByType("resource").map(e => [e.name.replace(/^http:\/\/[^/]+/, ""), Math.round(e.startTime), Math.round(e.duration)]))`))
			cancel()
			t.Fatalf("timed out waiting for %s (%s): last error %v; page: %s", what, cond, err, diag)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stepTimeout bounds every browser step, so a page that never gets ready fails instead of hanging.
// The machines tests run on are shared and sometimes loaded far beyond their cores: be generous.
const stepTimeout = 45 * time.Second

func run(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func visible(css string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(css))
}
func click(css string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(css)) }

// press clicks an element in one step in the page: the lists re-render on every live update, so a
// node found in one protocol call may be gone in the next.
func press(t *testing.T, ctx context.Context, css string) {
	t.Helper()
	q := fmt.Sprintf("document.querySelector(%q)", css)
	waitJS(t, ctx, css, q+" && ("+q+".click(), true)")
}

// seen waits until an element matching css is in the page and visible. It asks in one step in the
// page, so lists that re-render on live updates cannot pull a node out from under it.
func seen(t *testing.T, ctx context.Context, css string) {
	t.Helper()
	waitJS(t, ctx, css, fmt.Sprintf("(el => el && el.checkVisibility())(document.querySelector(%q))", css))
}

// submitDialog submits the open action dialog and waits until it has closed (the action succeeded).
func submitDialog(t *testing.T, ctx context.Context) {
	t.Helper()
	waitJS(t, ctx, "the dialog", `document.querySelector("#dlg").open`)
	press(t, ctx, "#dlg-ok")
	waitJS(t, ctx, "the dialog to close", `!document.querySelector("#dlg").open`)
}

// js runs a script for its effect.
func js(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[any](expr)(ctx, t)
		return err
	})
}

// shot saves a full-page PNG under $GRIDWATCH_ARTIFACTS, or the test's temporary directory.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("GRIDWATCH_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, chromedp.Sleep(300*time.Millisecond))
	png := get(t, ctx, chromedp.FullScreenshot(100))
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", p)
}

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	waitJS(t, ctx, sel, fmt.Sprintf("document.querySelector(%q)", sel))
	return eval[string](t, ctx, fmt.Sprintf("document.querySelector(%q).textContent", sel))
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	return get(t, ctx, chromedp.Evaluate[T](js))
}
