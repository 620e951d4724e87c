package cases

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gridwatch/gridwatch/cloud/store"
)

// Weights of the combined score. Cities differ: they are configuration.
// The defaults follow one published implementation for departments:
// 10 × volume + 30 × 处置率 + 30 × 按期处置率 + 30 × (1 − 返工率).
type Weights struct {
	Volume  float64 `json:"volume"`
	Handled float64 `json:"handled"`
	OnTime  float64 `json:"on_time"`
	Rework  float64 `json:"rework"`
}

// DefaultWeights are the department weights above.
var DefaultWeights = Weights{Volume: 10, Handled: 30, OnTime: 30, Rework: 30}

// Score is one evaluated party's figures over a period. Every ratio can be
// drilled down to the cases behind it.
type Score struct {
	Party       string  `json:"party"`
	Name        string  `json:"name"`
	Kind        string  `json:"kind"` // department or street
	Due         int     `json:"due"`
	Handled     int     `json:"handled"`
	OnTime      int     `json:"on_time"`
	Reworked    int     `json:"reworked"`
	HandledRate float64 `json:"handled_rate"` // 处置率 / 结案率
	OnTimeRate  float64 `json:"on_time_rate"` // 按期处置率 / 按期结案率
	ReworkRate  float64 `json:"rework_rate"`  // 返工率
	Volume      float64 `json:"volume"`       // handled relative to the busiest party
	Score       float64 `json:"score"`
	Grade       string  `json:"grade"`
	Cases       Drill   `json:"cases"`
}

// Drill lists the case ids behind each figure.
type Drill struct {
	Due      []int64 `json:"due"`
	Handled  []int64 `json:"handled"`
	OnTime   []int64 `json:"on_time"`
	Reworked []int64 `json:"reworked"`
}

// Grade maps a combined score to A ≥ 90, B ≥ 75, C ≥ 60, else D.
func Grade(score float64) string {
	switch {
	case score >= 90:
		return "A"
	case score >= 75:
		return "B"
	case score >= 60:
		return "C"
	default:
		return "D"
	}
}

// DepartmentScores evaluates owner departments on the fix tasks created in
// [from, to): a task returned as "not ours" does not count against its
// department; a fix is on time when done by its (possibly extended) deadline.
func (e *Engine) DepartmentScores(ctx context.Context, from, to time.Time, w Weights) ([]Score, error) {
	tasks, err := e.Store.TasksCreatedBetween(ctx, from, to)
	if err != nil {
		return nil, err
	}
	reworked := map[int64]bool{}
	cs, err := e.Store.CasesCreatedBetween(ctx, from.Add(-90*24*time.Hour), to)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if c.Reworks > 0 {
			reworked[c.ID] = true
		}
	}
	by := map[string]*Score{}
	for _, k := range tasks {
		if k.Role != RoleOwner || k.Status == TaskReturned {
			continue
		}
		s := by[k.Dept]
		if s == nil {
			s = &Score{Party: k.Dept, Kind: "department"}
			by[k.Dept] = s
		}
		s.Due++
		s.Cases.Due = append(s.Cases.Due, k.CaseID)
		if k.Status == TaskDone {
			s.Handled++
			s.Cases.Handled = append(s.Cases.Handled, k.CaseID)
			if !k.DoneAt.After(k.Deadline) {
				s.OnTime++
				s.Cases.OnTime = append(s.Cases.OnTime, k.CaseID)
			}
		}
		if reworked[k.CaseID] {
			s.Reworked++
			s.Cases.Reworked = append(s.Cases.Reworked, k.CaseID)
		}
	}
	return e.finish(by, w), nil
}

