package store_test

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/cloud/registry"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/cloud/store/storetest"
)

// The conformance suite: every test runs once per backend, as a subtest
// named for it; PostgreSQL gets a fresh schema in a database made for this
// run (storetest).
func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }

func forEachBackend(t *testing.T, fn func(t *testing.T, backend string)) {
	for _, b := range storetest.Backends {
		t.Run(b, func(t *testing.T) { fn(t, b) })
	}
}

// open returns a fresh store on backend and its database.
func open(t *testing.T, backend string) (*store.Store, *storetest.DB) {
	t.Helper()
	d := storetest.Open(t, backend)
	return d.Store, d
}

// raw opens a second, plain connection to the same database: what the
// database itself enforces must hold for every writer, not just for this
// package.
func raw(t *testing.T, d *storetest.DB) *sql.DB { return d.Raw(t) }

func schemaVersions(t *testing.T, db *sql.DB) []int {
	t.Helper()
	rows, err := db.Query(`SELECT version FROM schema_version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

var t0 = time.Date(2026, 11, 27, 12, 20, 0, 0, time.UTC)

func report(device string, seq uint64) store.Report {
	return store.Report{
		Device: device, Seq: seq, ReportID: "cam1-1101050105000123-1764246000", Phase: "new", Kind: "cover",
		FacilityID: "1101050105000123", State: "missing", ObservedAt: t0, ReceivedAt: t0.Add(time.Second),
		Payload: []byte(`{"v":1}`),
	}
}

func coverCase(key, status string) store.Case {
	return store.Case{
		IncidentKey: key, Status: status, Source: "camera", Category: "0105", CategoryName: "power cover",
		FacilityID: "1101050105000123", OwnerDepartment: "dept-power", OwnerName: "Power",
		GridCell: "110105003001001", Street: "110105003", StreetName: "Sanlitun", StreetOffice: "street-110105003",
		Lat: 39.92195, Lon: 116.44352, Device: "box-chaoyang-0001", Camera: "cam1", DetectionState: "missing",
		Confidence: 0.93, EvidenceSHA256: strings.Repeat("ab", 32), CreatedAt: t0, UpdatedAt: t0,
		RegistryVersion: "5e1f0c2a9b7d",
	}
}

func TestOpenMigratesFreshFileAndReopenIsNoop(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, d := open(t, backend)
		db := raw(t, d)
		v := schemaVersions(t, db)
		if len(v) != 1 || v[0] < 1 {
			t.Fatalf("schema_version after first open = %v, want one row >= 1", v)
		}
		if err := s.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.InsertReport(ctx, report("box-1", 1))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		for i := range 2 {
			s2, err := d.Reopen(ctx)
			if err != nil {
				t.Fatalf("re-open %d: %v", i+1, err)
			}
			if n, err := s2.ReportCount(ctx); err != nil || n != 1 {
				t.Errorf("re-open %d: ReportCount = %d, %v; want the report kept", i+1, n, err)
			}
			if got := schemaVersions(t, db); len(got) != 1 || got[0] != v[0] {
				t.Errorf("re-open %d: schema_version = %v, want %v unchanged", i+1, got, v)
			}
			s2.Close()
		}
	})
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		s, d := open(t, backend)
		s.Close()
		if _, err := raw(t, d).Exec(`UPDATE schema_version SET version = 9999`); err != nil {
			t.Fatal(err)
		}
		_, err := d.Reopen(context.Background())
		if err == nil || !strings.Contains(err.Error(), "newer") {
			t.Fatalf("Open on a newer schema: err = %v, want one saying it is newer", err)
		}
	})
}

// TestOpenFailureNamesTheDatabase: a database that cannot be opened is
// named in the error (without a password).
func TestOpenFailureNamesTheDatabase(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "no-such-dir", "gridwatch.db")
		if s, err := store.OpenSQLite(context.Background(), path); err == nil {
			s.Close()
			t.Fatal("OpenSQLite in a missing directory succeeded")
		} else if !strings.Contains(err.Error(), path) {
			t.Errorf("error %q does not name the path", err)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		u, err := url.Parse(storetest.PostgresDSN(t))
		if err != nil {
			t.Fatal(err)
		}
		u.Path, u.User = "/gw_no_such_database", url.UserPassword("postgres", "secret-pw")
		if s, err := store.OpenPostgres(context.Background(), u.String()); err == nil {
			s.Close()
			t.Fatal("OpenPostgres of a database that does not exist succeeded")
		} else if !strings.Contains(err.Error(), "gw_no_such_database") || strings.Contains(err.Error(), "secret-pw") {
			t.Errorf("error %q does not name the database, or shows the password", err)
		}
	})
}

func TestInsertReportIsIdempotentByDeviceAndSeq(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, d := open(t, backend)
		tests := []struct {
			name     string
			r        store.Report
			inserted bool
		}{
			{"first", report("box-1", 1), true},
			{"same device and seq", report("box-1", 1), false},
			{"same device and seq, other payload", func() store.Report {
				r := report("box-1", 1)
				r.Payload, r.State = []byte(`{"v":1,"other":true}`), "present"
				return r
			}(), false},
			{"next seq", report("box-1", 2), true},
			{"same seq, other device", report("box-2", 1), true},
			{"largest seq", report("box-1", 1<<63-1), true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var got bool
				err := s.Update(ctx, func(tx *store.Tx) error {
					var err error
					got, err = tx.InsertReport(ctx, tt.r)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.inserted {
					t.Errorf("InsertReport inserted = %v, want %v", got, tt.inserted)
				}
			})
		}
		if n, err := s.ReportCount(ctx); err != nil || n != 4 {
			t.Errorf("ReportCount = %d, %v; want 4", n, err)
		}
		// The duplicate changed nothing: the first payload is the one kept.
		var payload, state string
		if err := raw(t, d).QueryRow(`SELECT payload, state FROM reports WHERE device = 'box-1' AND seq = 1`).Scan(&payload, &state); err != nil {
			t.Fatal(err)
		}
		if payload != `{"v":1}` || state != "missing" {
			t.Errorf("stored report = %s / %s, want the first one", payload, state)
		}
	})
}

func TestUpdateRollsBackOnError(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, _ := open(t, backend)
		boom := errors.New("boom")
		err := s.Update(ctx, func(tx *store.Tx) error {
			if _, err := tx.InsertReport(ctx, report("box-1", 1)); err != nil {
				return err
			}
			c := coverCase("cover:1101050105000123", "reported")
			if err := tx.CreateCase(ctx, &c); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update = %v, want the callback's error", err)
		}
		if n, _ := s.ReportCount(ctx); n != 0 {
			t.Errorf("ReportCount = %d after a rolled-back update, want 0", n)
		}
		if cs, _ := s.Cases(ctx, 10); len(cs) != 0 {
			t.Errorf("Cases = %d after a rolled-back update, want 0", len(cs))
		}
	})
}

func TestCaseRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, _ := open(t, backend)
		want := coverCase("cover:1101050105000123", "reported")
		if err := s.Update(ctx, func(tx *store.Tx) error { return tx.CreateCase(ctx, &want) }); err != nil {
			t.Fatal(err)
		}
		if want.ID == 0 {
			t.Fatal("CreateCase did not set the id")
		}
		got, err := s.Case(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("Case(%d) =\n%+v\nwant\n%+v", want.ID, got, want)
		}

		// SaveCase writes the mutable fields only (the owner is mutable: a
		// returned case is re-dispatched to another department).
		want.Status, want.DetectionState, want.Confidence = "closed", "present", 0.97
		want.RestoredAt, want.UpdatedAt = t0.Add(time.Hour), t0.Add(time.Hour+time.Second)
		want.OwnerDepartment, want.ClosedAt, want.Reworks = "dept-water", t0.Add(time.Hour), 1
		changed := want
		changed.FacilityID, changed.Category = "9999999999999999", "0000"
		if err := s.Update(ctx, func(tx *store.Tx) error { return tx.SaveCase(ctx, changed) }); err != nil {
			t.Fatal(err)
		}
		if got, err = s.Case(ctx, want.ID); err != nil || got != want {
			t.Errorf("after SaveCase: Case = %+v, %v\nwant %+v", got, err, want)
		}

		missing := want
		missing.ID = 4242
		err = s.Update(ctx, func(tx *store.Tx) error { return tx.SaveCase(ctx, missing) })
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("SaveCase of an unknown case = %v, want ErrNotFound", err)
		}
		if _, err := s.Case(ctx, 4242); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Case(4242) = %v, want ErrNotFound", err)
		}
	})
}

func TestCasesNewestFirstWithLimit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, _ := open(t, backend)
		if cs, err := s.Cases(ctx, 10); err != nil || len(cs) != 0 {
			t.Fatalf("Cases on an empty store = %v, %v", cs, err)
		}
		var ids []int64
		for i := range 3 {
			c := coverCase("cover:"+string(rune('a'+i)), "reported")
			if err := s.Update(ctx, func(tx *store.Tx) error { return tx.CreateCase(ctx, &c) }); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, c.ID)
		}
		for _, tt := range []struct {
			limit int
			want  []int64
		}{
			{10, []int64{ids[2], ids[1], ids[0]}},
			{2, []int64{ids[2], ids[1]}},
			{1, []int64{ids[2]}},
		} {
			cs, err := s.Cases(ctx, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, c := range cs {
				got = append(got, c.ID)
			}
			if len(got) != len(tt.want) {
				t.Errorf("Cases(%d) ids = %v, want %v", tt.limit, got, tt.want)
				continue
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("Cases(%d) ids = %v, want %v", tt.limit, got, tt.want)
					break
				}
			}
		}
	})
}

func TestCaseEventsAreAppendOnly(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, d := open(t, backend)
		c := coverCase("cover:1101050105000123", "reported")
		events := []store.Event{
			{At: t0, Actor: "device:box-1", Action: "reported", Note: "camera cam1 sees cover missing", Evidence: strings.Repeat("ab", 32)},
			{At: t0.Add(time.Minute), Actor: "device:box-1", Action: "camera_sees_restored"},
		}
		err := s.Update(ctx, func(tx *store.Tx) error {
			if err := tx.CreateCase(ctx, &c); err != nil {
				return err
			}
			for _, e := range events {
				e.CaseID = c.ID
				if err := tx.AddEvent(ctx, e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		db := raw(t, d)
		for _, stmt := range []string{
			`UPDATE case_events SET note = 'rewritten'`,
			`UPDATE case_events SET action = 'closed' WHERE id = 1`,
			`DELETE FROM case_events`,
			`DELETE FROM case_events WHERE id = 2`,
		} {
			t.Run(stmt, func(t *testing.T) {
				_, err := db.Exec(stmt)
				if err == nil || !strings.Contains(err.Error(), "append-only") {
					t.Fatalf("%s: err = %v, want case_events is append-only", stmt, err)
				}
			})
		}

		got, err := s.Events(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(events) {
			t.Fatalf("Events = %d, want %d", len(got), len(events))
		}
		for i, e := range got {
			w := events[i]
			if e.CaseID != c.ID || e.Action != w.Action || e.Note != w.Note || e.Evidence != w.Evidence || !e.At.Equal(w.At) || e.Actor != w.Actor {
				t.Errorf("event %d = %+v, want %+v", i, e, w)
			}
		}
		if i := len(got) - 1; got[i].ID <= got[0].ID {
			t.Errorf("events not in order: %+v", got)
		}

		// An event must belong to a case.
		err = s.Update(ctx, func(tx *store.Tx) error {
			return tx.AddEvent(ctx, store.Event{CaseID: 4242, At: t0, Actor: "x", Action: "y"})
		})
		if err == nil {
			t.Error("AddEvent to a case that does not exist succeeded")
		}
	})
}

func TestOpenCaseIgnoresClosedCases(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		tests := []struct {
			statuses []string // created in this order under one incident key
			wantIdx  int      // index of the case OpenCase returns, -1 for ErrNotFound
		}{
			{nil, -1},
			{[]string{"reported"}, 0},
			{[]string{"closed"}, -1},
			{[]string{"voided"}, -1},
			{[]string{"rejected"}, -1},
			{[]string{"closed", "reported"}, 1},
			{[]string{"reported", "closed"}, 0},
			{[]string{"closed", "voided", "rejected"}, -1},
			{[]string{"reported", "dispatched"}, 1}, // the newest open one
		}
		for _, tt := range tests {
			name := strings.Join(tt.statuses, ",")
			if name == "" {
				name = "none"
			}
			t.Run(name, func(t *testing.T) {
				ctx := context.Background()
				s, _ := open(t, backend)
				const key = "cover:1101050105000123"
				var ids []int64
				err := s.Update(ctx, func(tx *store.Tx) error {
					// Another incident's open case must never be returned.
					other := coverCase("cover:1101050102000456", "reported")
					if err := tx.CreateCase(ctx, &other); err != nil {
						return err
					}
					for _, st := range tt.statuses {
						c := coverCase(key, st)
						if err := tx.CreateCase(ctx, &c); err != nil {
							return err
						}
						ids = append(ids, c.ID)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				var got store.Case
				err = s.Update(ctx, func(tx *store.Tx) error {
					var err error
					got, err = tx.OpenCase(ctx, key)
					return err
				})
				switch {
				case tt.wantIdx < 0 && !errors.Is(err, store.ErrNotFound):
					t.Errorf("OpenCase = %+v, %v; want ErrNotFound", got, err)
				case tt.wantIdx >= 0 && (err != nil || got.ID != ids[tt.wantIdx]):
					t.Errorf("OpenCase = case %d, %v; want case %d", got.ID, err, ids[tt.wantIdx])
				}
			})
		}
	})
}

func TestLinkReport(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, d := open(t, backend)
		c := coverCase("cover:1101050105000123", "reported")
		err := s.Update(ctx, func(tx *store.Tx) error {
			if _, err := tx.InsertReport(ctx, report("box-1", 7)); err != nil {
				return err
			}
			if err := tx.CreateCase(ctx, &c); err != nil {
				return err
			}
			return tx.LinkReport(ctx, "box-1", 7, c.ID)
		})
		if err != nil {
			t.Fatal(err)
		}
		var caseID int64
		if err := raw(t, d).QueryRow(`SELECT case_id FROM reports WHERE device = 'box-1' AND seq = 7`).Scan(&caseID); err != nil {
			t.Fatal(err)
		}
		if caseID != c.ID {
			t.Errorf("report linked to case %d, want %d", caseID, c.ID)
		}
	})
}

func TestDeadLetters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, d := open(t, backend)
		if n, err := s.DeadLetterCount(ctx); err != nil || n != 0 {
			t.Fatalf("DeadLetterCount on a fresh store = %d, %v", n, err)
		}
		letters := []struct {
			topic, reason string
			payload       []byte
		}{
			{"gridwatch/v1/dev/box-1/report", "report: invalid character 'o' in literal null", []byte("not json")},
			{"gridwatch/v1/dev/box-1/report", "report: v: got 2, want 1", []byte(`{"v":2}`)},
			{"gridwatch/v1/dev/BOX/status", "topic: device id", []byte{0, 0xff, 0xfe}}, // not UTF-8: kept byte for byte
			{"gridwatch/v1/dev/box-1/report", "empty payload", []byte{}},
		}
		for i, l := range letters {
			if err := s.DeadLetter(ctx, l.topic, l.payload, l.reason); err != nil {
				t.Fatal(err)
			}
			if n, err := s.DeadLetterCount(ctx); err != nil || n != i+1 {
				t.Errorf("DeadLetterCount = %d, %v; want %d", n, err, i+1)
			}
		}
		rows, err := raw(t, d).Query(`SELECT topic, reason, payload, received_at FROM dead_letters ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		i := 0
		for ; rows.Next(); i++ {
			var topic, reason, at string
			var payload []byte
			if err := rows.Scan(&topic, &reason, &payload, &at); err != nil {
				t.Fatal(err)
			}
			l := letters[i]
			if topic != l.topic || reason != l.reason || string(payload) != string(l.payload) {
				t.Errorf("dead letter %d = %q %q %q, want %q %q %q", i, topic, reason, payload, l.topic, l.reason, l.payload)
			}
			if _, err := time.Parse(time.RFC3339Nano, at); err != nil {
				t.Errorf("dead letter %d received_at %q: %v", i, at, err)
			}
		}
		if i != len(letters) {
			t.Errorf("read %d dead letters, want %d", i, len(letters))
		}
	})
}

