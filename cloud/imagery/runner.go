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
// started twice is one job), queued and run one at a time (a job already
// uses every core), its changes filed into the case engine when it
// finishes.
//
// A job's place in the queue survives restarts: run.json in its directory
// says queued, running, done or failed. Resume (called when the cloud
// starts) puts every job that was queued or running back in the queue in
// the order they were posted; a running one continues from its finished
// units, and filing it again creates nothing twice.
type Runner struct {
	Dir      string
	Intake   Intake         // nil: changes are not filed
	Evidence EvidencePutter // where the crops go when filing
	Log      *slog.Logger
	// Progress, if set, is called after every unit of every job (after the
	// API's status has been updated).
	Progress func(id string, p Progress)

	mu      sync.Mutex
	jobs    map[string]*RunStatus
	queue   []string // ids waiting, in order
	wake    chan struct{}
	stopped chan struct{} // closed when the worker has stopped
	started bool
}

// RunStatus is what the API shows of a job.
type RunStatus struct {
	ID       string       `json:"id"`
	State    string       `json:"state"` // queued, running, done, failed
	Position int          `json:"queue_position,omitempty"`
	Spec     JobSpec      `json:"spec"`
	File     FileOptions  `json:"file"`
	Done     int          `json:"units_done"`
	Total    int          `json:"units_total"`
	Resumed  int          `json:"units_resumed"`
	Changes  int          `json:"changes"`
	Error    string       `json:"error,omitempty"`
	Summary  *Summary     `json:"summary,omitempty"`
	Filed    *FileSummary `json:"filed,omitempty"`
	Started  time.Time    `json:"started"` // when it was posted
	Updated  time.Time    `json:"updated"`
	Progress float64      `json:"progress"` // 0..1
	// Restarts counts the times the cloud stopped while the job was queued
	// or running and resumed it when it started again.
	Restarts int `json:"restarts,omitempty"`
}

// Job states.
const (
	JobQueued  = "queued"
	JobRunning = "running"
	JobDone    = "done"
	JobFailed  = "failed"
)

// runFile is a job's place in the runner (runState), next to job.json.
const runFile = "run.json"

// runState is what survives a restart of the runner.
type runState struct {
	State    string       `json:"state"`
	Spec     JobSpec      `json:"spec"`
	File     FileOptions  `json:"file"`
	Posted   time.Time    `json:"posted"`
	Error    string       `json:"error,omitempty"`
	Filed    *FileSummary `json:"filed,omitempty"`
	Restarts int          `json:"restarts,omitempty"`
	Units    int          `json:"units_total,omitempty"` // known once it has run
}

func (r *Runner) saveRun(id string, st *RunStatus) error {
	rs := runState{State: st.State, Spec: st.Spec, File: st.File, Posted: st.Started, Error: st.Error, Filed: st.Filed, Restarts: st.Restarts, Units: st.Total}
	data, _ := json.MarshalIndent(rs, "", "  ")
	dir := filepath.Join(r.Dir, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("imagery job %s: %w", id, err)
	}
	tmp := filepath.Join(dir, runFile+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("imagery job %s: %w", id, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, runFile)); err != nil {
		return fmt.Errorf("imagery job %s: %w", id, err)
	}
	return nil
}

func (r *Runner) loadRun(id string) (runState, error) {
	var rs runState
	data, err := os.ReadFile(filepath.Join(r.Dir, id, runFile))
	if err != nil {
		return rs, err
	}
	if err := json.Unmarshal(data, &rs); err != nil {
		return rs, fmt.Errorf("imagery job %s: %s: %w", id, runFile, err)
	}
	return rs, nil
}

// init starts the worker once; it runs until ctx ends.
func (r *Runner) init(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return
	}
	r.started = true
	if r.jobs == nil {
		r.jobs = map[string]*RunStatus{}
	}
	if r.Log == nil {
		r.Log = slog.Default()
	}
	r.wake = make(chan struct{}, 1)
	r.stopped = make(chan struct{})
	go r.work(ctx)
}

