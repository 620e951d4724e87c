// Package web serves the operations center over HTTP with fiber: the JSON API
// under /api/v1, the evidence store, and the pages people work in.
package web

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/evidence"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/cloud/telemetry"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// Server holds what the handlers need.
type Server struct {
	Store    *store.Store
	Evidence *evidence.Store
	Engine   *cases.Engine
	Users    *Users
	// Commands sends snapshot and reload to boxes (nil: unavailable).
	Commands Commander
	Weights  cases.Weights // scoring weights (zero: cases.DefaultWeights)
	// SupervisorWeights weight supervisors' indicators (zero: cases.DefaultSupervisorWeights).
	SupervisorWeights cases.SupervisorWeights
	Configs           ConfigPusher       // nil: config push unavailable
	History           *telemetry.History // nil: history answers 503 "needs InfluxDB"
	// Imagery runs imagery comparison jobs (nil: their endpoints answer 503).
	Imagery ImageryJobs
	// Status, when set, answers GET /api/v1/status: what the cloud runs
	// (registry version, broker identity and refusals, ingest counters).
	Status func() any
	Log    *slog.Logger

	app *fiber.App
}

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"since": func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
	"local": func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") },
}).ParseFS(templateFS, "templates/*.html"))

// CaseView is a case as the API shows it.
type CaseView struct {
	store.Case
	EvidenceURL string `json:"evidence_url"`
}

func view(c store.Case) CaseView {
	v := CaseView{Case: c}
	if c.EvidenceSHA256 != "" {
		v.EvidenceURL = "/api/v1/evidence/" + c.EvidenceSHA256
	}
	return v
}

// apiError is the error body of every failed API call.
type apiError struct {
	Error string `json:"error"`
}

// Handler builds the fiber app (also used by tests through app.Test).
func (s *Server) Handler() *fiber.App {
	if s.app != nil {
		return s.app
	}
	app := fiber.New(fiber.Config{
		BodyLimit:             evidence.MaxBytes,
		DisableStartupMessage: true,
		ReadTimeout:           30 * time.Second,
		WriteTimeout:          30 * time.Second,
		ErrorHandler: func(c *fiber.Ctx, err error) error {
			code := fiber.StatusInternalServerError
			var fe *fiber.Error
			if errors.As(err, &fe) {
				code = fe.Code
			}
			if code >= 500 {
				s.Log.Error("http", "path", c.Path(), "err", err)
			}
			return c.Status(code).JSON(apiError{Error: err.Error()})
		},
	})
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.SendString("ok") })
	api := app.Group("/api/v1")
	api.Get("/cases", s.listCases)
	api.Get("/cases/:id", s.getCase)
	api.Get("/evidence/:sha", s.getEvidence)
	api.Put("/evidence/:sha", s.putEvidence)
	api.Get("/devices", s.listDevices)
	api.Get("/cameras", s.listCameras)
	api.Get("/status", func(c *fiber.Ctx) error {
		if s.Status == nil {
			return fiber.NewError(fiber.StatusNotFound, "status: not wired in this server")
		}
		return c.JSON(s.Status())
	})
	api.Get("/tasks", s.listTasks)
	api.Get("/scores", s.scores)
	api.Get("/taxonomy", func(c *fiber.Ctx) error { return c.JSON(s.Engine.Categories()) })
	api.Get("/openapi.json", func(c *fiber.Ctx) error {
		c.Type("json")
		return c.Send(openapi)
	})
	s.workflowRoutes(api)
	s.imageryRoutes(api)
	api.Put("/devices/:id/config", s.Users.authenticated, s.putDeviceConfig)
	api.Post("/devices/:id/commands", s.Users.authenticated, s.postDeviceCommand)
	api.Get("/devices/:id/snapshots", s.getDeviceSnapshots)
	api.Get("/devices/:id/history", s.History.Handler())
	s.uiRoutes(app)
	app.Get("/", func(c *fiber.Ctx) error { return c.Redirect("/ui/map", fiber.StatusFound) })
	app.Get("/cases", s.casesPage) // the plain list, no JavaScript
	s.app = app
	return app
}

// Listen serves on addr until ctx is done.
func (s *Server) Listen(ctx context.Context, addr string) error {
	app := s.Handler()
	errc := make(chan error, 1)
	go func() { errc <- app.Listen(addr) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return app.ShutdownWithTimeout(5 * time.Second)
	}
}

func (s *Server) listCases(c *fiber.Ctx) error {
	limit, err := queryLimit(c, 200)
	if err != nil {
		return err
	}
	cs, err := s.Store.Cases(c.UserContext(), limit)
	if err != nil {
		return err
	}
	out := make([]CaseView, 0, len(cs))
	for _, x := range cs {
		out = append(out, view(x))
	}
	return c.JSON(out)
}

