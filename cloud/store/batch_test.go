package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/cloud/store"
)

// applyLike does what the case engine does with one report: store it, open
// or update the incident's case, log, link. It runs the same inside Update
// and Batch.
func applyLike(ctx context.Context, tx *store.Tx, r store.Report, inserted bool) error {
	if !inserted {
		return nil
	}
	key := "cover:" + r.FacilityID
	c, err := tx.OpenCase(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if r.State != "missing" {
			return nil
		}
		c = coverCase(key, "reported")
		c.FacilityID, c.CreatedAt, c.UpdatedAt = r.FacilityID, r.ReceivedAt, r.ReceivedAt
		if err := tx.CreateCase(ctx, &c); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		c.DetectionState, c.UpdatedAt = r.State, r.ReceivedAt
		if r.State == "present" {
			c.Status, c.ClosedAt = "closed", r.ReceivedAt
		}
		if err := tx.SaveCase(ctx, c); err != nil {
			return err
		}
	}
	if err := tx.AddEvent(ctx, store.Event{CaseID: c.ID, At: r.ReceivedAt, Actor: "device:" + r.Device,
		Action: "seen_" + r.State, Note: fmt.Sprintf("seq %d", r.Seq)}); err != nil {
		return err
	}
	return tx.LinkReport(ctx, r.Device, r.Seq, c.ID)
}

// script is a run of reports across three covers: cases open, collect
// updates, close, and one reopens, with a duplicate (device, seq) inside.
func script() []store.Report {
	var rs []store.Report
	add := func(dev string, seq uint64, fac, state string) {
		r := report(dev, seq)
		r.FacilityID, r.State = fac, state
		r.ReceivedAt = t0.Add(time.Duration(len(rs)) * time.Second)
		rs = append(rs, r)
	}
	add("box-1", 1, "1101050105000001", "missing")
	add("box-1", 2, "1101050105000002", "missing")
	add("box-2", 1, "1101050105000001", "missing")
	add("box-1", 3, "1101050105000001", "present") // closes case 1
	add("box-1", 3, "1101050105000001", "present") // the same (device, seq) again
	add("box-2", 2, "1101050105000001", "missing") // opens a new case
	add("box-1", 4, "1101050105000003", "present") // nothing open: no case
	add("box-1", 5, "1101050105000002", "displaced")
	return rs
}