func TestDevices(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, _ := open(t, backend)
		if ds, err := s.Devices(ctx); err != nil || len(ds) != 0 {
			t.Fatalf("Devices on a fresh store = %v, %v", ds, err)
		}
		steps := []struct {
			name   string
			set    store.Device
			report *store.Report // inserted before listing, if set
			want   []store.Device
		}{
			{
				name: "online",
				set:  store.Device{Device: "box-b", Online: true, StatusAt: t0, LastSeen: t0, Software: "gridwatch-edge dev", ConfigVer: "1"},
				want: []store.Device{{Device: "box-b", Online: true, StatusAt: t0, LastSeen: t0, Software: "gridwatch-edge dev", ConfigVer: "1"}},
			},
			{
				name: "second device sorts first",
				set:  store.Device{Device: "box-a", Online: true, StatusAt: t0, LastSeen: t0},
				want: []store.Device{
					{Device: "box-a", Online: true, StatusAt: t0, LastSeen: t0},
					{Device: "box-b", Online: true, StatusAt: t0, LastSeen: t0, Software: "gridwatch-edge dev", ConfigVer: "1"},
				},
			},
			{
				name:   "offline replaces online; max seq from reports",
				set:    store.Device{Device: "box-b", Online: false, StatusAt: t0.Add(time.Hour), LastSeen: t0.Add(time.Hour)},
				report: &store.Report{Device: "box-b", Seq: 57, ReportID: "r", Phase: "end", Kind: "cover", State: "present", ObservedAt: t0, ReceivedAt: t0, Payload: []byte("{}")},
				want: []store.Device{
					{Device: "box-a", Online: true, StatusAt: t0, LastSeen: t0},
					{Device: "box-b", Online: false, StatusAt: t0.Add(time.Hour), LastSeen: t0.Add(time.Hour), MaxSeq: 57},
				},
			},
		}
		for _, st := range steps {
			t.Run(st.name, func(t *testing.T) {
				if err := s.SetDeviceStatus(ctx, st.set); err != nil {
					t.Fatal(err)
				}
				if st.report != nil {
					if err := s.Update(ctx, func(tx *store.Tx) error {
						for _, seq := range []uint64{3, st.report.Seq, 12} {
							r := *st.report
							r.Seq = seq
							if _, err := tx.InsertReport(ctx, r); err != nil {
								return err
							}
						}
						return nil
					}); err != nil {
						t.Fatal(err)
					}
				}
				got, err := s.Devices(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(st.want) {
					t.Fatalf("Devices = %+v, want %+v", got, st.want)
				}
				for i := range got {
					if got[i] != st.want[i] {
						t.Errorf("Devices[%d] = %+v, want %+v", i, got[i], st.want[i])
					}
				}
			})
		}
	})
}

// The cloud records every registry it ran with; recording one again keeps
// when and by whom it was first loaded.
func TestRegistryVersions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, backend string) {
		ctx := context.Background()
		s, _ := open(t, backend)
		first := registry.Version{ID: "5e1f0c2a9b7d", SHA256: "5e1f0c2a9b7d" + strings.Repeat("0", 52), Source: "/etc/gridwatch/registry",
			LoadedAt: t0, LoadedBy: "ops", Departments: 9, Streets: 43, Cells: 8423, Facilities: 30003}
		second := first
		second.ID, second.SHA256, second.LoadedAt, second.Facilities = "77aa00bb11cc", "77aa00bb11cc"+strings.Repeat("1", 52), t0.Add(time.Hour), 30004
		again := first
		again.LoadedAt, again.LoadedBy = t0.Add(2*time.Hour), "someone-else"
		for _, v := range []registry.Version{first, second, again} {
			if err := s.RecordRegistryVersion(ctx, v); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.RegistryVersions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, []registry.Version{first, second}) {
			t.Fatalf("RegistryVersions =\n%+v\nwant\n%+v", got, []registry.Version{first, second})
		}
	})
}
