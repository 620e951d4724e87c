package ui_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"testing"

	"github.com/gridwatch/gridwatch/edge/wire"
)

// A change found by comparing two dates of imagery reaches the verifier with the place at both
// dates side by side (no cover reference placeholder), and its case page shows both crops.
func TestVerifierSeesImageryBeforeAndAfter(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.engine.Verify(ctx, e.golden, verifier, false, "duplicate"); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../../../edge/wire/testdata/report-change-new.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := wire.DecodeReport(raw)
	if err != nil {
		t.Fatal(err)
	}
	sha := map[string]string{}
	for i, kind := range []string{wire.EvidenceBefore, wire.EvidenceAfter} {
		pic := sceneJPEG(t, int64(20+i), i == 1)
		sum := sha256.Sum256(pic)
		sha[kind] = hex.EncodeToString(sum[:])
		if _, err := e.ev.Put(sha[kind], bytes.NewReader(pic)); err != nil {
			t.Fatal(err)
		}
		r.Evidence[i].SHA256, r.Evidence[i].Bytes = sha[kind], int64(len(pic))
	}
	raw, _ = json.Marshal(r)
	out, err := e.engine.Apply(ctx, r, raw)
	if err != nil || !out.Created {
		t.Fatalf("change report: %+v, %v", out, err)
	}

	tab := e.tab()
	e.as(tab, "demo-verifier", "en", "/ui/queue")
	seen(t, tab, `#queue-item[data-case-id="`+strconv.FormatInt(out.CaseID, 10)+`"]`)
	for kind, caption := range map[string]string{wire.EvidenceBefore: "Before", wire.EvidenceAfter: "After"} {
		sel := `#q-evidence img[src="/api/v1/evidence/` + sha[kind] + `"]`
		waitJS(t, tab, kind+" crop loaded", `(i => i && i.naturalWidth > 0)(document.querySelector('`+sel+`'))`)
		if got := eval[string](t, tab, `document.querySelector('`+sel+`').closest("figure").querySelector("figcaption").textContent`); got != caption {
			t.Errorf("%s crop captioned %q, want %q", kind, got, caption)
		}
	}
	if n := eval[int](t, tab, `document.querySelectorAll("#q-evidence .ref-missing").length`); n != 0 {
		t.Errorf("an imagery change shows %d 'no reference look' placeholders", n)
	}
	shot(t, tab, "queue-imagery-en")

	e.as(tab, "demo-verifier", "en", "/ui/cases/"+strconv.FormatInt(out.CaseID, 10))
	waitJS(t, tab, "the case page", `document.body.dataset.ready === "1"`)
	seen(t, tab, `#case-evidence img[src="/api/v1/evidence/`+sha[wire.EvidenceBefore]+`"]`)
}
