// Package ui owns the operations center's pages: server-rendered shells in Chinese and English with small
// vanilla scripts that call the JSON API (map, verifier queue, department and dispatcher desks, case page,
// fleet, big screen, login), the static files they load (embedded, with Leaflet and ECharts copied in by
// hack/ui-assets.sh), and the read-only endpoints only the pages need: registry geometry for the map
// (streets, grid cells and facilities in a bounding box), the departments, streets and categories, per-camera verification counts
// and today's figures. It only reads the store and the registry; every change goes through the workflow API.
package ui

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/cloud/taxonomy"
)

// Prefix is where the pages live.
const Prefix = "/ui"

// DemoToken is a well-known token listed on the login page when the server runs with demo tokens.
type DemoToken struct {
	Token string `json:"token"`
	Name  string `json:"name"`
	Role  string `json:"role"`
	Dept  string `json:"dept,omitempty"`
}

// Config is what the pages need from the server.
type Config struct {
	Store    *store.Store
	Registry *registry.Registry
	Log      *slog.Logger
	// DemoTokens are listed on the login page; nil unless the server uses the demo tokens.
	DemoTokens []DemoToken
	// Taxonomy names the case categories (nil: the built-in table, as cases.Engine uses).
	Taxonomy *taxonomy.Taxonomy
	// TelemetryInterval is how often boxes send telemetry; a box silent for 3× this is offline.
	// Zero: 30 s, the edge agent's default status_every.
	TelemetryInterval time.Duration
	// Fleet, when set, places the map's cameras where the registry says they stand (nil: where
	// their reports are).
	Fleet *registry.Fleet
	// Location is the time zone of "today" on the big screen (nil: the server's local zone).
	Location *time.Location
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// UI serves the pages and their endpoints.
type UI struct {
	cfg    Config
	static fs.FS
	vendor vendorFiles
	pages  map[string]*template.Template

	geoOnce sync.Once
	geo     *geoData
	geoErr  error
}

//go:embed static templates
var files embed.FS

// vendorFiles says which third-party libraries were copied in by make ui.
type vendorFiles struct {
	Leaflet bool `json:"leaflet"`
	ECharts bool `json:"echarts"`
}

// pageNames are the pages, each a template file that fills the layout's blocks.
var pageNames = []string{"map", "queue", "tasks", "dispatch", "case", "fleet", "screen", "login"}

// New builds the UI; it parses the templates, so a broken template fails here, not on a request.
func New(cfg Config) (*UI, error) {
	if cfg.Store == nil || cfg.Registry == nil {
		return nil, errors.New("ui: Store and Registry are required")
	}
	if cfg.TelemetryInterval <= 0 {
		cfg.TelemetryInterval = 30 * time.Second
	}
	if cfg.Taxonomy == nil {
		cfg.Taxonomy = taxonomy.Default()
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	static, err := fs.Sub(files, "static")
	if err != nil {
		return nil, err
	}
	u := &UI{cfg: cfg, static: static, pages: map[string]*template.Template{}}
	u.vendor.Leaflet = exists(static, "vendor/leaflet/leaflet.js") && exists(static, "vendor/leaflet/leaflet.css")
	u.vendor.ECharts = exists(static, "vendor/echarts/echarts.min.js")
	base, err := template.New("layout.html").Funcs(template.FuncMap{
		"json": func(v any) (template.JS, error) {
			b, err := json.Marshal(v)
			return template.JS(b), err
		},
	}).ParseFS(files, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	for _, name := range pageNames {
		t, err := template.Must(base.Clone()).ParseFS(files, "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		u.pages[name] = t
	}
	return u, nil
}

func exists(f fs.FS, name string) bool {
	st, err := fs.Stat(f, name)
	return err == nil && !st.IsDir() && st.Size() > 0
}

// Register adds the pages under /ui and the pages' endpoints under /api/v1.
func (u *UI) Register(app fiber.Router) {
	app.Get(Prefix, func(c *fiber.Ctx) error { return c.Redirect(Prefix+"/map", fiber.StatusFound) })
	app.Get(Prefix+"/", func(c *fiber.Ctx) error { return c.Redirect(Prefix+"/map", fiber.StatusFound) })
	app.Use(Prefix+"/static", filesystem.New(filesystem.Config{
		Root:   http.FS(u.static),
		MaxAge: 300,
	}))
	for _, name := range pageNames {
		if name == "case" {
			continue
		}
		app.Get(Prefix+"/"+name, u.page(name))
	}
	app.Get(Prefix+"/cases/:id", u.page("case"))

	api := app.Group("/api/v1")
	api.Get("/map/streets", u.mapStreets)
	api.Get("/map/cells", u.mapCells)
	api.Get("/map/facilities", u.mapFacilities)
	api.Get("/map/cameras", u.mapCameras)
	api.Get("/departments", u.departments)
	api.Get("/stats/cameras", u.cameraStats)
	api.Get("/stats/today", u.todayStats)
}

// pageData is what every page template gets.
type pageData struct {
	Lang   string
	Page   string
	Title  string
	Vendor vendorFiles
	Demo   []DemoToken
	CaseID int64
	GW     map[string]any // window.GW, the scripts' configuration
	dict   map[string]string
}

// T translates a key into the page's language.
func (p pageData) T(key string) string {
	if s, ok := p.dict[key]; ok {
		return s
	}
	return key
}

// Other is the language the toggle switches to.
func (p pageData) Other() string {
	if p.Lang == "zh" {
		return "en"
	}
	return "zh"
}

func (u *UI) page(name string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		lang := c.Cookies("gw_lang")
		if lang != "en" && lang != "zh" {
			lang = "zh"
		}
		d := pageData{Lang: lang, Page: name, Vendor: u.vendor, dict: dictionary(lang)}
		d.Title = d.T("page." + name)
		if name == "case" {
			id, err := strconv.ParseInt(c.Params("id"), 10, 64)
			if err != nil || id < 1 {
				return fiber.NewError(fiber.StatusBadRequest, "id: not a case number")
			}
			d.CaseID = id
		}
		if name == "login" {
			d.Demo = u.cfg.DemoTokens
		}
		d.GW = map[string]any{
			"lang": lang, "page": name, "caseId": d.CaseID, "vendor": u.vendor, "i18n": d.dict,
			"demo":               u.cfg.DemoTokens != nil,
			"telemetryIntervalS": u.cfg.TelemetryInterval.Seconds(),
			"reasons":            rejectReasons,
		}
		var buf bytes.Buffer
		if err := u.pages[name].ExecuteTemplate(&buf, "layout.html", d); err != nil {
			return err
		}
		c.Type("html", "utf-8")
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Send(buf.Bytes())
	}
}

// rejectReasons are the verifier's reason codes, keys 1-5 on the queue page.
var rejectReasons = []string{"false_detection", "shadow_lighting", "occluded", "duplicate", "outside_jurisdiction"}
