package cases

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/cloud/taxonomy"
)

// The closed loop (DOMAIN.md): reported → verified and dispatched at once to
// the owner department and the street office → fixed → checked → closed,
// with the reject, return, rework, extension, hold and void branches. Every
// transition appends to the case's log: who, when, why, evidence.
const (
	StatusDispatched = "dispatched" // tasks open with the owner and the street office
	StatusFixed      = "fixed"      // the owner reported the fix: waiting for the check (核查)
	StatusReturned   = "returned"   // the owner says it is not theirs: waiting for re-dispatch
	StatusOnHold     = "on_hold"    // 挂账
	StatusRejected   = "rejected"   // the verifier found it false
	StatusVoided     = "voided"     // 作废
)

// Task roles and statuses.
const (
	RoleOwner  = "owner"
	RoleStreet = "street"

	TaskOpen      = "open"
	TaskDone      = "done"
	TaskReturned  = "returned"
	TaskCancelled = "cancelled"
)

// People's roles.
const (
	Supervisor = "supervisor" // 监督员: reports, checks
	Verifier   = "verifier"   // 核实: accepts or rejects detections
	Dispatcher = "dispatcher" // 派遣员: re-dispatch, extensions, hold, void
	Department = "department" // 专业部门 handler
	StreetRole = "street"     // 属地 street office
	Admin      = "admin"
	Device     = "device"
)

// Actor is who does something.
type Actor struct {
	Name string `json:"name"`
	Role string `json:"role"`
	Dept string `json:"dept,omitempty"` // for department and street roles
}

func (a Actor) String() string { return a.Role + ":" + a.Name }

// Workflow errors; the web layer maps them to 403, 409, 404 and 400.
var (
	ErrForbidden = errors.New("not allowed for this role")
	ErrState     = errors.New("not possible in the case's current state")
	ErrNotFound  = store.ErrNotFound
	ErrInvalid   = errors.New("invalid request")
)

func (e *Engine) allow(a Actor, roles ...string) error {
	if a.Role == Admin {
		return nil
	}
	for _, r := range roles {
		if a.Role == r {
			return nil
		}
	}
	return fmt.Errorf("%s: %w", a, ErrForbidden)
}

// deadline adds a category's limit for an area class to t on the right clock.
func (e *Engine) deadline(cat taxonomy.Category, hours time.Duration, t time.Time) time.Time {
	if cat.Clock == taxonomy.ClockWorking && e.Calendar != nil {
		return e.Calendar.Add(t, hours)
	}
	return t.Add(hours)
}

func (e *Engine) category(c store.Case) (taxonomy.Category, error) {
	tx := e.tax()
	kind := tx.Part
	if c.FacilityID == "" {
		kind = tx.Event
	}
	cat, ok := kind(c.Category)
	if !ok {
		return cat, fmt.Errorf("category %s is not in taxonomy %s: %w", c.Category, tx.Version, ErrInvalid)
	}
	return cat, nil
}

var defaultTaxonomy = sync.OnceValue(taxonomy.Default)

// Categories is the taxonomy in force.
func (e *Engine) Categories() *taxonomy.Taxonomy { return e.tax() }

func (e *Engine) tax() *taxonomy.Taxonomy {
	if e.Taxonomy == nil {
		return defaultTaxonomy()
	}
	return e.Taxonomy
}

// mutate runs fn on a case inside a transaction and logs the event it returns.
func (e *Engine) mutate(ctx context.Context, id int64, a Actor, fn func(tx *store.Tx, c *store.Case, now time.Time) (store.Event, error)) (store.Case, error) {
	var out store.Case
	err := e.Store.Update(ctx, func(tx *store.Tx) error {
		c, err := tx.Case(ctx, id)
		if err != nil {
			return fmt.Errorf("case %d: %w", id, err)
		}
		now := e.now()
		ev, err := fn(tx, &c, now)
		if err != nil {
			return err
		}
		c.UpdatedAt = now
		if err := tx.SaveCase(ctx, c); err != nil {
			return err
		}
		ev.CaseID, ev.At, ev.Actor = c.ID, now, a.String()
		out = c
		return tx.AddEvent(ctx, ev)
	})
	return out, err
}

