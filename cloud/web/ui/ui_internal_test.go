package ui

import (
	"context"
	"io"
	"io/fs"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
)

func page(t *testing.T, u *UI, path, lang string) string {
	t.Helper()
	app := fiber.New()
	u.Register(app)
	req := httptest.NewRequest("GET", path, nil)
	if lang != "" {
		req.Header.Set("Cookie", "gw_lang="+lang)
	}
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: HTTP %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

func newUI(t *testing.T) *UI {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "gw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	u, err := New(Config{Store: db, Registry: registry.Demo()})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Without the npm libraries (make ui not run) the pages say so and load no missing script.
func TestMissingVendorFilesShowNotice(t *testing.T) {
	u := newUI(t)
	u.vendor = vendorFiles{}
	for _, p := range []string{"/ui/map", "/ui/screen", "/ui/cases/1"} {
		body := page(t, u, p, "en")
		if !strings.Contains(body, `id="vendor-missing"`) || !strings.Contains(body, "run make ui") {
			t.Fatalf("%s: no notice to run make ui", p)
		}
		if strings.Contains(body, "/vendor/") {
			t.Fatalf("%s: refers to a vendor file that is not there", p)
		}
	}
	u.vendor = vendorFiles{Leaflet: true, ECharts: true}
	if body := page(t, u, "/ui/map", "en"); strings.Contains(body, `id="vendor-missing"`) || !strings.Contains(body, "/ui/static/vendor/leaflet/leaflet.js") {
		t.Fatal("with the libraries: notice shown or Leaflet not loaded")
	}
}

// The shell is rendered in the language of the cookie, Chinese by default, and every key a
// template or script uses exists in both languages.
func TestLanguages(t *testing.T) {
	u := newUI(t)
	if body := page(t, u, "/ui/queue", ""); !strings.Contains(body, `lang="zh-CN"`) || !strings.Contains(body, "核实队列") {
		t.Fatal("default page is not Chinese")
	}
	if body := page(t, u, "/ui/queue", "en"); !strings.Contains(body, `lang="en"`) || !strings.Contains(body, "Verify queue") {
		t.Fatal("gw_lang=en page is not English")
	}
	for k, v := range messages {
		if v[0] == "" || v[1] == "" {
			t.Errorf("message %q lacks a language", k)
		}
	}
	// Keys spelled out in the templates and scripts must exist.
	seen := 0
	keyRE := regexp.MustCompile(`(?:GW\.t\(|\.T )"([a-z_]+\.[a-z_.]+)"`)
	fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(path, "vendor/") || !(strings.HasSuffix(path, ".js") || strings.HasSuffix(path, ".html")) {
			return err
		}
		b, _ := fs.ReadFile(files, path)
		for _, m := range keyRE.FindAllStringSubmatch(string(b), -1) {
			seen++
			if _, ok := messages[m[1]]; !ok {
				t.Errorf("%s: message %q is not defined", path, m[1])
			}
		}
		return nil
	})
	if seen < 100 {
		t.Fatalf("found only %d message keys in the templates and scripts", seen)
	}
}
