package ui_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/cloud/cases"
)

// A box that went silent has a device-fault case: the fleet page links it on that box only, and the
// map lists it with the other open cases.
func TestFleetLinksDeviceFaultCase(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := time.Now().UTC()
	e.boxOnline("box-chaoyang-0001", now)
	tel2 := e.boxOnline("box-chaoyang-0002", now.Add(-10*time.Minute))
	// The camera's place, as a box's telemetry now says it.
	tel2 = bytes.Replace(tel2, []byte(`"grade": "good"`), []byte(`"grade": "good", "lat": 39.92195, "lon": 116.44352`), 1)
	e.store.SetTelemetry(ctx, "box-chaoyang-0002", now.Add(-10*time.Minute), tel2)

	// The watchdog has run for five minutes (silence counts from its start).
	engine := *e.engine
	at := now.Add(-5 * time.Minute)
	engine.Now = func() time.Time { return at }
	w := &cases.Watchdog{Engine: &engine, Log: quiet}
	if _, err := w.Check(ctx); err != nil {
		t.Fatal(err)
	}
	at = now
	if n, err := w.Check(ctx); err != nil || n.Opened != 1 {
		t.Fatalf("watchdog: %+v, %v; want one case opened", n, err)
	}
	cs, err := e.store.OpenCasesWithKeyPrefix(ctx, "device:")
	if err != nil || len(cs) != 1 {
		t.Fatalf("device-fault cases %v, %v", cs, err)
	}
	id := cs[0].ID

	tab := e.tab()
	for _, lang := range []string{"zh", "en"} {
		e.as(tab, "demo-admin", lang, "/ui/fleet")
		seen(t, tab, fmt.Sprintf(`section.box[data-device="box-chaoyang-0002"] a[data-fault-case="%d"][href="/ui/cases/%d"]`, id, id))
		if n := eval[int](t, tab, `document.querySelectorAll('section.box[data-device="box-chaoyang-0001"] a[data-fault-case]').length`); n != 0 {
			t.Errorf("%s: the healthy box shows %d device-fault links", lang, n)
		}
		shot(t, tab, "fleet-device-fault-"+lang)
	}
	e.as(tab, "demo-dispatcher", "en", "/ui/map")
	seen(t, tab, fmt.Sprintf(`#case-list li[data-case-id="%d"]`, id))
}