// Verify accepts (file and dispatch at once) or rejects a reported case.
func (e *Engine) Verify(ctx context.Context, id int64, a Actor, accept bool, reason string) (store.Case, error) {
	if err := e.allow(a, Verifier); err != nil {
		return store.Case{}, err
	}
	if !accept && reason == "" {
		return store.Case{}, fmt.Errorf("reason: a rejection needs a reason: %w", ErrInvalid)
	}
	return e.mutate(ctx, id, a, func(tx *store.Tx, c *store.Case, now time.Time) (store.Event, error) {
		if c.Status != StatusReported {
			return store.Event{}, fmt.Errorf("verify case %d in status %s: %w", c.ID, c.Status, ErrState)
		}
		if !accept {
			c.Status, c.ClosedAt = StatusRejected, now
			return store.Event{Action: "rejected", Note: reason}, nil
		}
		note, err := e.dispatch(ctx, tx, c, now)
		if err != nil {
			return store.Event{}, err
		}
		if reason != "" {
			note = reason + "; " + note
		}
		return store.Event{Action: "verified_dispatched", Note: note}, nil
	})
}

// dispatch files the case and opens its tasks: the owner's fix and, for
// urgent categories, the street office's interim action, in parallel.
func (e *Engine) dispatch(ctx context.Context, tx *store.Tx, c *store.Case, now time.Time) (string, error) {
	cat, err := e.category(*c)
	if err != nil {
		return "", err
	}
	owner := c.OwnerDepartment
	switch {
	case cat.Owner == taxonomy.OwnerDepartment:
		owner = cat.Dept
	case cat.Owner == taxonomy.OwnerStreet || owner == "":
		owner = c.StreetOffice
	}
	if owner == "" {
		return "", fmt.Errorf("case %d has no owner department and no street office: %w", c.ID, ErrInvalid)
	}
	c.OwnerDepartment = owner
	if d, ok := e.Registry.Department(owner); ok {
		c.OwnerName = d.Name
	}
	c.Status, c.AreaClass, c.Urgent = StatusDispatched, areaOr(c.AreaClass), cat.Urgent
	c.Deadline = e.deadline(cat, cat.Limit(c.AreaClass), now)
	fix := store.Task{CaseID: c.ID, Dept: owner, Role: RoleOwner, Status: TaskOpen, CreatedAt: now, Deadline: c.Deadline}
	if err := tx.CreateTask(ctx, &fix); err != nil {
		return "", err
	}
	note := fmt.Sprintf("dispatched to %s (fix by %s)", owner, c.Deadline.Format(time.RFC3339))
	if cat.Interim > 0 && c.StreetOffice != "" && c.StreetOffice != owner {
		d := time.Duration(cat.Interim * float64(time.Hour))
		interim := store.Task{CaseID: c.ID, Dept: c.StreetOffice, Role: RoleStreet, Status: TaskOpen,
			CreatedAt: now, Deadline: e.deadline(cat, d, now)}
		if err := tx.CreateTask(ctx, &interim); err != nil {
			return "", err
		}
		note += fmt.Sprintf(" and to %s (warning signs by %s)", c.StreetOffice, interim.Deadline.Format(time.RFC3339))
	}
	return note, nil
}

func areaOr(a string) string {
	if a == "" {
		return "C"
	}
	return a
}

// taskAction loads a task and its case for a department or street action.
func (e *Engine) taskAction(ctx context.Context, taskID int64, a Actor, fn func(tx *store.Tx, c *store.Case, k *store.Task, now time.Time) (store.Event, error)) (store.Case, error) {
	var caseID int64
	if err := e.Store.Update(ctx, func(tx *store.Tx) error {
		k, err := tx.Task(ctx, taskID)
		if err != nil {
			return fmt.Errorf("task %d: %w", taskID, err)
		}
		caseID = k.CaseID
		return nil
	}); err != nil {
		return store.Case{}, err
	}
	return e.mutate(ctx, caseID, a, func(tx *store.Tx, c *store.Case, now time.Time) (store.Event, error) {
		k, err := tx.Task(ctx, taskID)
		if err != nil {
			return store.Event{}, err
		}
		if a.Role != Admin && a.Dept != k.Dept {
			return store.Event{}, fmt.Errorf("task %d belongs to %s, not %s: %w", k.ID, k.Dept, a.Dept, ErrForbidden)
		}
		ev, err := fn(tx, c, &k, now)
		if err != nil {
			return ev, err
		}
		return ev, tx.SaveTask(ctx, k)
	})
}

