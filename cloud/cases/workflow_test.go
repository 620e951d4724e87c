package cases_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/edge/wire"
)

var (
	verifier   = cases.Actor{Name: "li", Role: cases.Verifier}
	supervisor = cases.Actor{Name: "wang", Role: cases.Supervisor}
	dispatcher = cases.Actor{Name: "zhao", Role: cases.Dispatcher}
	power      = cases.Actor{Name: "power-desk", Role: cases.Department, Dept: "dept-power"}
	water      = cases.Actor{Name: "water-desk", Role: cases.Department, Dept: "dept-water"}
	street     = cases.Actor{Name: "sanlitun", Role: cases.StreetRole, Dept: sanlitunDept}
)

// clock lets a test move time on.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newFlow(t *testing.T) (*cases.Engine, *clock, int64) {
	t.Helper()
	e := newEngine(t)
	clk := &clock{t: now}
	e.Now = clk.now
	r, raw := golden(t, "report-cover-new.json")
	out := apply(t, e, r, raw)
	if !out.Created {
		t.Fatal("no case")
	}
	return e, clk, out.CaseID
}

func tasksOf(t *testing.T, e *cases.Engine, id int64) (owner, streetTask store.Task) {
	t.Helper()
	ks, err := e.Store.CaseTasks(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ks {
		switch k.Role {
		case cases.RoleOwner:
			owner = k
		case cases.RoleStreet:
			streetTask = k
		}
	}
	return owner, streetTask
}

func mustStatus(t *testing.T, c store.Case, err error, want string) store.Case {
	t.Helper()
	if err != nil {
		t.Fatalf("want status %s, got error %v", want, err)
	}
	if c.Status != want {
		t.Fatalf("status %s, want %s", c.Status, want)
	}
	return c
}

// TestSeedStory is DOMAIN.md's story: a camera finds a missing power cover;
// a verifier accepts it; it goes at once to the power company and the street
// office; the street puts up signs; the owner replaces the cover; the camera
// sees it back; the case closes; the owner's on-time score moves.
func TestSeedStory(t *testing.T) {
	ctx := context.Background()
	e, clk, id := newFlow(t)

	if _, err := e.Verify(ctx, id, power, true, ""); !errors.Is(err, cases.ErrForbidden) {
		t.Fatalf("a department verified a detection: %v", err)
	}
	clk.advance(2 * time.Minute)
	c, err := e.Verify(ctx, id, verifier, true, "visible in the snapshot")
	c = mustStatus(t, c, err, cases.StatusDispatched)
	if !c.Urgent || c.Deadline.Sub(clk.t) < 4*time.Hour || c.Deadline.Sub(clk.t) > 6*time.Hour {
		t.Fatalf("urgent %v deadline %v after dispatch; want urgent and 4-6 natural hours", c.Urgent, c.Deadline.Sub(clk.t))
	}
	owner, st := tasksOf(t, e, id)
	if owner.Dept != "dept-power" || st.Dept != sanlitunDept || owner.Status != cases.TaskOpen || st.Status != cases.TaskOpen {
		t.Fatalf("tasks: owner %+v street %+v", owner, st)
	}
	if st.Deadline.Sub(clk.t) != time.Hour {
		t.Fatalf("warning signs due in %v, want 1h", st.Deadline.Sub(clk.t))
	}

	// Only the street office puts up the signs; only the owner reports the fix.
	if _, err := e.Interim(ctx, st.ID, power, "signs", ""); !errors.Is(err, cases.ErrForbidden) {
		t.Fatalf("power company did the street's interim task: %v", err)
	}
	if _, err := e.ReportFixed(ctx, owner.ID, water, "fixed", "abc"); !errors.Is(err, cases.ErrForbidden) {
		t.Fatalf("water company reported the power company's fix: %v", err)
	}
	clk.advance(20 * time.Minute)
	c, err = e.Interim(ctx, st.ID, street, "warning signs and cones up", "")
	mustStatus(t, c, err, cases.StatusDispatched)

	// Three hours later the cover is back and the camera sees it.
	clk.advance(3 * time.Hour)
	end, raw := golden(t, "report-cover-end.json")
	end.ObservedAt = clk.t
	apply(t, e, end, raw)
	c, err = e.Store.Case(ctx, id)
	c = mustStatus(t, c, err, cases.StatusClosed)
	owner, _ = tasksOf(t, e, id)
	if owner.Status != cases.TaskDone || !owner.DoneAt.Equal(clk.t) {
		t.Fatalf("owner task after the camera check: %+v", owner)
	}
	evs := events(t, e, id)
	var actions []string
	for _, ev := range evs {
		actions = append(actions, ev.Action)
	}
	want := []string{"reported", "verified_dispatched", "interim_action", "camera_check_closed"}
	if len(actions) != len(want) {
		t.Fatalf("log %v, want %v", actions, want)
	}
	for i := range want {
		if actions[i] != want[i] {
			t.Fatalf("log %v, want %v", actions, want)
		}
	}

	scores, err := e.DepartmentScores(ctx, now.Add(-time.Hour), now.Add(24*time.Hour), cases.DefaultWeights)
	if err != nil {
		t.Fatal(err)
	}
	if len(scores) != 1 || scores[0].Party != "dept-power" || scores[0].OnTime != 1 || scores[0].Grade != "A" ||
		len(scores[0].Cases.OnTime) != 1 || scores[0].Cases.OnTime[0] != id {
		t.Fatalf("scores %+v", scores)
	}
}

func TestBranches(t *testing.T) {
	ctx := context.Background()
	t.Run("reject needs a reason and ends the case", func(t *testing.T) {
		e, _, id := newFlow(t)
		if _, err := e.Verify(ctx, id, verifier, false, ""); !errors.Is(err, cases.ErrInvalid) {
			t.Fatalf("reject without reason: %v", err)
		}
		c, err := e.Verify(ctx, id, verifier, false, "shadow, not a hole")
		mustStatus(t, c, err, cases.StatusRejected)
		if _, err := e.Verify(ctx, id, verifier, true, ""); !errors.Is(err, cases.ErrState) {
			t.Fatalf("verify twice: %v", err)
		}
	})
	t.Run("return to the wrong department and re-dispatch", func(t *testing.T) {
		e, _, id := newFlow(t)
		e.Verify(ctx, id, verifier, true, "")
		owner, _ := tasksOf(t, e, id)
		c, err := e.Return(ctx, owner.ID, power, "this is a water valve chamber")
		mustStatus(t, c, err, cases.StatusReturned)
		if _, err := e.Redispatch(ctx, id, power, "dept-water", ""); !errors.Is(err, cases.ErrForbidden) {
			t.Fatalf("department re-dispatched: %v", err)
		}
		c, err = e.Redispatch(ctx, id, dispatcher, "dept-water", "valve chamber")
		c = mustStatus(t, c, err, cases.StatusDispatched)
		if c.OwnerDepartment != "dept-water" {
			t.Fatalf("owner %s", c.OwnerDepartment)
		}
		scores, _ := e.DepartmentScores(ctx, now.Add(-time.Hour), now.Add(time.Hour), cases.DefaultWeights)
		for _, s := range scores {
			if s.Party == "dept-power" {
				t.Fatalf("a returned task counts against the power company: %+v", s)
			}
		}
	})
	t.Run("failed check means rework", func(t *testing.T) {
		e, clk, id := newFlow(t)
		e.Verify(ctx, id, verifier, true, "")
		owner, _ := tasksOf(t, e, id)
		if _, err := e.ReportFixed(ctx, owner.ID, power, "replaced", ""); !errors.Is(err, cases.ErrInvalid) {
			t.Fatalf("fix without photo: %v", err)
		}
		c, err := e.ReportFixed(ctx, owner.ID, power, "replaced", "aa11")
		mustStatus(t, c, err, cases.StatusFixed)
		c, err = e.Check(ctx, id, supervisor, false, "the new cover rocks", "bb22")
		c = mustStatus(t, c, err, cases.StatusDispatched)
		if c.Reworks != 1 {
			t.Fatalf("reworks %d", c.Reworks)
		}
		clk.advance(time.Hour)
		e.ReportFixed(ctx, owner.ID, power, "re-seated", "cc33")
		c, err = e.Check(ctx, id, supervisor, true, "solid", "dd44")
		mustStatus(t, c, err, cases.StatusClosed)
		scores, _ := e.DepartmentScores(ctx, now.Add(-time.Hour), now.Add(time.Hour), cases.DefaultWeights)
		if len(scores) != 1 || scores[0].ReworkRate != 1 || scores[0].Grade == "A" {
			t.Fatalf("rework not scored: %+v", scores)
		}
	})
	t.Run("extension moves the deadline only when approved", func(t *testing.T) {
		e, _, id := newFlow(t)
		c, _ := e.Verify(ctx, id, verifier, true, "")
		owner, _ := tasksOf(t, e, id)
		if _, err := e.RequestExtension(ctx, owner.ID, power, 0, "x"); !errors.Is(err, cases.ErrInvalid) {
			t.Fatalf("zero-hour extension: %v", err)
		}
		e.RequestExtension(ctx, owner.ID, power, 2, "road closure needed")
		if _, err := e.DecideExtension(ctx, owner.ID, power, true, ""); !errors.Is(err, cases.ErrForbidden) {
			t.Fatalf("department approved its own extension: %v", err)
		}
		c2, err := e.DecideExtension(ctx, owner.ID, dispatcher, true, "ok")
		if err != nil || c2.Deadline.Sub(c.Deadline) != 2*time.Hour {
			t.Fatalf("deadline moved %v, %v; want 2h", c2.Deadline.Sub(c.Deadline), err)
		}
	})
	t.Run("hold, resume and void", func(t *testing.T) {
		e, _, id := newFlow(t)
		e.Verify(ctx, id, verifier, true, "")
		c, err := e.Hold(ctx, id, dispatcher, "road works by the city first")
		mustStatus(t, c, err, cases.StatusOnHold)
		c, err = e.Resume(ctx, id, dispatcher, "road works done")
		mustStatus(t, c, err, cases.StatusDispatched)
		c, err = e.Void(ctx, id, dispatcher, "duplicate of a hotline case")
		mustStatus(t, c, err, cases.StatusVoided)
		owner, st := tasksOf(t, e, id)
		if owner.Status != cases.TaskCancelled || st.Status != cases.TaskCancelled {
			t.Fatalf("tasks of a voided case still open: %s %s", owner.Status, st.Status)
		}
	})
	t.Run("overdue tasks are flagged once and logged", func(t *testing.T) {
		e, clk, id := newFlow(t)
		e.Verify(ctx, id, verifier, true, "")
		clk.advance(90 * time.Minute) // the street's 1 h interim limit has passed, the owner's has not
		n, err := e.MarkOverdue(ctx)
		if err != nil || n != 1 {
			t.Fatalf("MarkOverdue = %d, %v; want 1", n, err)
		}
		if n, _ := e.MarkOverdue(ctx); n != 0 {
			t.Fatalf("flagged again: %d", n)
		}
		evs := events(t, e, id)
		if evs[len(evs)-1].Action != "overdue" {
			t.Fatalf("last event %+v", evs[len(evs)-1])
		}
	})
	t.Run("auto-accept rule dispatches and is audited", func(t *testing.T) {
		e := newEngine(t)
		e.AutoAccept = []cases.AutoAcceptRule{{Category: "0105", MinConfidence: 0.9}, {Category: "0107", MinConfidence: 0.9}}
		r, raw := golden(t, "report-cover-new.json")
		out := apply(t, e, r, raw)
		c, _ := e.Store.Case(ctx, out.CaseID)
		if c.Status != cases.StatusDispatched {
			t.Fatalf("status %s", c.Status)
		}
		evs := events(t, e, out.CaseID)
		if evs[len(evs)-1].Actor != "rule:auto-accept" {
			t.Fatalf("auto-accept not audited: %+v", evs)
		}
		r.Seq, r.Confidence = 99, 0.5
		r.FacilityID = "1101050107000789"
		out = apply(t, e, r, raw)
		if c, _ := e.Store.Case(ctx, out.CaseID); c.Status != cases.StatusReported {
			t.Fatalf("low-confidence detection auto-accepted: %s", c.Status)
		}
	})
}

func TestSensorAlarmOpensCoverCase(t *testing.T) {
	e := newEngine(t)
	r, raw := golden(t, "report-cover-new.json")
	r.Kind, r.State, r.Evidence = "sensor", "displaced", nil
	r.Sensor = &wire.SensorReading{V: 1, Sensor: "tilt-0007", Kind: wire.SensorCoverTilt, FacilityID: r.FacilityID,
		At: r.ObservedAt, Value: 31, Unit: "deg", Alarm: true}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	out := apply(t, e, r, raw)
	c, err := e.Store.Case(context.Background(), out.CaseID)
	if !out.Created || err != nil || c.DetectionState != "displaced" || c.OwnerDepartment != "dept-power" {
		t.Fatalf("sensor alarm: %+v %+v %v", out, c, err)
	}
}

func TestOccupationEpisodeIsFiledAndClosedByTheCamera(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t)
	r, raw := golden(t, "report-cover-new.json")
	occ := r
	occ.Kind, occ.FacilityID, occ.Zone, occ.Rule, occ.State = "occupation", "", "lane-east", "no_parking", "occupied"
	occ.Box, occ.Share, occ.ID = []int{10, 10, 50, 30}, 0.4, "cam1-ep-1"
	if err := occ.Validate(); err != nil {
		t.Fatal(err)
	}
	out := apply(t, e, occ, raw)
	c, _ := e.Store.Case(ctx, out.CaseID)
	if !out.Created || c.Category != "0505" || c.Street != sanlitun || c.StreetOffice != sanlitunDept {
		t.Fatalf("occupation case %+v", c)
	}
	c, err := e.Verify(ctx, c.ID, verifier, true, "")
	if err != nil || c.OwnerDepartment != sanlitunDept {
		t.Fatalf("verify: %+v %v (the street office owns street-order events)", c, err)
	}
	end := occ
	end.Seq, end.Phase, end.State = occ.Seq+1, "end", "clear"
	apply(t, e, end, raw)
	if c, _ := e.Store.Case(ctx, out.CaseID); c.Status != cases.StatusClosed {
		t.Fatalf("status %s after the camera saw the zone clear", c.Status)
	}
}
