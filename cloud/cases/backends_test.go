package cases_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store/storetest"
	"github.com/gridwatch/gridwatch/edge/wire"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

// onPostgres runs one of this package's tests with newEngine on PostgreSQL.
func onPostgres(t *testing.T, test func(*testing.T)) {
	backend = "postgres"
	defer func() { backend = "sqlite" }()
	test(t)
}

func TestSeedStoryPostgres(t *testing.T) { onPostgres(t, TestSeedStory) }
func TestBranchesPostgres(t *testing.T)  { onPostgres(t, TestBranches) }
func TestNewMissingReportOpensOneCasePostgres(t *testing.T) {
	onPostgres(t, TestNewMissingReportOpensOneCase)
}
func TestSameDeviceSeqIsDuplicatePostgres(t *testing.T) { onPostgres(t, TestSameDeviceSeqIsDuplicate) }
func TestClosedCaseIsNotReopenedPostgres(t *testing.T)  { onPostgres(t, TestClosedCaseIsNotReopened) }

// busyStreet is a run of reports from three boxes about four covers: cases
// open (some auto-accepted and dispatched), collect detections, close when a
// camera sees the cover back, reopen; with a redelivered duplicate, an
// unknown facility and an occupation report in between.
func busyStreet(t *testing.T) []cases.Item {
	t.Helper()
	r0, _ := golden(t, "report-cover-new.json")
	reg := registry.Demo()
	facs := reg.NearestFacilities(r0.Lat, r0.Lon, 4, 0)
	if len(facs) != 4 {
		t.Fatalf("demo registry: %d covers near the anchor", len(facs))
	}
	seqs := map[string]uint64{}
	var items []cases.Item
	add := func(dev string, fac int, phase wire.Phase, state string) {
		r := r0
		r.Device, r.Phase, r.State = dev, phase, state
		seqs[dev]++
		r.Seq = seqs[dev]
		if fac < 0 {
			r.FacilityID = "1101059999999999"
		} else {
			r.FacilityID = facs[fac].ID
		}
		r.ID = fmt.Sprintf("cam1-%s-%d", r.FacilityID, r.Seq)
		r.ObservedAt = now.Add(time.Duration(len(items)) * time.Second)
		raw, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, cases.Item{Report: r, Raw: raw})
	}
	add("box-a", 0, wire.PhaseNew, wire.CoverMissing)
	add("box-a", 1, wire.PhaseNew, wire.CoverMissing)
	add("box-b", 0, wire.PhaseNew, wire.CoverMissing) // another camera joins the case
	add("box-b", 2, wire.PhaseNew, wire.CoverDisplaced)
	add("box-a", 0, wire.PhaseUpdate, wire.CoverMissing)
	add("box-c", -1, wire.PhaseNew, wire.CoverMissing) // unknown facility
	add("box-a", 1, wire.PhaseEnd, wire.CoverPresent)  // back: closes if dispatched
	items = append(items, items[2])                    // redelivered
	add("box-c", 3, wire.PhaseEnd, wire.CoverPresent)  // nothing open: no case
	add("box-b", 1, wire.PhaseNew, wire.CoverMissing)  // missing again
	add("box-a", 2, wire.PhaseUpdate, wire.CoverOccluded)
	add("box-c", 0, wire.PhaseEnd, wire.CoverPresent)
	add("box-c", 0, wire.PhaseNew, wire.CoverMissing) // reopens
	return items
}

// TestApplyBatchIsApplyInTurn: ApplyBatch, whatever the batch boundaries,
// leaves the same cases, tasks and log as Apply on each report in turn.
func TestApplyBatchIsApplyInTurn(t *testing.T) {
	for _, b := range storetest.Backends {
		t.Run(b, func(t *testing.T) {
			backend = b
			defer func() { backend = "sqlite" }()
			ctx := context.Background()
			items := busyStreet(t)
			engine := func() *cases.Engine {
				e := newEngine(t)
				// Auto-accept power covers: dispatch and the camera check run inside batches too.
				e.AutoAccept = []cases.AutoAcceptRule{{Category: "0105", MinConfidence: 0.5}}
				return e
			}
			state := func(e *cases.Engine) string {
				cs := allCases(t, e)
				out := fmt.Sprintf("%d cases\n", len(cs))
				for _, c := range cs {
					out += fmt.Sprintf("%+v\n", c)
					for _, ev := range events(t, e, c.ID) {
						out += fmt.Sprintf("  %s %s %s %s\n", ev.At.Format(time.RFC3339Nano), ev.Actor, ev.Action, ev.Note)
					}
					ks, err := e.Store.CaseTasks(ctx, c.ID)
					if err != nil {
						t.Fatal(err)
					}
					for _, k := range ks {
						out += fmt.Sprintf("  task %+v\n", k)
					}
				}
				n, _ := e.Store.ReportCount(ctx)
				return out + fmt.Sprintf("%d reports\n", n)
			}

			one := engine()
			var want []string
			for _, it := range items {
				out, err := one.Apply(ctx, it.Report, it.Raw)
				want = append(want, fmt.Sprintf("%+v %v", out, err != nil))
			}
			wantState := state(one)
			if len(allCases(t, one)) < 4 {
				t.Fatalf("the script opened too few cases to mean anything:\n%s", wantState)
			}
			for _, size := range []int{len(items), 4} {
				e := engine()
				var got []string
				for i := 0; i < len(items); i += size {
					res, err := e.ApplyBatch(ctx, items[i:min(i+size, len(items))])
					if err != nil {
						t.Fatalf("batches of %d: %v", size, err)
					}
					for _, r := range res {
						got = append(got, fmt.Sprintf("%+v %v", r.Outcome, r.Err != nil))
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("batches of %d: outcomes\n%v\nwant\n%v", size, got, want)
				}
				if s := state(e); s != wantState {
					t.Errorf("batches of %d: state\n%s\nwant\n%s", size, s, wantState)
				}
			}
		})
	}
}