// StreetScores evaluates street offices (属地) on the cases filed in their
// cells in [from, to): 结案率 closed / due and 按期结案率 closed on time / due.
func (e *Engine) StreetScores(ctx context.Context, from, to time.Time, w Weights) ([]Score, error) {
	cs, err := e.Store.CasesCreatedBetween(ctx, from, to)
	if err != nil {
		return nil, err
	}
	by := map[string]*Score{}
	for _, c := range cs {
		if c.Street == "" || c.Status == StatusReported || c.Status == StatusRejected || c.Status == StatusVoided {
			continue // not filed
		}
		s := by[c.Street]
		if s == nil {
			s = &Score{Party: c.Street, Name: c.StreetName, Kind: "street"}
			by[c.Street] = s
		}
		s.Due++
		s.Cases.Due = append(s.Cases.Due, c.ID)
		if c.Status == StatusClosed {
			s.Handled++
			s.Cases.Handled = append(s.Cases.Handled, c.ID)
			if !c.ClosedAt.After(c.Deadline) {
				s.OnTime++
				s.Cases.OnTime = append(s.Cases.OnTime, c.ID)
			}
		}
		if c.Reworks > 0 {
			s.Reworked++
			s.Cases.Reworked = append(s.Cases.Reworked, c.ID)
		}
	}
	return e.finish(by, w), nil
}

func (e *Engine) finish(by map[string]*Score, w Weights) []Score {
	maxHandled := 0
	for _, s := range by {
		maxHandled = max(maxHandled, s.Handled)
	}
	out := make([]Score, 0, len(by))
	for _, s := range by {
		if s.Name == "" {
			if d, ok := e.Registry.Department(s.Party); ok {
				s.Name = d.Name
			}
		}
		s.HandledRate = ratio(s.Handled, s.Due)
		s.OnTimeRate = ratio(s.OnTime, s.Due)
		s.ReworkRate = ratio(s.Reworked, s.Due)
		if maxHandled > 0 {
			s.Volume = float64(s.Handled) / float64(maxHandled)
		}
		total := w.Volume + w.Handled + w.OnTime + w.Rework
		if total > 0 {
			s.Score = 100 * (w.Volume*s.Volume + w.Handled*s.HandledRate + w.OnTime*s.OnTimeRate + w.Rework*(1-s.ReworkRate)) / total
		}
		s.Grade = Grade(s.Score)
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].Party < out[j].Party
	})
	return out
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// SupervisorWeights weight a supervisor's (监督员) indicators; CheckHours is
// how long after the owner's report back a check (核查) counts as on time.
type SupervisorWeights struct {
	Volume      float64 `json:"volume"`
	Valid       float64 `json:"valid"`
	CheckOnTime float64 `json:"check_on_time"`
	CheckHours  float64 `json:"check_hours"`
}

// DefaultSupervisorWeights: what a supervisor finds must be real, and a fix
// must be checked within two hours; how much they report counts a little.
var DefaultSupervisorWeights = SupervisorWeights{Volume: 10, Valid: 45, CheckOnTime: 45, CheckHours: 2}

// SupervisorScore is one supervisor's figures over a period. Not scored: the
// miss rate (漏报: cases others found in their cells) needs the cells each
// supervisor patrols, which the registry does not hold yet; and supervisors
// verify only their own reports here, so on-time verification is always met.
type SupervisorScore struct {
	Party           string  `json:"party"` // the supervisor's name as in the audit log
	Kind            string  `json:"kind"`  // supervisor
	Reports         int     `json:"reports"`
	Valid           int     `json:"valid"`
	Checks          int     `json:"checks"`
	ChecksOnTime    int     `json:"checks_on_time"`
	ValidRate       float64 `json:"valid_rate"`         // reports whose case was not rejected or voided / reports
	CheckOnTimeRate float64 `json:"check_on_time_rate"` // checks within CheckHours of the report back / checks
	Volume          float64 `json:"volume"`             // reports relative to the busiest supervisor
	Score           float64 `json:"score"`
	Grade           string  `json:"grade"`
	Cases           struct {
		Reports      []int64 `json:"reports"`
		Valid        []int64 `json:"valid"`
		Checks       []int64 `json:"checks"`
		ChecksOnTime []int64 `json:"checks_on_time"`
	} `json:"cases"`
}

