package imagery

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/evidence"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store/storetest"
)

// waitState polls a job until it reaches state (or fails the test after a
// generous deadline: the assertion is on the state, not the time).
func waitState(t *testing.T, r *Runner, id, state string) RunStatus {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st, ok := r.Status(id)
		if ok && st.State == state {
			return st
		}
		if ok && st.State == JobFailed || time.Now().After(deadline) {
			t.Fatalf("job %s: %+v, want %s", id, st, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Jobs posted while one runs wait in a queue; a cloud stopped in the
// middle of a job and started again over the same job directory and
// database resumes the running job from its finished units and then the
// queued one, without marking either failed and without filing any change
// twice.
func TestRunnerRestart(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			if backend == "postgres" && testing.Short() {
				t.Skip("-short")
			}
			testRunnerRestart(t, backend)
		})
	}
}

func testRunnerRestart(t *testing.T, backend string) {
	s := newScene(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	db := storetest.Open(t, backend)
	ev, err := evidence.Open(filepath.Join(s.dir, "evidence"))
	if err != nil {
		t.Fatal(err)
	}
	jobs := filepath.Join(s.dir, "jobs")
	model := filepath.Join(moduleRoot(t), "models", "imagery", "change-gbdt-dsifn.json")
	long := JobSpec{Before: s.tiffA, After: s.tiffB, Tile: 128, Model: model, MinAreaM2: 20} // 16 units
	short := JobSpec{Before: s.xyzA, After: s.xyzB, Model: model, MinAreaM2: 20}             // 1 unit

	// First life of the cloud: stopped after a few units of the first job.
	ctx1, stop := context.WithCancel(context.Background())
	defer stop()
	eng1 := &cases.Engine{Store: db.Store, Registry: registry.Demo(), Log: quiet}
	r1 := &Runner{Dir: jobs, Intake: eng1, Evidence: ev, Log: quiet, Progress: func(id string, p Progress) {
		if p.Done >= 3 {
			stop()
		}
	}}
	a, err := r1.Start(ctx1, long, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := r1.Start(ctx1, short, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b.State != JobQueued || b.Position < 1 {
		t.Fatalf("second job %+v: want queued behind the first", b)
	}
	if again, _ := r1.Start(ctx1, short, FileOptions{}); again.ID != b.ID || again.State != JobQueued {
		t.Fatalf("posting the queued job again: %+v", again)
	}
	r1.Wait()
	mid, _ := (&Runner{Dir: jobs}).Status(a.ID)
	if mid.State != JobRunning || mid.Done < 3 || mid.Done >= 16 || mid.Total != 16 {
		t.Fatalf("after the stop the first job reads %+v: want running with 3-15 units done", mid)
	}
	if st, _ := (&Runner{Dir: jobs}).Status(b.ID); st.State != JobQueued {
		t.Fatalf("after the stop the second job reads %+v: want queued", st)
	}
	if n, _ := db.Store.Cases(context.Background(), 1000); len(n) != 0 {
		t.Fatalf("%d cases before any job finished", len(n))
	}

	// Second life: a new runner and engine over the same directory and database.
	store2, err := db.Reopen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer store2.Close()
	ctx2, stop2 := context.WithCancel(context.Background())
	defer func() { stop2() }()
	eng2 := &cases.Engine{Store: store2, Registry: registry.Demo(), Log: quiet}
	r2 := &Runner{Dir: jobs, Intake: eng2, Evidence: ev, Log: quiet}
	ids, err := r2.Resume(ctx2)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids[0] != a.ID || ids[1] != b.ID {
		t.Fatalf("resumed %v, want [%s %s] in the order they were posted", ids, a.ID, b.ID)
	}
	doneA := waitState(t, r2, a.ID, JobDone)
	doneB := waitState(t, r2, b.ID, JobDone)
	if doneA.Resumed < 3 || doneA.Done != 16 || doneA.Total != 16 || doneA.Restarts != 1 || doneA.Progress != 1 {
		t.Fatalf("first job after the restart: %+v: want 16/16 units with ≥ 3 kept from before, one restart", doneA)
	}
	if doneA.Filed == nil || doneB.Filed == nil || doneA.Filed.Created == 0 {
		t.Fatalf("filing: %+v / %+v", doneA.Filed, doneB.Filed)
	}
	cs, err := store2.Cases(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if want := doneA.Filed.Created + doneB.Filed.Created; len(cs) != want {
		t.Fatalf("%d cases, want %d (created by the two jobs)", len(cs), want)
	}
	// The result equals an uninterrupted run of the same comparison.
	ref, _ := runJob(t, filepath.Join(s.dir, "ref"), long, testModel(t))
	jA, _ := OpenJob(filepath.Join(jobs, a.ID), nil)
	got, want := jA.Changes(), ref.Changes()
	if len(got) != len(want) || len(got) == 0 {
		t.Fatalf("resumed job: %d changes, uninterrupted %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Seq != want[i].Seq || got[i].AreaM2 != want[i].AreaM2 {
			t.Fatalf("change %d: %s %.1f m², uninterrupted %s %.1f m²", i, got[i].ID, got[i].AreaM2, want[i].ID, want[i].AreaM2)
		}
	}

	// A third life finds nothing to resume; posting a finished job returns it.
	stop2()
	r2.Wait()
	r3 := &Runner{Dir: jobs, Intake: eng2, Evidence: ev, Log: quiet}
	ctx3, stop3 := context.WithCancel(context.Background())
	defer func() { stop3(); r3.Wait() }()
	if ids, err := r3.Resume(ctx3); err != nil || len(ids) != 0 {
		t.Fatalf("third start resumed %v (%v), want nothing", ids, err)
	}
	st, err := r3.Start(ctx3, long, FileOptions{})
	if err != nil || st.State != JobDone || st.Summary == nil || st.Summary.Changes != len(got) {
		t.Fatalf("posting the finished job again: %+v, %v", st, err)
	}
}