func (s *Server) getCase(c *fiber.Ctx) error {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil || id < 1 {
		return fiber.NewError(fiber.StatusBadRequest, "id: not a case number")
	}
	cs, err := s.Store.Case(c.UserContext(), id)
	if errors.Is(err, store.ErrNotFound) {
		return fiber.NewError(fiber.StatusNotFound, "case "+c.Params("id")+" not found")
	}
	if err != nil {
		return err
	}
	evs, err := s.Store.Events(c.UserContext(), id)
	if err != nil {
		return err
	}
	ks, err := s.Store.CaseTasks(c.UserContext(), id)
	if err != nil {
		return err
	}
	if ks == nil {
		ks = []store.Task{}
	}
	payloads, err := s.Store.CaseReportPayloads(c.UserContext(), id)
	if err != nil {
		return err
	}
	d := caseDetail{CaseView: view(cs), Tasks: ks, Events: evs, Evidence: []wire.Evidence{}}
	for _, p := range payloads {
		var r wire.Report
		if json.Unmarshal(p, &r) != nil {
			continue
		}
		if r.Rule != "" {
			// The extent comes from the last report while the zone was occupied; the object
			// from the last report that named one (an end report may not).
			if d.Occupation == nil {
				d.Occupation = &occupationView{}
			}
			o := d.Occupation
			o.Zone, o.Rule = r.Zone, r.Rule
			if r.Phase != wire.PhaseEnd {
				o.Share = r.Share
			}
			if r.Object != "" {
				o.Object, o.ObjectScore = r.Object, r.ObjectScore
			}
		}
		sameReport := false
		for _, e := range r.Evidence {
			sameReport = sameReport || e.SHA256 == cs.EvidenceSHA256
		}
		for _, e := range r.Evidence {
			d.Evidence = append(d.Evidence, e)
			switch {
			case e.Kind == wire.EvidenceAnnotated && (sameReport || d.AnnotatedURL == ""):
				d.AnnotatedURL = "/api/v1/evidence/" + e.SHA256
			case e.Kind == wire.EvidenceClip && d.ClipURL == "":
				d.ClipURL = "/api/v1/evidence/" + e.SHA256
			}
		}
	}
	return c.JSON(d)
}

func (s *Server) getEvidence(c *fiber.Ctx) error {
	p, err := s.Evidence.Path(c.Params("sha"))
	if errors.Is(err, evidence.ErrBadName) {
		return fiber.NewError(fiber.StatusBadRequest, err.Error())
	}
	if err != nil {
		return fiber.NewError(fiber.StatusNotFound, err.Error())
	}
	head := make([]byte, 512)
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	n, _ := f.Read(head)
	f.Close()
	c.Set(fiber.HeaderContentType, http.DetectContentType(head[:n]))
	c.Set(fiber.HeaderCacheControl, "public, max-age=31536000, immutable")
	return c.SendFile(p)
}

func (s *Server) putEvidence(c *fiber.Ctx) error {
	created, err := s.Evidence.Put(c.Params("sha"), bytes.NewReader(c.Body()))
	switch {
	case errors.Is(err, evidence.ErrBadName), errors.Is(err, evidence.ErrHashMismatch):
		return fiber.NewError(fiber.StatusBadRequest, err.Error())
	case err != nil:
		return err
	case created:
		return c.SendStatus(fiber.StatusCreated)
	default:
		return c.SendStatus(fiber.StatusOK)
	}
}

func (s *Server) listDevices(c *fiber.Ctx) error {
	ds, err := s.Store.Devices(c.UserContext())
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []store.Device{}
	}
	return c.JSON(ds)
}

func (s *Server) casesPage(c *fiber.Ctx) error {
	cs, err := s.Store.Cases(c.UserContext(), 200)
	if err != nil {
		return err
	}
	ds, err := s.Store.Devices(c.UserContext())
	if err != nil {
		return err
	}
	views := make([]CaseView, 0, len(cs))
	for _, x := range cs {
		views = append(views, view(x))
	}
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, "cases.html", map[string]any{"Cases": views, "Devices": ds, "Now": time.Now()}); err != nil {
		return err
	}
	c.Type("html", "utf-8")
	return c.Send(buf.Bytes())
}

// strictJSON decodes one JSON object, refusing unknown fields.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

//go:embed openapi.json
var openapi []byte

// queryLimit reads ?limit=, refusing what is not a number in 1-5000.
func queryLimit(c *fiber.Ctx, def int) (int, error) {
	v := c.Query("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 5000 {
		return 0, fiber.NewError(fiber.StatusBadRequest, "limit: must be a number in 1-5000")
	}
	return n, nil
}

// caseDetail is one case with everything behind it: tasks, the log, and
// every evidence file its reports named (annotated snapshot and clip called out).
type caseDetail struct {
	CaseView
	AnnotatedURL string          `json:"annotated_url,omitempty"`
	ClipURL      string          `json:"clip_url,omitempty"`
	Evidence     []wire.Evidence `json:"evidence"`
	Tasks        []store.Task    `json:"tasks"`
	Events       []store.Event   `json:"events"`
	// Occupation is what the latest occupation report says about the zone:
	// its rule, how much of it is covered, and what the camera's own object
	// detector saw there, when it has one.
	Occupation *occupationView `json:"occupation,omitempty"`
}

type occupationView struct {
	Zone        string  `json:"zone"`
	Rule        string  `json:"rule"`
	Share       float64 `json:"share"`
	Object      string  `json:"object,omitempty"`
	ObjectScore float64 `json:"object_score,omitempty"`
}
