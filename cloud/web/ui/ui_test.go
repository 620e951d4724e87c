package ui_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
)

// A verifier signs in with the demo token, accepts the golden detection with the keyboard (the case
// is dispatched to the power company and the street office) and rejects the next one with R, 3.
func TestVerifierDecidesWithKeyboard(t *testing.T) {
	e := newEnv(t)
	second := e.detect(registry.DemoAnchors()[1], "box-chaoyang-0001", "cam1", 0.88)
	ctx := e.tab()

	run(t, ctx,
		chromedp.Navigate(e.base+"/ui/login"),
		visible(`button.use-token[data-token="demo-verifier"]`),
		click(`button.use-token[data-token="demo-verifier"]`),
	)
	// Signing in as a verifier leads to the queue.
	waitJS(t, ctx, "the queue after sign-in", `location.pathname === "/ui/queue" && document.body.dataset.ready === "1"`)
	seen(t, ctx, fmt.Sprintf(`#queue-item[data-case-id="%d"]`, e.golden))
	if got := text(t, ctx, "#queue-left"); got != "2" {
		t.Fatalf("queue shows %s waiting, want 2", got)
	}
	shot(t, ctx, "queue-zh")

	run(t, ctx, chromedp.KeyEvent("a"))
	eventually(t, "the golden case dispatched", 5*time.Second, func() bool { return e.status(e.golden) == cases.StatusDispatched })
	seen(t, ctx, fmt.Sprintf(`#queue-item[data-case-id="%d"]`, second))
	ks, err := e.store.CaseTasks(context.Background(), e.golden)
	if err != nil || len(ks) != 2 || ks[0].Dept != "dept-power" {
		t.Fatalf("tasks after accept: %+v %v", ks, err)
	}

	run(t, ctx, chromedp.KeyEvent("r"))
	seen(t, ctx, "#reason-pick")
	run(t, ctx, chromedp.KeyEvent("3"))
	eventually(t, "the second case rejected", 5*time.Second, func() bool { return e.status(second) == cases.StatusRejected })
	evs, _ := e.store.Events(context.Background(), second)
	if last := evs[len(evs)-1]; last.Action != "rejected" || last.Note != "occluded" {
		t.Fatalf("rejection logged as %+v", last)
	}
	seen(t, ctx, "#queue-empty")
	// Per-camera counts: box-chaoyang-0001/cam1 has one true and one false detection.
	seen(t, ctx, `#cam-stats tr[data-cam="box-chaoyang-0001/cam1"]`)
	eventually(t, "camera counts 1 true, 1 false", 5*time.Second, func() bool {
		return eval[string](t, ctx, `[...document.querySelectorAll('#cam-stats tr[data-cam="box-chaoyang-0001/cam1"] td')].map(td => td.textContent).join("|")`) ==
			"box-chaoyang-0001 / cam1|1|1|0|50%"
	})
}

