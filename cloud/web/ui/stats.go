package ui

import (
	"sort"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/store"
)

// statsWindow is how many of the newest cases the figures look at.
const statsWindow = 5000

// CameraStats is one camera's verification record: how many of its detections verifiers accepted
// (true positives) and rejected (false positives, by reason), the figures people tune thresholds with.
type CameraStats struct {
	Device    string         `json:"device"`
	Camera    string         `json:"camera"`
	Accepted  int            `json:"accepted"`
	Rejected  int            `json:"rejected"`
	Pending   int            `json:"pending"`
	Voided    int            `json:"voided"`
	Reasons   map[string]int `json:"reasons"`
	Precision float64        `json:"precision"` // accepted / (accepted + rejected); 0 when neither
}

// verdict says what a verifier made of a camera case: accepted, rejected, pending or voided.
func verdict(c store.Case) string {
	switch c.Status {
	case cases.StatusReported:
		return "pending"
	case cases.StatusRejected:
		return "rejected"
	case cases.StatusVoided:
		return "voided"
	case cases.StatusOnHold:
		if c.HoldFrom == cases.StatusReported {
			return "pending"
		}
	}
	return "accepted"
}

func (u *UI) cameraStats(c *fiber.Ctx) error {
	ctx := c.UserContext()
	cs, err := u.cfg.Store.Cases(ctx, statsWindow)
	if err != nil {
		return err
	}
	by := map[[2]string]*CameraStats{}
	for _, x := range cs {
		if x.Source != cases.SourceCamera || x.Device == "" {
			continue
		}
		k := [2]string{x.Device, x.Camera}
		s := by[k]
		if s == nil {
			s = &CameraStats{Device: x.Device, Camera: x.Camera, Reasons: map[string]int{}}
			by[k] = s
		}
		switch verdict(x) {
		case "pending":
			s.Pending++
		case "voided":
			s.Voided++
		case "accepted":
			s.Accepted++
		case "rejected":
			s.Rejected++
			reason := "other"
			evs, err := u.cfg.Store.Events(ctx, x.ID)
			if err != nil {
				return err
			}
			for _, e := range evs {
				if e.Action == "rejected" {
					reason = e.Note
				}
			}
			if !knownReason(reason) {
				reason = "other"
			}
			s.Reasons[reason]++
		}
	}
	out := make([]CameraStats, 0, len(by))
	for _, s := range by {
		if n := s.Accepted + s.Rejected; n > 0 {
			s.Precision = float64(s.Accepted) / float64(n)
		}
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Device != out[j].Device {
			return out[i].Device < out[j].Device
		}
		return out[i].Camera < out[j].Camera
	})
	return c.JSON(out)
}

func knownReason(r string) bool {
	for _, x := range rejectReasons {
		if r == x {
			return true
		}
	}
	return false
}

// Today is the big screen's figures for the current day in the configured zone.
type Today struct {
	Date       string `json:"date"`
	New        int    `json:"new"`        // cases opened today
	Dispatched int    `json:"dispatched"` // cases dispatched (owner task created) today
	Closed     int    `json:"closed"`     // cases closed today
	Overdue    int    `json:"overdue"`    // open cases with a task past its deadline, now
	Awaiting   int    `json:"awaiting"`   // reported cases waiting for a verifier, now
	Open       int    `json:"open"`       // filed and not yet closed, now
	// OverdueCases are the overdue cases, most overdue first.
	OverdueCases []OverdueCase `json:"overdue_cases"`
}

// OverdueCase is an open case with a task past its deadline.
type OverdueCase struct {
	store.Case
	TaskID       int64     `json:"task_id"`
	TaskDept     string    `json:"task_dept"`
	TaskRole     string    `json:"task_role"`
	TaskDeadline time.Time `json:"task_deadline"`
}

