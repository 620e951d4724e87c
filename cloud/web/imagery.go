package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// ImageryJobs runs imagery comparison jobs (imagery.Runner behind an adapter
// in the cloud command, so this package stays free of cgo). Statuses are
// passed through as JSON.
type ImageryJobs interface {
	Start(c *fiber.Ctx, req ImageryJobRequest) (any, error)
	Status(id string) (any, bool)
	List() any
	GeoJSONPath(id string) (string, bool)
}

// ImageryJobRequest is the body of POST /api/v1/imagery/jobs: paths on the
// server, the comparison's options, and which changes become cases.
type ImageryJobRequest struct {
	Before        string  `json:"before"`
	After         string  `json:"after"`
	Area          string  `json:"area,omitempty"`
	Zoom          int     `json:"zoom,omitempty"`
	Scheme        string  `json:"scheme,omitempty"`
	CRS           string  `json:"crs,omitempty"`
	MinAreaM2     float64 `json:"min_area_m2,omitempty"`
	Category      string  `json:"category,omitempty"`
	FileMinScore  float64 `json:"file_min_score,omitempty"`
	FileMinAreaM2 float64 `json:"file_min_area_m2,omitempty"`
}

func (s *Server) imageryRoutes(api fiber.Router) {
	api.Post("/imagery/jobs", s.Users.authenticated, s.postImageryJob)
	api.Post("/imagery/changes", s.Users.authenticated, s.postImageryChange)
	api.Get("/imagery/jobs", func(c *fiber.Ctx) error {
		if s.Imagery == nil {
			return fiber.NewError(fiber.StatusServiceUnavailable, "imagery jobs are not wired in this server")
		}
		return c.JSON(s.Imagery.List())
	})
	api.Get("/imagery/jobs/:id", func(c *fiber.Ctx) error {
		if s.Imagery == nil {
			return fiber.NewError(fiber.StatusServiceUnavailable, "imagery jobs are not wired in this server")
		}
		st, ok := s.Imagery.Status(c.Params("id"))
		if !ok {
			return fiber.NewError(fiber.StatusNotFound, "imagery job "+c.Params("id")+" not found")
		}
		return c.JSON(st)
	})
	api.Get("/imagery/jobs/:id/changes.geojson", func(c *fiber.Ctx) error {
		if s.Imagery == nil {
			return fiber.NewError(fiber.StatusServiceUnavailable, "imagery jobs are not wired in this server")
		}
		p, ok := s.Imagery.GeoJSONPath(c.Params("id"))
		if !ok {
			return fiber.NewError(fiber.StatusNotFound, "imagery job "+c.Params("id")+" has no changes file (not found or not finished)")
		}
		c.Type("geojson")
		c.Set(fiber.HeaderContentType, "application/geo+json")
		return c.SendFile(p)
	})
}

// postImageryJob: POST /api/v1/imagery/jobs (admin). 202 with the job's
// status; the same comparison posted again returns the same job.
func (s *Server) postImageryJob(c *fiber.Ctx) error {
	if a := actorOf(c); a.Role != cases.Admin {
		return fiber.NewError(fiber.StatusForbidden, "starting an imagery job needs the admin role")
	}
	if s.Imagery == nil {
		return fiber.NewError(fiber.StatusServiceUnavailable, "imagery jobs are not wired in this server")
	}
	var req ImageryJobRequest
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return fiber.NewError(fiber.StatusBadRequest, "body: "+err.Error())
	}
	switch {
	case req.Before == "":
		return fiber.NewError(fiber.StatusBadRequest, "before: required (a tile folder, MBTiles file or georeferenced image on the server)")
	case req.After == "":
		return fiber.NewError(fiber.StatusBadRequest, "after: required (a tile folder, MBTiles file or georeferenced image on the server)")
	case req.FileMinScore < 0 || req.FileMinScore > 1:
		return fiber.NewError(fiber.StatusBadRequest, "file_min_score: must be within [0,1]")
	}
	if req.Category != "" {
		if _, ok := s.Engine.Categories().Event(req.Category); !ok {
			return fiber.NewError(fiber.StatusBadRequest, "category: "+req.Category+" is not an event code of the taxonomy")
		}
	}
	st, err := s.Imagery.Start(c, req)
	if err != nil {
		return fiber.NewError(fiber.StatusBadRequest, err.Error())
	}
	return c.Status(fiber.StatusAccepted).JSON(st)
}

// ImageryChangeResult answers POST /api/v1/imagery/changes.
type ImageryChangeResult struct {
	CaseID    int64 `json:"case_id"`   // the case it opened or joined (0 for a duplicate)
	Created   bool  `json:"created"`   // a new case was opened
	Duplicate bool  `json:"duplicate"` // this device+seq was filed before: nothing changed
}

// postImageryChange: POST /api/v1/imagery/changes (admin). One change a
// comparison job found elsewhere (gridwatch-cloud imagery compare --cloud),
// as the report the cloud's own jobs file: kind "change", device
// "imagery-JOBID", its crops uploaded first with PUT /api/v1/evidence/SHA.
// It enters the case engine like a camera's report, idempotent by
// device+seq: 201 with a new case, 200 when it joined an open case nearby
// or was filed before.
func (s *Server) postImageryChange(c *fiber.Ctx) error {
	if a := actorOf(c); a.Role != cases.Admin {
		return fiber.NewError(fiber.StatusForbidden, "filing imagery changes needs the admin role")
	}
	var r wire.Report
	if err := strictJSON(c.Body(), &r); err != nil {
		return fiber.NewError(fiber.StatusBadRequest, "body: "+err.Error())
	}
	if r.Kind != wire.ReportChange {
		return fiber.NewError(fiber.StatusBadRequest, "kind: "+string(r.Kind)+" is not change (camera reports come over MQTT)")
	}
	if !strings.HasPrefix(r.Device, "imagery-") {
		return fiber.NewError(fiber.StatusBadRequest, "device: "+r.Device+" does not start with imagery- (a comparison job's changes)")
	}
	if err := r.Validate(); err != nil {
		return fiber.NewError(fiber.StatusBadRequest, err.Error())
	}
	if _, ok := s.Engine.Categories().Event(r.Category); !ok {
		return fiber.NewError(fiber.StatusBadRequest, "category: "+r.Category+" is not an event code of the taxonomy")
	}
	if len(r.Evidence) == 0 {
		return fiber.NewError(fiber.StatusBadRequest, "evidence: a change needs its before and after crops")
	}
	for i, e := range r.Evidence {
		if !s.Evidence.Has(e.SHA256) {
			return fiber.NewError(fiber.StatusBadRequest, "evidence["+strconv.Itoa(i)+"]: "+e.SHA256+" is not stored: PUT /api/v1/evidence/"+e.SHA256+" first")
		}
	}
	out, err := s.Engine.Apply(c.UserContext(), r, c.Body())
	if err != nil {
		if errors.Is(err, cases.ErrUnknownFacility) || errors.Is(err, cases.ErrNotInFleet) {
			return fiber.NewError(fiber.StatusBadRequest, err.Error())
		}
		return err
	}
	status := fiber.StatusOK
	if out.Created {
		status = fiber.StatusCreated
	}
	return c.Status(status).JSON(ImageryChangeResult{CaseID: out.CaseID, Created: out.Created, Duplicate: out.Duplicate})
}