// Resume puts back in the queue every job a previous run of the cloud left
// queued or running (oldest first) and starts the worker. It returns the
// ids it queued.
func (r *Runner) Resume(ctx context.Context) ([]string, error) {
	r.init(ctx)
	es, err := os.ReadDir(r.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("imagery jobs: %w", err)
	}
	type pending struct {
		id string
		rs runState
	}
	var ps []pending
	for _, e := range es {
		if !e.IsDir() || !jobIDRE.MatchString(e.Name()) {
			continue
		}
		rs, err := r.loadRun(e.Name())
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			r.Log.Error("imagery job not resumed", "job", e.Name(), "err", err)
			continue
		}
		if rs.State == JobQueued || rs.State == JobRunning {
			ps = append(ps, pending{e.Name(), rs})
		}
	}
	sort.Slice(ps, func(i, j int) bool {
		return ps[i].rs.Posted.Before(ps[j].rs.Posted) || ps[i].rs.Posted.Equal(ps[j].rs.Posted) && ps[i].id < ps[j].id
	})
	var ids []string
	for _, p := range ps {
		r.mu.Lock()
		if _, known := r.jobs[p.id]; known {
			r.mu.Unlock()
			continue
		}
		st := &RunStatus{ID: p.id, State: JobQueued, Spec: p.rs.Spec, File: p.rs.File, Started: p.rs.Posted,
			Updated: time.Now().UTC(), Filed: p.rs.Filed, Restarts: p.rs.Restarts + 1, Total: p.rs.Units}
		if j, err := OpenJob(filepath.Join(r.Dir, p.id), nil); err == nil {
			st.Done, st.Resumed, st.Changes = len(j.done), len(j.done), len(j.Changes())
		}
		r.jobs[p.id] = st
		r.queue = append(r.queue, p.id)
		err := r.saveRun(p.id, st)
		r.mu.Unlock()
		if err != nil {
			return ids, err
		}
		r.Log.Info("imagery job resumed after a restart", "job", p.id, "was", p.rs.State, "units_done", st.Done)
		ids = append(ids, p.id)
	}
	r.signal()
	return ids, nil
}

