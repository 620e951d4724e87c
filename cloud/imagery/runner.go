package imagery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Runner runs comparison jobs in the background for the API: each job in
// its own directory under Dir (named by SpecID, so the same comparison
// started twice is one job), one job at a time (a job already uses every
// core), its changes filed into the case engine when it finishes.
type Runner struct {
	Dir      string
	Intake   Intake         // nil: changes are not filed
	Evidence EvidencePutter // where the crops go when filing
	Log      *slog.Logger

	mu    sync.Mutex
	jobs  map[string]*RunStatus
	queue chan string
	once  sync.Once
}

// RunStatus is what the API shows of a job.
type RunStatus struct {
	ID       string       `json:"id"`
	State    string       `json:"state"` // queued, running, done, failed
	Spec     JobSpec      `json:"spec"`
	File     FileOptions  `json:"file"`
	Done     int          `json:"units_done"`
	Total    int          `json:"units_total"`
	Resumed  int          `json:"units_resumed"`
	Changes  int          `json:"changes"`
	Error    string       `json:"error,omitempty"`
	Summary  *Summary     `json:"summary,omitempty"`
	Filed    *FileSummary `json:"filed,omitempty"`
	Started  time.Time    `json:"started"`
	Updated  time.Time    `json:"updated"`
	Progress float64      `json:"progress"` // 0..1
}

// Job states.
const (
	JobQueued  = "queued"
	JobRunning = "running"
	JobDone    = "done"
	JobFailed  = "failed"
)

// Start queues the comparison (or returns the job already doing it). The
// inputs must exist; everything else about them is checked when it runs.
func (r *Runner) Start(ctx context.Context, spec JobSpec, file FileOptions) (RunStatus, error) {
	r.once.Do(func() { r.start(ctx) })
	if err := spec.Normalize(); err != nil {
		return RunStatus{}, err
	}
	for name, p := range map[string]string{"before": spec.Before, "after": spec.After, "area": spec.Area} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return RunStatus{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	id, err := SpecID(spec)
	if err != nil {
		return RunStatus{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, ok := r.jobs[id]; ok && st.State != JobFailed {
		return *st, nil
	}
	now := time.Now().UTC()
	st := &RunStatus{ID: id, State: JobQueued, Spec: spec, File: file, Started: now, Updated: now}
	r.jobs[id] = st
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return RunStatus{}, err
	}
	if data, err := json.Marshal(file); err == nil {
		_ = os.MkdirAll(filepath.Join(r.Dir, id), 0o755)
		_ = os.WriteFile(filepath.Join(r.Dir, id, "file-options.json"), data, 0o644)
	}
	select {
	case r.queue <- id:
	default:
		delete(r.jobs, id)
		return RunStatus{}, errors.New("too many queued jobs")
	}
	return *st, nil
}

// Status returns a job's state; jobs of earlier server runs are read from
// their directories.
func (r *Runner) Status(id string) (RunStatus, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, ok := r.jobs[id]; ok {
		return *st, true
	}
	if !jobIDRE.MatchString(id) {
		return RunStatus{}, false
	}
	j, err := OpenJob(filepath.Join(r.Dir, id), nil)
	if err != nil {
		return RunStatus{}, false
	}
	st := RunStatus{ID: id, State: JobFailed, Spec: j.State.Spec, Started: j.State.Created, Error: "interrupted; start it again to resume"}
	st.Done, st.Changes = len(j.done), len(j.Changes())
	if data, err := os.ReadFile(filepath.Join(r.Dir, id, SummaryFile)); err == nil {
		var s Summary
		if json.Unmarshal(data, &s) == nil {
			st.State, st.Error, st.Summary, st.Total, st.Progress = JobDone, "", &s, s.Units, 1
		}
	}
	return st, true
}

// GeoJSONPath is the changes file of a finished job.
func (r *Runner) GeoJSONPath(id string) (string, bool) {
	if !jobIDRE.MatchString(id) {
		return "", false
	}
	p := filepath.Join(r.Dir, id, GeoJSONFile)
	_, err := os.Stat(p)
	return p, err == nil
}

// List returns the jobs this server knows, newest first.
func (r *Runner) List() []RunStatus {
	r.mu.Lock()
	ids := map[string]bool{}
	for id := range r.jobs {
		ids[id] = true
	}
	r.mu.Unlock()
	if es, err := os.ReadDir(r.Dir); err == nil {
		for _, e := range es {
			if e.IsDir() {
				ids[e.Name()] = true
			}
		}
	}
	var out []RunStatus
	for id := range ids {
		if st, ok := r.Status(id); ok {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.After(out[j].Started) })
	return out
}

func (r *Runner) start(ctx context.Context) {
	r.mu.Lock()
	if r.jobs == nil {
		r.jobs = map[string]*RunStatus{}
	}
	r.queue = make(chan string, 64)
	r.mu.Unlock()
	if r.Log == nil {
		r.Log = slog.Default()
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case id := <-r.queue:
				r.run(ctx, id)
			}
		}
	}()
}

func (r *Runner) update(id string, fn func(st *RunStatus)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, ok := r.jobs[id]; ok {
		fn(st)
		st.Updated = time.Now().UTC()
	}
}

func (r *Runner) run(ctx context.Context, id string) {
	var spec JobSpec
	var file FileOptions
	r.update(id, func(st *RunStatus) { st.State, spec, file = JobRunning, st.Spec, st.File })
	log := r.Log.With("job", id)
	fail := func(err error) {
		log.Error("imagery job failed", "err", err)
		r.update(id, func(st *RunStatus) { st.State, st.Error = JobFailed, err.Error() })
	}
	m, entry, err := LoadModel(spec.Model)
	if err != nil {
		fail(err)
		return
	}
	j, err := OpenJob(filepath.Join(r.Dir, id), &spec)
	if err != nil {
		fail(err)
		return
	}
	j.State.ModelName, j.State.ModelSHA256 = m.Name, entry.SHA256
	log.Info("imagery job running", "before", spec.Before, "after", spec.After, "area", spec.Area)
	sum, err := j.Run(ctx, m, RunOptions{Progress: func(p Progress) {
		r.update(id, func(st *RunStatus) {
			st.Done, st.Total, st.Resumed, st.Changes = p.Done, p.Total, p.Resumed, p.Changes
			if p.Total > 0 {
				st.Progress = float64(p.Done) / float64(p.Total)
			}
		})
	}})
	if err != nil {
		fail(err)
		return
	}
	r.update(id, func(st *RunStatus) { st.Summary, st.Changes, st.Total, st.Progress = sum, sum.Changes, sum.Units, 1 })
	if r.Intake != nil {
		fs, err := FileChanges(ctx, j, r.Intake, r.Evidence, file)
		if err != nil {
			fail(fmt.Errorf("filing changes: %w", err))
			return
		}
		r.update(id, func(st *RunStatus) { st.Filed = &fs })
		log.Info("imagery job filed", "created", fs.Created, "joined", fs.Joined, "duplicate", fs.Duplicate, "skipped", fs.Skipped)
	}
	r.update(id, func(st *RunStatus) { st.State = JobDone })
	log.Info("imagery job done", "changes", sum.Changes, "units", sum.Units, "seconds", sum.Seconds)
}