// Interim records the street office's interim action (warning signs).
func (e *Engine) Interim(ctx context.Context, taskID int64, a Actor, note, photo string) (store.Case, error) {
	if err := e.allow(a, StreetRole); err != nil {
		return store.Case{}, err
	}
	return e.taskAction(ctx, taskID, a, func(tx *store.Tx, c *store.Case, k *store.Task, now time.Time) (store.Event, error) {
		if k.Role != RoleStreet || k.Status != TaskOpen {
			return store.Event{}, fmt.Errorf("task %d (%s, %s) takes no interim action: %w", k.ID, k.Role, k.Status, ErrState)
		}
		k.Status, k.DoneAt, k.Note, k.Photo = TaskDone, now, note, photo
		return store.Event{Action: "interim_action", Note: note, Evidence: photo}, nil
	})
}

// ReportFixed is the owner's report back (反馈) with a photo. If the camera
// already sees the hazard gone, that is the check and the case closes.
func (e *Engine) ReportFixed(ctx context.Context, taskID int64, a Actor, note, photo string) (store.Case, error) {
	if err := e.allow(a, Department, StreetRole); err != nil {
		return store.Case{}, err
	}
	if photo == "" {
		return store.Case{}, fmt.Errorf("photo: the report back needs a photo: %w", ErrInvalid)
	}
	return e.taskAction(ctx, taskID, a, func(tx *store.Tx, c *store.Case, k *store.Task, now time.Time) (store.Event, error) {
		if k.Role != RoleOwner || k.Status != TaskOpen || c.Status != StatusDispatched {
			return store.Event{}, fmt.Errorf("task %d (%s, %s) of a %s case: %w", k.ID, k.Role, k.Status, c.Status, ErrState)
		}
		k.Status, k.DoneAt, k.Note, k.Photo = TaskDone, now, note, photo
		c.Status = StatusFixed
		if !c.RestoredAt.IsZero() && c.DetectionState == "present" {
			if err := e.close(ctx, tx, c, now); err != nil {
				return store.Event{}, err
			}
			return store.Event{Action: "fixed_closed", Note: note + "; the camera already sees it restored: check passed", Evidence: photo}, nil
		}
		return store.Event{Action: "fixed", Note: note, Evidence: photo}, nil
	})
}

// close ends a case; open tasks that are no longer needed are cancelled.
func (e *Engine) close(ctx context.Context, tx *store.Tx, c *store.Case, now time.Time) error {
	tasks, err := tx.Tasks(ctx, c.ID)
	if err != nil {
		return err
	}
	for _, k := range tasks {
		if k.Status == TaskOpen {
			k.Status = TaskCancelled
			if err := tx.SaveTask(ctx, k); err != nil {
				return err
			}
		}
	}
	c.Status, c.ClosedAt = StatusClosed, now
	return nil
}

// Check is the supervisor's check (核查) of a fixed case: pass closes it,
// fail sends it back to the owner (rework, 返工).
func (e *Engine) Check(ctx context.Context, id int64, a Actor, pass bool, note, photo string) (store.Case, error) {
	if err := e.allow(a, Supervisor); err != nil {
		return store.Case{}, err
	}
	if photo == "" {
		return store.Case{}, fmt.Errorf("photo: a check needs a photo: %w", ErrInvalid)
	}
	return e.mutate(ctx, id, a, func(tx *store.Tx, c *store.Case, now time.Time) (store.Event, error) {
		if c.Status != StatusFixed {
			return store.Event{}, fmt.Errorf("check case %d in status %s: %w", c.ID, c.Status, ErrState)
		}
		if pass {
			return store.Event{Action: "checked_closed", Note: note, Evidence: photo}, e.close(ctx, tx, c, now)
		}
		tasks, err := tx.Tasks(ctx, c.ID)
		if err != nil {
			return store.Event{}, err
		}
		for _, k := range tasks {
			if k.Role == RoleOwner && k.Status == TaskDone {
				k.Status, k.DoneAt = TaskOpen, time.Time{}
				if err := tx.SaveTask(ctx, k); err != nil {
					return store.Event{}, err
				}
			}
		}
		c.Status, c.Reworks = StatusDispatched, c.Reworks+1
		return store.Event{Action: "rework", Note: note, Evidence: photo}, nil
	})
}