func (u *UI) todayStats(c *fiber.Ctx) error {
	ctx := c.UserContext()
	now := u.cfg.Now().In(u.cfg.Location)
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, u.cfg.Location)
	cs, err := u.cfg.Store.Cases(ctx, statsWindow)
	if err != nil {
		return err
	}
	out := Today{Date: midnight.Format("2006-01-02"), OverdueCases: []OverdueCase{}}
	byID := map[int64]store.Case{}
	for _, x := range cs {
		byID[x.ID] = x
		if !x.CreatedAt.Before(midnight) {
			out.New++
		}
		if x.Status == cases.StatusClosed && !x.ClosedAt.Before(midnight) {
			out.Closed++
		}
		switch x.Status {
		case cases.StatusReported:
			out.Awaiting++
		case cases.StatusDispatched, cases.StatusFixed, cases.StatusReturned, cases.StatusOnHold:
			out.Open++
		}
	}
	ks, err := u.cfg.Store.TasksCreatedBetween(ctx, midnight, now.Add(time.Minute))
	if err != nil {
		return err
	}
	seen := map[int64]bool{}
	for _, k := range ks {
		if k.Role == cases.RoleOwner && !seen[k.CaseID] {
			seen[k.CaseID] = true
			out.Dispatched++
		}
	}
	open, err := u.cfg.Store.Tasks(ctx, store.TaskFilter{Status: cases.TaskOpen, Limit: statsWindow})
	if err != nil {
		return err
	}
	counted := map[int64]bool{}
	for _, k := range open {
		if !(k.Overdue || k.Deadline.Before(now)) || counted[k.CaseID] {
			continue
		}
		x, ok := byID[k.CaseID]
		if !ok {
			if x, err = u.cfg.Store.Case(ctx, k.CaseID); err != nil {
				continue
			}
		}
		if x.Status == cases.StatusOnHold {
			continue // the clock stops while a case is on hold
		}
		counted[k.CaseID] = true
		out.OverdueCases = append(out.OverdueCases, OverdueCase{Case: x, TaskID: k.ID, TaskDept: k.Dept, TaskRole: k.Role, TaskDeadline: k.Deadline})
	}
	sort.Slice(out.OverdueCases, func(i, j int) bool {
		return out.OverdueCases[i].TaskDeadline.Before(out.OverdueCases[j].TaskDeadline)
	})
	out.Overdue = len(out.OverdueCases)
	return c.JSON(out)
}

// CameraSpot is a camera on the map. Boxes do not report where their cameras stand, so a camera is
// drawn at the middle of the places it has reported on (what it watches), with its box's state.
type CameraSpot struct {
	Device string  `json:"device"`
	Camera string  `json:"camera"`
	Lat    float64 `json:"lat"`
	Lon    float64 `json:"lon"`
	Cases  int     `json:"cases"`
	// Registered: the position is the fleet registry's; otherwise the mean of its cases'.
	Registered bool `json:"registered"`
}

func (u *UI) mapCameras(c *fiber.Ctx) error {
	cs, err := u.cfg.Store.Cases(c.UserContext(), statsWindow)
	if err != nil {
		return err
	}
	by := map[[2]string]*CameraSpot{}
	var order [][2]string
	for _, x := range cs {
		if x.Device == "" || (x.Lat == 0 && x.Lon == 0) {
			continue
		}
		k := [2]string{x.Device, x.Camera}
		s := by[k]
		if s == nil {
			s = &CameraSpot{Device: x.Device, Camera: x.Camera}
			by[k] = s
			order = append(order, k)
		}
		s.Cases++
		s.Lat += x.Lat
		s.Lon += x.Lon
	}
	out := make([]CameraSpot, 0, len(by))
	if u.cfg.Fleet != nil { // every registered camera, where it stands, even one with no case yet
		for _, cam := range u.cfg.Fleet.Cameras() {
			k := [2]string{cam.Device, cam.ID}
			spot := CameraSpot{Device: cam.Device, Camera: cam.ID, Lat: cam.Lat, Lon: cam.Lon, Registered: true}
			if s := by[k]; s != nil {
				spot.Cases = s.Cases
				delete(by, k)
			}
			out = append(out, spot)
		}
	}
	for _, k := range order {
		s := by[k]
		if s == nil {
			continue // placed by the registry
		}
		s.Lat, s.Lon = s.Lat/float64(s.Cases), s.Lon/float64(s.Cases)
		out = append(out, *s)
	}
	return c.JSON(out)
}