func TestBatchMatchesUpdate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		run := func(batch bool) (cs []store.Case, evs map[int64][]string, links map[string]int64) {
			s, d := open(t, backend)
			rs := script()
			if batch {
				err := s.Batch(ctx, func(tx *store.Tx) error {
					ins, err := tx.InsertReports(ctx, rs)
					if err != nil {
						return err
					}
					var keys []string
					for _, r := range rs {
						keys = append(keys, "cover:"+r.FacilityID)
					}
					if err := tx.LoadOpenCases(ctx, keys); err != nil {
						return err
					}
					for i, r := range rs {
						if err := applyLike(ctx, tx, r, ins[i]); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			} else {
				for _, r := range rs {
					err := s.Update(ctx, func(tx *store.Tx) error {
						ins, err := tx.InsertReport(ctx, r)
						if err != nil {
							return err
						}
						return applyLike(ctx, tx, r, ins)
					})
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			cs, err := s.Cases(ctx, 100)
			if err != nil {
				t.Fatal(err)
			}
			evs = map[int64][]string{}
			for _, c := range cs {
				es, err := s.Events(ctx, c.ID)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range es {
					evs[c.ID] = append(evs[c.ID], e.Action+" "+e.Note)
				}
			}
			links = map[string]int64{}
			rows, err := raw(t, d).Query(`SELECT device, seq, COALESCE(case_id, 0) FROM reports`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var dev string
				var seq, id int64
				if err := rows.Scan(&dev, &seq, &id); err != nil {
					t.Fatal(err)
				}
				links[fmt.Sprintf("%s/%d", dev, seq)] = id
			}
			return cs, evs, links
		}
		wantCases, wantEvents, wantLinks := run(false)
		gotCases, gotEvents, gotLinks := run(true)

		if len(wantCases) != 3 {
			t.Fatalf("Update: %d cases, want 3 (one closed and reopened)", len(wantCases))
		}
		if fmt.Sprint(gotCases) != fmt.Sprint(wantCases) {
			t.Errorf("cases after Batch:\n%+v\nafter Update:\n%+v", gotCases, wantCases)
		}
		if fmt.Sprint(gotEvents) != fmt.Sprint(wantEvents) {
			t.Errorf("events after Batch:\n%v\nafter Update:\n%v", gotEvents, wantEvents)
		}
		if fmt.Sprint(gotLinks) != fmt.Sprint(wantLinks) || len(gotLinks) != 7 {
			t.Errorf("report links after Batch %v, after Update %v; want 7 reports", gotLinks, wantLinks)
		}
	})
}

// TestBatchReadsSeeDeferredWrites: inside Batch, every read sees what the
// transaction wrote before it, deferred or not.
func TestBatchReadsSeeDeferredWrites(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, _ := open(t, backend)
		c := coverCase("cover:1101050105000123", "reported")
		if err := s.Update(ctx, func(tx *store.Tx) error { return tx.CreateCase(ctx, &c) }); err != nil {
			t.Fatal(err)
		}
		err := s.Batch(ctx, func(tx *store.Tx) error {
			got, err := tx.Case(ctx, c.ID)
			if err != nil {
				return err
			}
			got.Status, got.Reworks = "dispatched", 2
			got.Category = "0000" // not a mutable field: SaveCase must not write it
			if err := tx.SaveCase(ctx, got); err != nil {
				return err
			}
			if err := tx.AddEvent(ctx, store.Event{CaseID: c.ID, At: t0, Actor: "x", Action: "verified_dispatched"}); err != nil {
				return err
			}
			again, err := tx.Case(ctx, c.ID)
			if err != nil || again.Status != "dispatched" || again.Reworks != 2 || again.Category != "0105" {
				return fmt.Errorf("Case after SaveCase = %+v, %v", again, err)
			}
			k := store.Task{CaseID: c.ID, Dept: "dept-power", Role: "owner", Status: "open", CreatedAt: t0, Deadline: t0.Add(time.Hour)}
			if err := tx.CreateTask(ctx, &k); err != nil {
				return err
			}
			ks, err := tx.Tasks(ctx, c.ID) // a database read
			if err != nil || len(ks) != 1 {
				return fmt.Errorf("Tasks = %v, %v", ks, err)
			}
			open, err := tx.OpenCasesNear(ctx, c.Lat, c.Lon, 50)
			if err != nil || len(open) != 1 || open[0].Status != "dispatched" {
				return fmt.Errorf("OpenCasesNear = %+v, %v; want the saved case", open, err)
			}
			got.Status = "closed"
			if err := tx.SaveCase(ctx, got); err != nil {
				return err
			}
			if _, err := tx.OpenCase(ctx, c.IncidentKey); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("OpenCase of a case closed in this batch = %v, want ErrNotFound", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Case(ctx, c.ID)
		if err != nil || got.Status != "closed" || got.Reworks != 2 || got.Category != "0105" {
			t.Errorf("after Batch: %+v, %v", got, err)
		}
		if evs, _ := s.Events(ctx, c.ID); len(evs) != 1 {
			t.Errorf("events after Batch = %+v, want 1", evs)
		}
	})
}

// TestBatchRollsBackDeferredWrites: a failing deferred write (an event for a
// case that does not exist) undoes the whole batch.
func TestBatchRollsBackDeferredWrites(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, _ := open(t, backend)
		err := s.Batch(ctx, func(tx *store.Tx) error {
			if _, err := tx.InsertReports(ctx, []store.Report{report("box-1", 1), report("box-1", 2)}); err != nil {
				return err
			}
			return tx.AddEvent(ctx, store.Event{CaseID: 4242, At: t0, Actor: "x", Action: "y"})
		})
		if err == nil {
			t.Fatal("Batch with an event for a missing case succeeded")
		}
		if n, _ := s.ReportCount(ctx); n != 0 {
			t.Errorf("%d reports kept after a failed batch, want 0", n)
		}
	})
}

func TestInsertReportsIsIdempotent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, _ := open(t, backend)
		if err := s.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.InsertReport(ctx, report("box-1", 2))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		rs := []store.Report{report("box-1", 1), report("box-1", 2), report("box-2", 1), report("box-1", 1), report("box-1", 3)}
		var got []bool
		if err := s.Batch(ctx, func(tx *store.Tx) error {
			var err error
			got, err = tx.InsertReports(ctx, rs)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		want := []bool{true, false, true, false, true}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("InsertReports = %v, want %v", got, want)
		}
		if n, _ := s.ReportCount(ctx); n != 4 {
			t.Errorf("ReportCount = %d, want 4", n)
		}
		seqs, err := s.ReportSeqs(ctx, "box-1", 2, 10)
		if err != nil || fmt.Sprint(seqs) != "[2 3]" {
			t.Errorf("ReportSeqs(box-1, 2..10) = %v, %v; want [2 3]", seqs, err)
		}
	})
}