// Return is the owner saying the case is not theirs (退单), with a reason.
func (e *Engine) Return(ctx context.Context, taskID int64, a Actor, reason string) (store.Case, error) {
	if err := e.allow(a, Department); err != nil {
		return store.Case{}, err
	}
	if reason == "" {
		return store.Case{}, fmt.Errorf("reason: a return needs a reason: %w", ErrInvalid)
	}
	return e.taskAction(ctx, taskID, a, func(tx *store.Tx, c *store.Case, k *store.Task, now time.Time) (store.Event, error) {
		if k.Role != RoleOwner || k.Status != TaskOpen {
			return store.Event{}, fmt.Errorf("task %d (%s, %s) cannot be returned: %w", k.ID, k.Role, k.Status, ErrState)
		}
		k.Status, k.DoneAt, k.Note = TaskReturned, now, reason
		c.Status = StatusReturned
		return store.Event{Action: "returned", Note: reason}, nil
	})
}

// Redispatch sends a returned case to another department.
func (e *Engine) Redispatch(ctx context.Context, id int64, a Actor, dept, note string) (store.Case, error) {
	if err := e.allow(a, Dispatcher); err != nil {
		return store.Case{}, err
	}
	d, ok := e.Registry.Department(dept)
	if !ok {
		return store.Case{}, fmt.Errorf("dept: %q is not a known department: %w", dept, ErrInvalid)
	}
	return e.mutate(ctx, id, a, func(tx *store.Tx, c *store.Case, now time.Time) (store.Event, error) {
		if c.Status != StatusReturned {
			return store.Event{}, fmt.Errorf("re-dispatch case %d in status %s: %w", c.ID, c.Status, ErrState)
		}
		cat, err := e.category(*c)
		if err != nil {
			return store.Event{}, err
		}
		c.OwnerDepartment, c.OwnerName, c.Status = d.ID, d.Name, StatusDispatched
		c.Deadline = e.deadline(cat, cat.Limit(c.AreaClass), now)
		k := store.Task{CaseID: c.ID, Dept: d.ID, Role: RoleOwner, Status: TaskOpen, CreatedAt: now, Deadline: c.Deadline}
		if err := tx.CreateTask(ctx, &k); err != nil {
			return store.Event{}, err
		}
		return store.Event{Action: "redispatched", Note: fmt.Sprintf("to %s: %s", d.ID, note)}, nil
	})
}

// RequestExtension asks for more time on a task (延期), pending approval.
func (e *Engine) RequestExtension(ctx context.Context, taskID int64, a Actor, hours float64, reason string) (store.Case, error) {
	if err := e.allow(a, Department, StreetRole); err != nil {
		return store.Case{}, err
	}
	if hours <= 0 || hours > 24*30 || reason == "" {
		return store.Case{}, fmt.Errorf("hours/reason: an extension needs 0 < hours <= 720 and a reason: %w", ErrInvalid)
	}
	return e.taskAction(ctx, taskID, a, func(tx *store.Tx, c *store.Case, k *store.Task, now time.Time) (store.Event, error) {
		if k.Status != TaskOpen || k.ExtRequest != "" {
			return store.Event{}, fmt.Errorf("task %d (%s) already has a request or is not open: %w", k.ID, k.Status, ErrState)
		}
		k.ExtRequest = fmt.Sprintf("%g|%s", hours, reason)
		return store.Event{Action: "extension_requested", Note: fmt.Sprintf("task %d: %g h: %s", k.ID, hours, reason)}, nil
	})
}

// DecideExtension approves or refuses a pending extension request.
func (e *Engine) DecideExtension(ctx context.Context, taskID int64, a Actor, approve bool, note string) (store.Case, error) {
	if err := e.allow(a, Dispatcher); err != nil {
		return store.Case{}, err
	}
	var caseID int64
	if err := e.Store.Update(ctx, func(tx *store.Tx) error {
		k, err := tx.Task(ctx, taskID)
		caseID = k.CaseID
		return err
	}); err != nil {
		return store.Case{}, fmt.Errorf("task %d: %w", taskID, err)
	}
	return e.mutate(ctx, caseID, a, func(tx *store.Tx, c *store.Case, now time.Time) (store.Event, error) {
		k, err := tx.Task(ctx, taskID)
		if err != nil {
			return store.Event{}, err
		}
		if k.ExtRequest == "" {
			return store.Event{}, fmt.Errorf("task %d has no extension request: %w", k.ID, ErrState)
		}
		var hours float64
		fmt.Sscanf(k.ExtRequest, "%g|", &hours)
		k.ExtRequest = ""
		action := "extension_refused"
		if approve {
			cat, err := e.category(*c)
			if err != nil {
				return store.Event{}, err
			}
			k.Deadline = e.deadline(cat, time.Duration(hours*float64(time.Hour)), k.Deadline)
			k.ExtensionH += hours
			k.Overdue = k.Deadline.Before(now)
			if k.Role == RoleOwner {
				c.Deadline = k.Deadline
			}
			action = "extension_approved"
		}
		return store.Event{Action: action, Note: fmt.Sprintf("task %d: %g h: %s", k.ID, hours, note)}, tx.SaveTask(ctx, k)
	})
}