// SupervisorScores evaluates supervisors on what they did in [from, to),
// read from the audit log, so that any period gives the same figures again:
// each report they filed or joined to an open case (valid unless the case
// ended rejected or voided), and each check they made of a fixed case (on
// time when made within CheckHours of the owner's latest report back). An
// indicator with nothing to measure (no checks, say) leaves the weighted
// mean instead of counting as zero.
func (e *Engine) SupervisorScores(ctx context.Context, from, to time.Time, w SupervisorWeights) ([]SupervisorScore, error) {
	evs, err := e.Store.EventsByActorBetween(ctx, Supervisor+":", from, to)
	if err != nil {
		return nil, err
	}
	by := map[string]*SupervisorScore{}
	caseStatus := map[int64]string{}
	status := func(id int64) (string, error) {
		if s, ok := caseStatus[id]; ok {
			return s, nil
		}
		c, err := e.Store.Case(ctx, id)
		if err != nil {
			return "", fmt.Errorf("case %d: %w", id, err)
		}
		caseStatus[id] = c.Status
		return c.Status, nil
	}
	for _, ev := range evs {
		name := strings.TrimPrefix(ev.Actor, Supervisor+":")
		s := by[name]
		if s == nil {
			s = &SupervisorScore{Party: name, Kind: "supervisor"}
			by[name] = s
		}
		switch ev.Action {
		case "reported", "joined_report":
			s.Reports++
			s.Cases.Reports = append(s.Cases.Reports, ev.CaseID)
			st, err := status(ev.CaseID)
			if err != nil {
				return nil, err
			}
			if st != StatusRejected && st != StatusVoided {
				s.Valid++
				s.Cases.Valid = append(s.Cases.Valid, ev.CaseID)
			}
		case "checked_closed", "rework":
			s.Checks++
			s.Cases.Checks = append(s.Cases.Checks, ev.CaseID)
			fixedAt, err := e.lastFixed(ctx, ev)
			if err != nil {
				return nil, err
			}
			limit := time.Duration(w.CheckHours * float64(time.Hour))
			if !fixedAt.IsZero() && !ev.At.After(fixedAt.Add(limit)) {
				s.ChecksOnTime++
				s.Cases.ChecksOnTime = append(s.Cases.ChecksOnTime, ev.CaseID)
			}
		}
	}
	maxReports := 0
	for _, s := range by {
		maxReports = max(maxReports, s.Reports)
	}
	out := make([]SupervisorScore, 0, len(by))
	for _, s := range by {
		if s.Reports == 0 && s.Checks == 0 {
			continue // only other actions (such as a verification) in the period
		}
		s.ValidRate = ratio(s.Valid, s.Reports)
		s.CheckOnTimeRate = ratio(s.ChecksOnTime, s.Checks)
		if maxReports > 0 {
			s.Volume = float64(s.Reports) / float64(maxReports)
		}
		sum, total := w.Volume*s.Volume, w.Volume
		if s.Reports > 0 {
			sum, total = sum+w.Valid*s.ValidRate, total+w.Valid
		}
		if s.Checks > 0 {
			sum, total = sum+w.CheckOnTime*s.CheckOnTimeRate, total+w.CheckOnTime
		}
		if total > 0 {
			s.Score = 100 * sum / total
		}
		s.Grade = Grade(s.Score)
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].Party < out[j].Party
	})
	return out, nil
}

// lastFixed is when the owner last reported the fix before the check ev.
func (e *Engine) lastFixed(ctx context.Context, check store.Event) (time.Time, error) {
	evs, err := e.Store.Events(ctx, check.CaseID)
	if err != nil {
		return time.Time{}, err
	}
	var at time.Time
	for _, ev := range evs {
		if ev.ID >= check.ID {
			break
		}
		if ev.Action == "fixed" {
			at = ev.At
		}
	}
	return at, nil
}