func TestSeqHWNeverGoesDown(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, _ := open(t, backend)
		steps := []map[string]uint64{
			{"box-1": 5, "box-2": 1},
			{"box-1": 3},             // lower: ignored
			{"box-1": 9, "box-3": 2}, // higher and new
		}
		for _, st := range steps {
			if err := s.SetSeqHWs(ctx, st); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SetSeqHW(ctx, "box-2", 0); err != nil {
			t.Fatal(err)
		}
		for dev, want := range map[string]uint64{"box-1": 9, "box-2": 1, "box-3": 2, "box-4": 0} {
			if got, err := s.SeqHW(ctx, dev); err != nil || got != want {
				t.Errorf("SeqHW(%s) = %d, %v; want %d", dev, got, err, want)
			}
		}
	})
}

// TestOneOpenCasePerIncidentUnderConcurrency: many writers at once look for
// the incident's open case and open one if there is none; exactly one case
// results (PostgreSQL runs them side by side, so OpenCase locks the incident).
func TestOneOpenCasePerIncidentUnderConcurrency(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, _ := open(t, backend)
		const writers = 8
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		// Open the connections first: opening one takes longer than the race.
		var warm sync.WaitGroup
		for range writers {
			warm.Go(func() {
				s.Update(ctx, func(*store.Tx) error { time.Sleep(50 * time.Millisecond); return nil })
			})
		}
		warm.Wait()
		start := make(chan struct{})
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r := report(fmt.Sprintf("box-%d", i), 1)
				errs <- s.Update(ctx, func(tx *store.Tx) error {
					ins, err := tx.InsertReport(ctx, r)
					if err != nil {
						return err
					}
					// Look, then think a while before acting: without the
					// lock every writer finds no case.
					if _, err := tx.OpenCase(ctx, "cover:"+r.FacilityID); err != nil && !errors.Is(err, store.ErrNotFound) {
						return err
					}
					time.Sleep(20 * time.Millisecond)
					return applyLike(ctx, tx, r, ins)
				})
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		cs, err := s.Cases(ctx, 100)
		if err != nil || len(cs) != 1 {
			t.Fatalf("%d cases from %d concurrent reports of one incident (%v), want 1", len(cs), writers, err)
		}
		if evs, _ := s.Events(ctx, cs[0].ID); len(evs) != writers {
			t.Errorf("%d events, want %d", len(evs), writers)
		}
	})
}