func (r *Runner) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Wait blocks until the worker has stopped (its context ended and the job
// in flight, if any, stopped after its units in flight).
func (r *Runner) Wait() {
	r.mu.Lock()
	ch := r.stopped
	r.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// Start queues the comparison (or returns the job already doing or having
// done it; a failed one is queued again and continues where it stopped).
// The inputs must exist; everything else about them is checked when it
// runs.
func (r *Runner) Start(ctx context.Context, spec JobSpec, file FileOptions) (RunStatus, error) {
	r.init(ctx)
	if err := spec.Normalize(); err != nil {
		return RunStatus{}, err
	}
	for _, f := range []struct{ name, path string }{{"before", spec.Before}, {"after", spec.After}, {"area", spec.Area}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return RunStatus{}, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if file.MinScore < 0 || file.MinScore > 1 {
		return RunStatus{}, fmt.Errorf("file_min_score: %v is not within [0,1]", file.MinScore)
	}
	if file.MinAreaM2 < 0 {
		return RunStatus{}, fmt.Errorf("file_min_area_m2: %v is negative", file.MinAreaM2)
	}
	id, err := SpecID(spec)
	if err != nil {
		return RunStatus{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, ok := r.jobs[id]; ok && st.State != JobFailed {
		return r.withPosition(*st), nil
	}
	if rs, err := r.loadRun(id); err == nil && rs.State == JobDone {
		st, _ := r.diskStatus(id)
		return st, nil
	}
	now := time.Now().UTC()
	st := &RunStatus{ID: id, State: JobQueued, Spec: spec, File: file, Started: now, Updated: now}
	if old, ok := r.jobs[id]; ok {
		st.Restarts = old.Restarts
	}
	if err := r.saveRun(id, st); err != nil {
		return RunStatus{}, err
	}
	r.jobs[id] = st
	r.queue = append(r.queue, id)
	r.signal()
	return r.withPosition(*st), nil
}

// withPosition fills a queued job's place in the queue (1 = next). r.mu held.
func (r *Runner) withPosition(st RunStatus) RunStatus {
	st.Position = 0
	if st.State == JobQueued {
		for i, id := range r.queue {
			if id == st.ID {
				st.Position = i + 1
			}
		}
	}
	return st
}

// Status returns a job's state; jobs of earlier server runs are read from
// their directories.
func (r *Runner) Status(id string) (RunStatus, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st, ok := r.jobs[id]; ok {
		return r.withPosition(*st), true
	}
	if !jobIDRE.MatchString(id) {
		return RunStatus{}, false
	}
	return r.diskStatus(id)
}

// diskStatus reads a job this runner has not run: its run.json and units.
func (r *Runner) diskStatus(id string) (RunStatus, bool) {
	rs, rerr := r.loadRun(id)
	j, err := OpenJob(filepath.Join(r.Dir, id), nil)
	if err != nil && rerr != nil {
		return RunStatus{}, false
	}
	st := RunStatus{ID: id, State: JobFailed, Error: "interrupted; start it again to resume"}
	if j != nil {
		st.Spec, st.Started = j.State.Spec, j.State.Created
		st.Done, st.Changes = len(j.done), len(j.Changes())
	}
	if rerr == nil { // a job queued but not started yet has only run.json
		st.State, st.Spec, st.File, st.Started, st.Error, st.Filed, st.Restarts = rs.State, rs.Spec, rs.File, rs.Posted, rs.Error, rs.Filed, rs.Restarts
		st.Total = rs.Units
		if st.Total > 0 {
			st.Progress = float64(st.Done) / float64(st.Total)
		}
	}
	if data, err := os.ReadFile(filepath.Join(r.Dir, id, SummaryFile)); err == nil {
		var s Summary
		if json.Unmarshal(data, &s) == nil {
			st.Summary, st.Total, st.Progress, st.Changes = &s, s.Units, 1, s.Changes
			if st.State == JobFailed && st.Error == "interrupted; start it again to resume" {
				st.State, st.Error = JobDone, ""
			}
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

func (r *Runner) work(ctx context.Context) {
	defer close(r.stopped)
	for {
		r.mu.Lock()
		var id string
		if len(r.queue) > 0 {
			id, r.queue = r.queue[0], r.queue[1:]
		}
		r.mu.Unlock()
		if id == "" {
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		r.run(ctx, id)
	}
}

// update changes a job's status; persist writes run.json too.
func (r *Runner) update(id string, persist bool, fn func(st *RunStatus)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.jobs[id]
	if !ok {
		return
	}
	fn(st)
	st.Updated = time.Now().UTC()
	if persist {
		if err := r.saveRun(id, st); err != nil {
			r.Log.Error("imagery job state not saved", "job", id, "err", err)
		}
	}
}

func (r *Runner) run(ctx context.Context, id string) {
	var spec JobSpec
	var file FileOptions
	r.update(id, true, func(st *RunStatus) { st.State, st.Error, spec, file = JobRunning, "", st.Spec, st.File })
	log := r.Log.With("job", id)
	fail := func(err error) {
		if ctx.Err() != nil {
			// The cloud is stopping: run.json still says running, so the
			// next start resumes the job.
			log.Info("imagery job interrupted; it resumes when the cloud starts again", "err", err)
			return
		}
		log.Error("imagery job failed", "err", err)
		r.update(id, true, func(st *RunStatus) { st.State, st.Error = JobFailed, err.Error() })
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
	log.Info("imagery job running", "before", spec.Before, "after", spec.After, "area", spec.Area, "units_done", len(j.done))
	sum, err := j.Run(ctx, m, RunOptions{Progress: func(p Progress) {
		r.mu.Lock()
		first := r.jobs[id] != nil && r.jobs[id].Total != p.Total
		r.mu.Unlock()
		r.update(id, first, func(st *RunStatus) { // run.json learns the unit count once
			st.Done, st.Total, st.Resumed, st.Changes = p.Done, p.Total, p.Resumed, p.Changes
			if p.Total > 0 {
				st.Progress = float64(p.Done) / float64(p.Total)
			}
		})
		if r.Progress != nil {
			r.Progress(id, p)
		}
	}})
	if err != nil {
		fail(err)
		return
	}
	r.update(id, false, func(st *RunStatus) {
		st.Summary, st.Changes, st.Total, st.Done, st.Progress = sum, sum.Changes, sum.Units, sum.Units, 1
	})
	if r.Intake != nil {
		fs, err := FileChanges(ctx, j, r.Intake, r.Evidence, file)
		if err != nil {
			fail(fmt.Errorf("filing changes: %w", err))
			return
		}
		r.update(id, false, func(st *RunStatus) { st.Filed = &fs })
		log.Info("imagery job filed", "created", fs.Created, "joined", fs.Joined, "duplicate", fs.Duplicate, "skipped", fs.Skipped)
	}
	r.update(id, true, func(st *RunStatus) { st.State = JobDone })
	log.Info("imagery job done", "changes", sum.Changes, "units", sum.Units, "seconds", sum.Seconds)
}