// The power company's desk uploads an after-photo (sha256 computed in the browser, PUT to the
// evidence store) and reports the fix: the case waits for the check.
func TestDepartmentReportsFixedWithPhoto(t *testing.T) {
	e := newEnv(t)
	ctx0 := context.Background()
	if _, err := e.engine.Verify(ctx0, e.golden, verifier, true, ""); err != nil {
		t.Fatal(err)
	}
	ks, _ := e.store.Tasks(ctx0, store.TaskFilter{Dept: "dept-power"})
	if len(ks) != 1 {
		t.Fatalf("power has %d tasks", len(ks))
	}
	photo := filepath.Join(t.TempDir(), "after.jpg")
	jpg := sceneJPEG(t, 3, false)
	if err := os.WriteFile(photo, jpg, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(jpg)
	sha := hex.EncodeToString(sum[:])

	ctx := e.tab()
	e.as(ctx, "demo-power", "en", "/ui/tasks")
	row := fmt.Sprintf(`tr[data-task-id="%d"]`, ks[0].ID)
	seen(t, ctx, row+` button[data-act="fixed"]`)
	if s := text(t, ctx, row+" td.timeleft"); !strings.Contains(s, "left") {
		t.Fatalf("time left shows %q", s)
	}
	shot(t, ctx, "tasks-en")
	press(t, ctx, row+` button[data-act="fixed"]`)
	run(t, ctx,
		visible("#photo"),
		chromedp.SetUploadFiles(chromedp.CSS("#photo"), []string{photo}),
		chromedp.SendKeys(chromedp.CSS("#note"), "new cover fitted, locked"),
	)
	shot(t, ctx, "tasks-fixed-dialog-en")
	submitDialog(t, ctx)
	eventually(t, "the case fixed", 10*time.Second, func() bool { return e.status(e.golden) == cases.StatusFixed })
	if !e.ev.Has(sha) {
		t.Fatalf("after-photo %s not in the evidence store", sha)
	}
	ks, _ = e.store.Tasks(ctx0, store.TaskFilter{Dept: "dept-power"})
	if ks[0].Photo != sha || ks[0].Note != "new cover fitted, locked" || ks[0].Status != cases.TaskDone {
		t.Fatalf("task after fix: %+v", ks[0])
	}
	seen(t, ctx, "#open-tasks-empty")

	// The case page shows the photo and the step in its timeline.
	run(t, ctx, chromedp.Navigate(fmt.Sprintf("%s/ui/cases/%d", e.base, e.golden)))
	waitJS(t, ctx, "the case page", `document.body.dataset.ready === "1"`)
	seen(t, ctx, `#case-evidence img[src="/api/v1/evidence/`+sha+`"]`)
	seen(t, ctx, `#timeline li.tl-fixed`)
	shot(t, ctx, "case-en")
}

// The big screen shows department, street and supervisor rankings from the scores API, today's counts and the
// overdue case, in both languages.
func TestBigScreenShowsRankings(t *testing.T) {
	e := newEnv(t)
	e.seedCity()
	ctx := e.tab()
	for _, lang := range []string{"zh", "en"} {
		e.as(ctx, "demo-admin", lang, "/ui/screen")
		n := eval[int](t, ctx, `document.querySelectorAll("#rank-depts tr[data-party]").length`)
		m := eval[int](t, ctx, `document.querySelectorAll("#rank-streets tr[data-party]").length`)
		if n < 3 || m < 3 {
			t.Fatalf("%s: rankings have %d departments and %d streets", lang, n, m)
		}
		// The seeded supervisor checked one fixed case: it is ranked, with that check on time.
		if s := text(t, ctx, "#rank-supervisors"); !strings.Contains(s, "100%") || eval[int](t, ctx, `document.querySelectorAll("#rank-supervisors tr[data-party]").length`) != 1 {
			t.Fatalf("%s: supervisor ranking: %s", lang, s)
		}
		want := map[string]string{"zh": "国网北京市电力公司朝阳供电公司", "en": "Chaoyang Power Supply Co."}[lang]
		if s := text(t, ctx, "#rank-depts"); !strings.Contains(s, want) {
			t.Fatalf("%s: department ranking lacks %q: %s", lang, want, s)
		}
		if got := text(t, ctx, "#k-overdue"); got != "1" {
			t.Fatalf("%s: overdue count %q, want 1", lang, got)
		}
		if got := text(t, ctx, "#k-new"); got != "12" {
			t.Fatalf("%s: new today %q, want 12", lang, got)
		}
		if eval[bool](t, ctx, `!!window.echarts`) && eval[int](t, ctx, `document.querySelectorAll("#chart-depts canvas").length`) == 0 {
			t.Fatalf("%s: ECharts is installed but drew no ranking chart", lang)
		}
		shot(t, ctx, "screen-"+lang)
	}
}

// A new detection reaches an open queue and an open map through the server-sent events, without a
// reload of either page.
func TestNewDetectionArrivesLive(t *testing.T) {
	e := newEnv(t)
	queue := e.tab()
	e.as(queue, "demo-verifier", "zh", "/ui/queue")
	mapTab := e.tab()
	e.as(mapTab, "demo-verifier", "zh", "/ui/map")
	for _, ctx := range []context.Context{queue, mapTab} {
		seen(t, ctx, "#live.on")
		run(t, ctx, js(`window.__noReload = 42`))
	}
	if got := text(t, queue, "#queue-left"); got != "1" {
		t.Fatalf("queue shows %s waiting, want 1", got)
	}
	start := time.Now()
	id := e.detect(registry.DemoAnchors()[2], "box-chaoyang-0001", "cam1", 0.9)
	seen(t, queue, "#nav-queue-count")
	eventually(t, "the queue to count 2", 5*time.Second, func() bool { return text(t, queue, "#queue-left") == "2" })
	eventually(t, "the map to show 2 cases", 5*time.Second, func() bool {
		return eval[string](t, mapTab, `document.body.dataset.cases`) == "2" &&
			eval[bool](t, mapTab, fmt.Sprintf(`!!document.querySelector('#case-list li[data-case-id="%d"]')`, id))
	})
	t.Logf("new detection on the queue and the map %v after it was stored", time.Since(start).Round(time.Millisecond))
	for _, ctx := range []context.Context{queue, mapTab} {
		if eval[int](t, ctx, `window.__noReload || 0`) != 42 {
			t.Fatal("the page reloaded")
		}
	}
	// The queue keeps the case on screen and has the new one next: accepting moves to it at once.
	run(t, queue, chromedp.KeyEvent(kb.Enter))
	seen(t, queue, fmt.Sprintf(`#queue-item[data-case-id="%d"]`, id))
}

// Every page renders in both languages with the seeded city, without script errors; the screenshots
// are for people to look at.
func TestPagesInBothLanguages(t *testing.T) {
	e := newEnv(t)
	e.seedCity()
	ctx := e.tab()
	type page struct {
		name, token, path, check string
	}
	pages := []page{
		{"map", "demo-dispatcher", "/ui/map", `#case-list li`},
		{"map-zoom", "demo-dispatcher", "/ui/map?lat=39.9219&lon=116.4436&z=16.5", `#case-list li`},
		{"queue", "demo-verifier", "/ui/queue", `#queue-item`},
		{"dispatch", "demo-dispatcher", "/ui/dispatch", `#inprogress tr[data-case-id]`},
		{"tasks-street", "demo-sanlitun", "/ui/tasks", `#open-tasks tr[data-task-id]`},
		{"case", "demo-supervisor", fmt.Sprintf("/ui/cases/%d", e.golden), `#timeline li`},
		{"fleet", "demo-admin", "/ui/fleet", `section.box[data-device="box-chaoyang-0002"][data-online="false"]`},
		{"login", "demo-admin", "/ui/login", `#demo-tokens`},
	}
	for _, lang := range []string{"zh", "en"} {
		for _, p := range pages {
			e.as(ctx, p.token, lang, p.path)
			seen(t, ctx, p.check)
			if got := eval[string](t, ctx, `document.documentElement.lang`); got != map[string]string{"zh": "zh-CN", "en": "en"}[lang] {
				t.Fatalf("%s: html lang %q in %s", p.name, got, lang)
			}
			if strings.HasPrefix(p.name, "map") && eval[bool](t, ctx, `!!window.L`) {
				if n := eval[int](t, ctx, `document.querySelectorAll(".leaflet-overlay-pane canvas, .leaflet-overlay-pane svg").length`); n == 0 {
					t.Fatalf("%s: Leaflet drew no vector layer", p.name)
				}
			}
			// The fleet page tells the silent box from the healthy one.
			if p.name == "fleet" && !eval[bool](t, ctx, `document.querySelector('section.box[data-device="box-chaoyang-0001"]').dataset.online === "true"`) {
				t.Fatal("the box with fresh telemetry shows offline")
			}
			shot(t, ctx, p.name+"-"+lang)
		}
	}
}

// The dispatcher re-dispatches a case the power company returned and approves a street office's
// extension request.
func TestDispatcherRedispatchesAndDecidesExtension(t *testing.T) {
	e := newEnv(t)
	ctx0 := context.Background()
	if _, err := e.engine.Verify(ctx0, e.golden, verifier, true, ""); err != nil {
		t.Fatal(err)
	}
	ks, _ := e.store.CaseTasks(ctx0, e.golden)
	var owner, street store.Task
	for _, k := range ks {
		if k.Role == cases.RoleOwner {
			owner = k
		} else {
			street = k
		}
	}
	if _, err := e.engine.RequestExtension(ctx0, street.ID, cases.Actor{Name: "office", Role: cases.StreetRole, Dept: street.Dept}, 2, "barriers on order"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.engine.Return(ctx0, owner.ID, cases.Actor{Name: "desk", Role: cases.Department, Dept: owner.Dept}, "not_ours: a telecom cover"); err != nil {
		t.Fatal(err)
	}

	ctx := e.tab()
	e.as(ctx, "demo-dispatcher", "en", "/ui/dispatch")
	row := fmt.Sprintf(`#returned tr[data-case-id="%d"]`, e.golden)
	waitJS(t, ctx, "the returned case and the extension request", fmt.Sprintf(`document.querySelector(%q) && document.querySelector('#extensions button[data-act="approve"]')`, row))
	shot(t, ctx, "dispatch-returned-en")
	waitJS(t, ctx, "telecom chosen", fmt.Sprintf(`(document.querySelector(%q).value = "dept-telecom") && true`, row+" select.redispatch-dept"))
	press(t, ctx, row+` button[data-act="redispatch"]`)
	submitDialog(t, ctx)
	eventually(t, "the case re-dispatched to telecom", 10*time.Second, func() bool {
		c, _ := e.store.Case(ctx0, e.golden)
		return c.Status == cases.StatusDispatched && c.OwnerDepartment == "dept-telecom"
	})
	press(t, ctx, `#extensions button[data-act="approve"]`)
	submitDialog(t, ctx)
	eventually(t, "the extension approved", 10*time.Second, func() bool {
		ks, _ := e.store.CaseTasks(ctx0, e.golden)
		for _, k := range ks {
			if k.ID == street.ID {
				return k.ExtRequest == "" && k.ExtensionH == 2
			}
		}
		return false
	})
}
