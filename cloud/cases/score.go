package cases

import (
	"context"
	"sort"
	"time"
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
