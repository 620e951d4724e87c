package web

import (
	"errors"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/store"
)

// workflowRoutes are the closed-loop actions; every one needs a token and
// the engine checks the role.
func (s *Server) workflowRoutes(api fiber.Router) {
	auth := s.Users.authenticated
	api.Post("/reports", auth, s.postReport)
	api.Post("/cases/:id/verify", auth, s.caseAction(func(c *fiber.Ctx, id int64, a cases.Actor, b body) (store.Case, error) {
		return s.Engine.Verify(c.UserContext(), id, a, b.Accept, b.Reason)
	}))
	api.Post("/cases/:id/check", auth, s.caseAction(func(c *fiber.Ctx, id int64, a cases.Actor, b body) (store.Case, error) {
		return s.Engine.Check(c.UserContext(), id, a, b.Pass, b.Note, b.Photo)
	}))
	api.Post("/cases/:id/redispatch", auth, s.caseAction(func(c *fiber.Ctx, id int64, a cases.Actor, b body) (store.Case, error) {
		return s.Engine.Redispatch(c.UserContext(), id, a, b.Dept, b.Note)
	}))
	api.Post("/cases/:id/hold", auth, s.caseAction(func(c *fiber.Ctx, id int64, a cases.Actor, b body) (store.Case, error) {
		return s.Engine.Hold(c.UserContext(), id, a, b.Reason)
	}))
	api.Post("/cases/:id/resume", auth, s.caseAction(func(c *fiber.Ctx, id int64, a cases.Actor, b body) (store.Case, error) {
		return s.Engine.Resume(c.UserContext(), id, a, b.Note)
	}))
	api.Post("/cases/:id/void", auth, s.caseAction(func(c *fiber.Ctx, id int64, a cases.Actor, b body) (store.Case, error) {
		return s.Engine.Void(c.UserContext(), id, a, b.Reason)
	}))
	api.Post("/tasks/:id/interim", auth, s.caseAction(func(c *fiber.Ctx, id int64, a cases.Actor, b body) (store.Case, error) {
		return s.Engine.Interim(c.UserContext(), id, a, b.Note, b.Photo)
	}))
	api.Post("/tasks/:id/fixed", auth, s.caseAction(func(c *fiber.Ctx, id int64, a cases.Actor, b body) (store.Case, error) {
		return s.Engine.ReportFixed(c.UserContext(), id, a, b.Note, b.Photo)
	}))
	api.Post("/tasks/:id/return", auth, s.caseAction(func(c *fiber.Ctx, id int64, a cases.Actor, b body) (store.Case, error) {
		return s.Engine.Return(c.UserContext(), id, a, b.Reason)
	}))
	api.Post("/tasks/:id/extension", auth, s.caseAction(func(c *fiber.Ctx, id int64, a cases.Actor, b body) (store.Case, error) {
		return s.Engine.RequestExtension(c.UserContext(), id, a, b.Hours, b.Reason)
	}))
	api.Post("/tasks/:id/extension/decision", auth, s.caseAction(func(c *fiber.Ctx, id int64, a cases.Actor, b body) (store.Case, error) {
		return s.Engine.DecideExtension(c.UserContext(), id, a, b.Approve, b.Note)
	}))
}

// body is the union of the action request fields; each action reads its own.
type body struct {
	Accept  bool    `json:"accept"`
	Pass    bool    `json:"pass"`
	Approve bool    `json:"approve"`
	Reason  string  `json:"reason"`
	Note    string  `json:"note"`
	Photo   string  `json:"photo"`
	Dept    string  `json:"dept"`
	Hours   float64 `json:"hours"`
}

func (s *Server) caseAction(do func(c *fiber.Ctx, id int64, a cases.Actor, b body) (store.Case, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := strconv.ParseInt(c.Params("id"), 10, 64)
		if err != nil || id < 1 {
			return fiber.NewError(fiber.StatusBadRequest, "id: not a number")
		}
		var b body
		if len(c.Body()) > 0 {
			if err := strictJSON(c.Body(), &b); err != nil {
				return fiber.NewError(fiber.StatusBadRequest, "body: "+err.Error())
			}
		}
		if len(b.Reason) > 2000 || len(b.Note) > 2000 {
			return fiber.NewError(fiber.StatusBadRequest, "reason/note: longer than 2000 bytes")
		}
		cs, err := do(c, id, actorOf(c), b)
		if err != nil {
			return workflowError(err)
		}
		return c.JSON(view(cs))
	}
}

func workflowError(err error) error {
	switch {
	case errors.Is(err, cases.ErrForbidden):
		return fiber.NewError(fiber.StatusForbidden, err.Error())
	case errors.Is(err, cases.ErrNotFound):
		return fiber.NewError(fiber.StatusNotFound, err.Error())
	case errors.Is(err, cases.ErrState):
		return fiber.NewError(fiber.StatusConflict, err.Error())
	case errors.Is(err, cases.ErrInvalid):
		return fiber.NewError(fiber.StatusBadRequest, err.Error())
	}
	return err
}

func (s *Server) postReport(c *fiber.Ctx) error {
	var h cases.HumanReport
	if err := strictJSON(c.Body(), &h); err != nil {
		return fiber.NewError(fiber.StatusBadRequest, "body: "+err.Error())
	}
	out, err := s.Engine.Report(c.UserContext(), actorOf(c), h)
	if err != nil {
		return workflowError(err)
	}
	status := fiber.StatusOK
	if out.Created {
		status = fiber.StatusCreated
	}
	if out.Nearby == nil {
		out.Nearby = []store.Case{}
	}
	return c.Status(status).JSON(out)
}

func (s *Server) listTasks(c *fiber.Ctx) error {
	limit, err := queryLimit(c, 500)
	if err != nil {
		return err
	}
	f := store.TaskFilter{Dept: c.Query("dept"), Status: c.Query("status"), Limit: limit}
	ks, err := s.Store.Tasks(c.UserContext(), f)
	if err != nil {
		return err
	}
	if ks == nil {
		ks = []store.Task{}
	}
	return c.JSON(ks)
}

func (s *Server) scores(c *fiber.Ctx) error {
	to := time.Now()
	from := to.AddDate(0, -1, 0)
	var err error
	if v := c.Query("from"); v != "" {
		if from, err = time.Parse(time.RFC3339, v); err != nil {
			return fiber.NewError(fiber.StatusBadRequest, "from: want RFC 3339")
		}
	}
	if v := c.Query("to"); v != "" {
		if to, err = time.Parse(time.RFC3339, v); err != nil {
			return fiber.NewError(fiber.StatusBadRequest, "to: want RFC 3339")
		}
	}
	w := s.Weights
	if w == (cases.Weights{}) {
		w = cases.DefaultWeights
	}
	if c.Query("kind") == "supervisor" {
		sw := s.SupervisorWeights
		if sw == (cases.SupervisorWeights{}) {
			sw = cases.DefaultSupervisorWeights
		}
		out, err := s.Engine.SupervisorScores(c.UserContext(), from, to, sw)
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"from": from, "to": to, "weights": sw, "scores": out})
	}
	var out []cases.Score
	switch c.Query("kind", "department") {
	case "department":
		out, err = s.Engine.DepartmentScores(c.UserContext(), from, to, w)
	case "street":
		out, err = s.Engine.StreetScores(c.UserContext(), from, to, w)
	default:
		return fiber.NewError(fiber.StatusBadRequest, "kind: department, street or supervisor")
	}
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"from": from, "to": to, "weights": w, "scores": out})
}
