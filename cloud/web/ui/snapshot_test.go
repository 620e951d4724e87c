package ui_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// The fleet page shows each camera's latest snapshot under its box, and says why when a snapshot
// command cannot be sent (this server has no broker wired for commands).
func TestFleetShowsSnapshots(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := time.Now().UTC()
	e.boxOnline("box-chaoyang-0001", now)

	pic := sceneJPEG(t, 7, false)
	sum := sha256.Sum256(pic)
	sha := hex.EncodeToString(sum[:])
	if _, err := e.ev.Put(sha, bytes.NewReader(pic)); err != nil {
		t.Fatal(err)
	}
	r := wire.Report{V: wire.Version, Device: "box-chaoyang-0001", Seq: 900, ID: "snapshot-cmd-1-cam1", Phase: wire.PhaseNew,
		Kind: wire.ReportSnapshot, Camera: "cam1", ObservedAt: now.Add(-time.Minute),
		Evidence: []wire.Evidence{{SHA256: sha, Kind: wire.EvidenceSnapshot, ContentType: "image/jpeg", Bytes: int64(len(pic))}}}
	raw, _ := json.Marshal(r)
	if _, err := e.engine.Apply(ctx, r, raw); err != nil {
		t.Fatal(err)
	}

	tab := e.tab()
	e.as(tab, "demo-admin", "en", "/ui/fleet")
	img := `section.box[data-device="box-chaoyang-0001"] a.snap[data-snap-camera="cam1"] img`
	seen(t, tab, img)
	waitJS(t, tab, "the snapshot to load", `document.querySelector('`+img+`').naturalWidth > 0`)
	if src := eval[string](t, tab, `document.querySelector('`+img+`').getAttribute("src")`); src != "/api/v1/evidence/"+sha {
		t.Fatalf("snapshot src %q, want /api/v1/evidence/%s", src, sha)
	}
	shot(t, tab, "fleet-snapshot-en")

	press(t, tab, `button[data-snap="box-chaoyang-0001"]`)
	waitJS(t, tab, "the command's error", `(document.querySelector('[data-snaps="box-chaoyang-0001"] .muted') || {}).textContent.includes("not wired")`)
	if s := text(t, tab, `[data-snaps="box-chaoyang-0001"]`); !strings.Contains(s, "device commands") {
		t.Fatalf("snapshot note: %q", s)
	}
}

// boxOnline records the box as online with the golden telemetry (its cameras healthy), last heard
// at at, and returns that telemetry.
func (e *env) boxOnline(device string, at time.Time) []byte {
	e.t.Helper()
	tel, err := os.ReadFile("../../../edge/wire/testdata/telemetry.json")
	if err != nil {
		e.t.Fatal(err)
	}
	tel = bytes.Replace(tel, []byte(`"box-chaoyang-0001"`), []byte(strconv.Quote(device)), 1)
	ctx := context.Background()
	if err := e.store.SetDeviceStatus(ctx, store.Device{Device: device, Online: true, StatusAt: at, LastSeen: at}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.SetTelemetry(ctx, device, at, tel); err != nil {
		e.t.Fatal(err)
	}
	return tel
}