func TestTasks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, _ := open(t, backend)
		c := coverCase("cover:1101050105000123", "dispatched")
		owner := store.Task{Dept: "dept-power", Role: "owner", Status: "open", CreatedAt: t0, Deadline: t0.Add(5 * time.Hour)}
		// Due half a second after a whole second: text order must still be time order.
		street := store.Task{Dept: "street-110105003", Role: "street", Status: "open", CreatedAt: t0, Deadline: t0.Add(time.Hour + 500*time.Millisecond)}
		err := s.Update(ctx, func(tx *store.Tx) error {
			if err := tx.CreateCase(ctx, &c); err != nil {
				return err
			}
			owner.CaseID, street.CaseID = c.ID, c.ID
			if err := tx.CreateTask(ctx, &owner); err != nil {
				return err
			}
			return tx.CreateTask(ctx, &street)
		})
		if err != nil {
			t.Fatal(err)
		}
		if owner.ID == 0 || street.ID <= owner.ID {
			t.Fatalf("task ids %d, %d", owner.ID, street.ID)
		}
		for _, tt := range []struct {
			at   time.Time
			want int
		}{
			{t0.Add(time.Hour), 0},
			{t0.Add(time.Hour + 400*time.Millisecond), 0},
			{t0.Add(time.Hour + 600*time.Millisecond), 1},
			{t0.Add(time.Hour + time.Second), 1},
			{t0.Add(6 * time.Hour), 2},
		} {
			ks, err := s.OpenTasksDueBefore(ctx, tt.at)
			if err != nil || len(ks) != tt.want {
				t.Errorf("OpenTasksDueBefore(%s) = %d tasks, %v; want %d", tt.at.Format(time.RFC3339Nano), len(ks), err, tt.want)
			}
		}

		street.Overdue, street.Status, street.DoneAt, street.Note = true, "done", t0.Add(2*time.Hour), "signs up"
		if err := s.Update(ctx, func(tx *store.Tx) error { return tx.SaveTask(ctx, street) }); err != nil {
			t.Fatal(err)
		}
		var got store.Task
		if err := s.Update(ctx, func(tx *store.Tx) error {
			var err error
			got, err = tx.Task(ctx, street.ID)
			return err
		}); err != nil || got != street {
			t.Errorf("Task = %+v, %v\nwant %+v", got, err, street)
		}
		if err := s.Update(ctx, func(tx *store.Tx) error { _, err := tx.Task(ctx, 4242); return err }); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Task(4242) = %v, want ErrNotFound", err)
		}
		for _, tt := range []struct {
			f    store.TaskFilter
			want []int64
		}{
			{store.TaskFilter{}, []int64{street.ID, owner.ID}},
			{store.TaskFilter{Dept: "dept-power"}, []int64{owner.ID}},
			{store.TaskFilter{Status: "done"}, []int64{street.ID}},
			{store.TaskFilter{Dept: "dept-power", Status: "done"}, nil},
			{store.TaskFilter{Limit: 1}, []int64{street.ID}},
		} {
			ks, err := s.Tasks(ctx, tt.f)
			var ids []int64
			for _, k := range ks {
				ids = append(ids, k.ID)
			}
			if err != nil || fmt.Sprint(ids) != fmt.Sprint(tt.want) {
				t.Errorf("Tasks(%+v) = %v, %v; want %v", tt.f, ids, err, tt.want)
			}
		}
		if ks, err := s.CaseTasks(ctx, c.ID); err != nil || len(ks) != 2 || ks[0] != owner {
			t.Errorf("CaseTasks = %+v, %v", ks, err)
		}
		if ks, err := s.TasksCreatedBetween(ctx, t0, t0.Add(time.Second)); err != nil || len(ks) != 2 {
			t.Errorf("TasksCreatedBetween = %d, %v; want 2", len(ks), err)
		}
		if cs, err := s.CasesCreatedBetween(ctx, t0.Add(-time.Second), t0); err != nil || len(cs) != 0 {
			t.Errorf("CasesCreatedBetween before t0 = %d, %v; want 0", len(cs), err)
		}
		if cs, err := s.CasesCreatedBetween(ctx, t0, t0.Add(time.Nanosecond)); err != nil || len(cs) != 1 || cs[0].ID != c.ID {
			t.Errorf("CasesCreatedBetween at t0 = %d, %v; want the case", len(cs), err)
		}
	})
}

// TestPostgresRefusesTruncatingTheLog: TRUNCATE skips row triggers, so the
// append-only rule has a statement trigger of its own there.
func TestPostgresRefusesTruncatingTheLog(t *testing.T) {
	_, d := open(t, "postgres")
	_, err := raw(t, d).Exec(`TRUNCATE case_events`)
	if err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("TRUNCATE case_events: err = %v, want case_events is append-only", err)
	}
}

// TestBatchConflict: another writer stores a report of the batch while the
// batch runs (a second cloud process got the same message); the batch must
// fail as a whole rather than apply that report a second time.
func TestBatchConflict(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, d := open(t, backend)
		other, err := d.Reopen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		r := report("box-1", 1)
		err = s.Batch(ctx, func(tx *store.Tx) error {
			ins, err := tx.InsertReports(ctx, []store.Report{r})
			if err != nil {
				return err
			}
			if !ins[0] {
				return errors.New("not new")
			}
			// Meanwhile, the other process.
			if err := other.Update(ctx, func(tx *store.Tx) error {
				_, err := tx.InsertReport(ctx, r)
				return err
			}); err != nil {
				return err
			}
			return applyLike(ctx, tx, r, true)
		})
		if err == nil {
			t.Fatal("Batch succeeded although its report was stored meanwhile")
		}
		if backend == "postgres" && !errors.Is(err, store.ErrConflict) {
			t.Errorf("Batch = %v, want ErrConflict", err)
		}
		if cs, _ := s.Cases(ctx, 10); len(cs) != 0 {
			t.Errorf("%d cases after the failed batch, want 0", len(cs))
		}
		if n, _ := s.ReportCount(ctx); n != 1 {
			t.Errorf("%d reports, want the other process's 1", n)
		}
	})
}