// Hold puts a case on hold (挂账) with a reason; Resume takes it back.
func (e *Engine) Hold(ctx context.Context, id int64, a Actor, reason string) (store.Case, error) {
	if err := e.allow(a, Dispatcher); err != nil {
		return store.Case{}, err
	}
	if reason == "" {
		return store.Case{}, fmt.Errorf("reason: a hold needs a reason: %w", ErrInvalid)
	}
	return e.mutate(ctx, id, a, func(tx *store.Tx, c *store.Case, now time.Time) (store.Event, error) {
		if c.Status != StatusDispatched && c.Status != StatusReturned && c.Status != StatusReported {
			return store.Event{}, fmt.Errorf("hold case %d in status %s: %w", c.ID, c.Status, ErrState)
		}
		c.HoldFrom, c.Status = c.Status, StatusOnHold
		return store.Event{Action: "on_hold", Note: reason}, nil
	})
}

// Resume returns a held case to where it was.
func (e *Engine) Resume(ctx context.Context, id int64, a Actor, note string) (store.Case, error) {
	if err := e.allow(a, Dispatcher); err != nil {
		return store.Case{}, err
	}
	return e.mutate(ctx, id, a, func(tx *store.Tx, c *store.Case, now time.Time) (store.Event, error) {
		if c.Status != StatusOnHold {
			return store.Event{}, fmt.Errorf("resume case %d in status %s: %w", c.ID, c.Status, ErrState)
		}
		c.Status, c.HoldFrom = c.HoldFrom, ""
		return store.Event{Action: "resumed", Note: note}, nil
	})
}

// Void cancels a case (作废) with a reason.
func (e *Engine) Void(ctx context.Context, id int64, a Actor, reason string) (store.Case, error) {
	if err := e.allow(a, Dispatcher); err != nil {
		return store.Case{}, err
	}
	if reason == "" {
		return store.Case{}, fmt.Errorf("reason: voiding needs a reason: %w", ErrInvalid)
	}
	return e.mutate(ctx, id, a, func(tx *store.Tx, c *store.Case, now time.Time) (store.Event, error) {
		switch c.Status {
		case StatusClosed, StatusRejected, StatusVoided:
			return store.Event{}, fmt.Errorf("void case %d in status %s: %w", c.ID, c.Status, ErrState)
		}
		if err := e.close(ctx, tx, c, now); err != nil {
			return store.Event{}, err
		}
		c.Status = StatusVoided
		return store.Event{Action: "voided", Note: reason}, nil
	})
}

// MarkOverdue flags open tasks past their deadline and logs an escalation
// on their cases; it returns how many it flagged. Run it periodically.
func (e *Engine) MarkOverdue(ctx context.Context) (int, error) {
	now := e.now()
	tasks, err := e.Store.OpenTasksDueBefore(ctx, now)
	if err != nil {
		return 0, err
	}
	for _, k := range tasks {
		err := e.Store.Update(ctx, func(tx *store.Tx) error {
			// Again inside the transaction: it may have been done meanwhile.
			var err error
			if k, err = tx.Task(ctx, k.ID); err != nil || k.Status != TaskOpen || k.Overdue {
				return err
			}
			k.Overdue = true
			if err := tx.SaveTask(ctx, k); err != nil {
				return err
			}
			return tx.AddEvent(ctx, store.Event{CaseID: k.CaseID, At: now, Actor: "system:deadlines", Action: "overdue",
				Note: fmt.Sprintf("task %d (%s, %s) passed its deadline %s: escalated to the shift chief", k.ID, k.Role, k.Dept, k.Deadline.Format(time.RFC3339))})
		})
		if err != nil {
			return 0, err
		}
	}
	return len(tasks), nil
}
