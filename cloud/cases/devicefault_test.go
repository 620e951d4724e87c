package cases_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/gridwatch/gridwatch/cloud/cases"
	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// Where the demo box's camera stands (firmware-config/demo-box.yaml), on Sanlitun's grid.
const camLat, camLon = 39.92195, 116.44352

// fleet drives the devices table as ingest does, on the engine's clock.
type fleet struct {
	t   *testing.T
	e   *cases.Engine
	clk *clock
	seq uint64
}

func (f *fleet) status(box string, online bool) {
	f.t.Helper()
	err := f.e.Store.SetDeviceStatus(context.Background(), store.Device{Device: box, Online: online,
		StatusAt: f.clk.now(), LastSeen: f.clk.now()})
	if err != nil {
		f.t.Fatal(err)
	}
}

// telemetry stores one telemetry message; cams maps camera → connected.
func (f *fleet) telemetry(box string, cams map[string]bool) {
	f.t.Helper()
	f.seq++
	tm := wire.Telemetry{V: wire.Version, Device: box, Seq: f.seq, At: f.clk.now(), Cameras: []wire.CameraHealth{}}
	names := make([]string, 0, len(cams))
	for c := range cams {
		names = append(names, c)
	}
	slices.Sort(names)
	for _, c := range names {
		h := wire.CameraHealth{Camera: c, Connected: cams[c], Grade: "down", Lat: camLat, Lon: camLon}
		if cams[c] {
			h.FPS, h.Grade = 25, "good"
		}
		tm.Cameras = append(tm.Cameras, h)
	}
	raw, err := json.Marshal(tm)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := wire.DecodeTelemetry(raw); err != nil {
		f.t.Fatal(err)
	}
	if err := f.e.Store.SetTelemetry(context.Background(), box, f.clk.now(), raw); err != nil {
		f.t.Fatal(err)
	}
}

func newWatchdog(t *testing.T) (*cases.Watchdog, *fleet) {
	t.Helper()
	e := newEngine(t)
	clk := &clock{t: now}
	e.Now = clk.now
	w := &cases.Watchdog{Engine: e, Silence: 90 * time.Second, Offline: time.Minute, CameraDown: 5 * time.Minute, Log: e.Log}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	return w, &fleet{t: t, e: e, clk: clk}
}

func check(t *testing.T, w *cases.Watchdog) cases.DeviceFaults {
	t.Helper()
	n, err := w.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// openFaults lists the incident keys of open device-fault cases with their detection state.
func openFaults(t *testing.T, e *cases.Engine) map[string]string {
	t.Helper()
	cs, err := e.Store.OpenCasesWithKeyPrefix(context.Background(), "device:")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range cs {
		out[c.IncidentKey] = c.DetectionState
	}
	return out
}

func TestWatchdogFindsFaults(t *testing.T) {
	tests := []struct {
		name string
		// run sets devices up and checks; the watchdog starts at the first check.
		run  func(w *cases.Watchdog, f *fleet)
		want map[string]string
	}{
		{"heard recently", func(w *cases.Watchdog, f *fleet) {
			f.status("box-a", true)
			f.telemetry("box-a", map[string]bool{"cam1": true})
			check(t, w)
			f.clk.advance(80 * time.Second)
			check(t, w)
		}, map[string]string{}},
		{"silent longer than Silence", func(w *cases.Watchdog, f *fleet) {
			f.status("box-a", true)
			f.telemetry("box-a", map[string]bool{"cam1": true})
			check(t, w)
			f.clk.advance(91 * time.Second)
			check(t, w)
		}, map[string]string{"device:box-a": "silent"}},
		{"last will, offline longer than Offline", func(w *cases.Watchdog, f *fleet) {
			f.status("box-a", true)
			check(t, w)
			f.status("box-a", false)
			f.clk.advance(61 * time.Second)
			check(t, w)
		}, map[string]string{"device:box-a": "offline"}},
		{"offline for less than Offline: a restart, no case", func(w *cases.Watchdog, f *fleet) {
			f.status("box-a", true)
			check(t, w)
			f.status("box-a", false)
			f.clk.advance(30 * time.Second)
			check(t, w)
			f.status("box-a", true)
			f.clk.advance(40 * time.Second)
			check(t, w)
		}, map[string]string{}},
		{"camera down longer than CameraDown while the box is online", func(w *cases.Watchdog, f *fleet) {
			f.status("box-a", true)
			for range 7 { // telemetry every minute: cam2 down from the first
				f.telemetry("box-a", map[string]bool{"cam1": true, "cam2": false})
				check(t, w)
				f.clk.advance(time.Minute)
			}
		}, map[string]string{"device:box-a/cam2": "camera_down"}},
		{"camera down for less than CameraDown", func(w *cases.Watchdog, f *fleet) {
			f.status("box-a", true)
			for i := range 7 { // down 3 minutes, up, down again 3 minutes
				f.telemetry("box-a", map[string]bool{"cam1": i != 3})
				check(t, w)
				f.clk.advance(time.Minute)
			}
		}, map[string]string{}},
		{"a silent box is one case, not one per camera", func(w *cases.Watchdog, f *fleet) {
			f.status("box-a", true)
			f.telemetry("box-a", map[string]bool{"cam1": false, "cam2": false})
			check(t, w)
			f.clk.advance(10 * time.Minute)
			check(t, w)
		}, map[string]string{"device:box-a": "silent"}},
		{"silence counts from the watchdog's start", func(w *cases.Watchdog, f *fleet) {
			f.status("box-a", true)
			f.clk.advance(time.Hour) // the cloud was down; the box's messages wait in the broker
			check(t, w)
			f.clk.advance(89 * time.Second)
			check(t, w)
		}, map[string]string{}},
		{"two boxes, one silent", func(w *cases.Watchdog, f *fleet) {
			f.status("box-a", true)
			f.status("box-b", true)
			check(t, w)
			for range 4 {
				f.clk.advance(30 * time.Second)
				f.telemetry("box-b", map[string]bool{"cam1": true})
				check(t, w)
			}
		}, map[string]string{"device:box-a": "silent"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, f := newWatchdog(t)
			tc.run(w, f)
			if got := openFaults(t, w.Engine); !mapsEqual(got, tc.want) {
				t.Errorf("open device faults %v, want %v", got, tc.want)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestWatchdogOutage follows one box through an outage, a cloud restart in
// the middle of it, its return, and a second outage.
func TestWatchdogOutage(t *testing.T) {
	w, f := newWatchdog(t)
	ctx := context.Background()
	f.status("box-a", true)
	f.telemetry("box-a", map[string]bool{"cam1": true})
	check(t, w)

	f.status("box-a", false) // the last will
	f.clk.advance(2 * time.Minute)
	if n := check(t, w); n.Opened != 1 {
		t.Fatalf("check after 2 min offline: %+v, want 1 opened", n)
	}
	for range 3 {
		f.clk.advance(time.Minute)
		if n := check(t, w); n.Opened != 0 {
			t.Fatalf("still offline: %+v, want nothing opened", n)
		}
	}
	// The cloud restarts: a new watchdog with no memory finds the open case.
	w = &cases.Watchdog{Engine: w.Engine, Silence: w.Silence, Offline: w.Offline, CameraDown: w.CameraDown, Log: w.Log}
	for range 3 {
		f.clk.advance(2 * time.Minute)
		if n := check(t, w); n.Opened != 0 || n.Back != 0 {
			t.Fatalf("after restart: %+v, want nothing opened or back", n)
		}
	}
	cs, err := w.Engine.Store.OpenCasesWithKeyPrefix(ctx, "device:")
	if err != nil || len(cs) != 1 {
		t.Fatalf("open device cases: %v, %v; want 1", cs, err)
	}
	c := cs[0]
	if c.Status != cases.StatusDispatched || c.OwnerDepartment != "dept-maintenance" || c.Category != cases.DeviceFaultCategory ||
		c.Source != cases.SourceWatchdog || c.Device != "box-a" || c.Lat != camLat || c.Lon != camLon || c.Street != sanlitun ||
		c.GridCell == "" || c.Deadline.IsZero() {
		t.Errorf("case %+v: want dispatched to dept-maintenance, category 0601, box-a at the camera in Sanlitun with a deadline", c)
	}
	owner, streetTask := tasksOf(t, w.Engine, c.ID)
	if owner.Dept != "dept-maintenance" || owner.Status != cases.TaskOpen || streetTask.ID != 0 {
		t.Errorf("tasks: owner %+v, street %+v; want one open maintenance task and no street task", owner, streetTask)
	}

	f.status("box-a", true) // back
	f.telemetry("box-a", map[string]bool{"cam1": true})
	backAt := f.clk.now()
	if n := check(t, w); n.Back != 1 {
		t.Fatalf("check after return: %+v, want 1 back", n)
	}
	c, err = w.Engine.Store.Case(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != cases.StatusClosed || !c.ClosedAt.Equal(backAt) || !c.RestoredAt.Equal(backAt) {
		t.Errorf("after return: %s closed %v restored %v; want closed at %v", c.Status, c.ClosedAt, c.RestoredAt, backAt)
	}
	if owner, _ = tasksOf(t, w.Engine, c.ID); owner.Status != cases.TaskDone || !owner.DoneAt.Equal(backAt) {
		t.Errorf("maintenance task %+v: want done at the return", owner)
	}
	var actions []string
	for _, ev := range events(t, w.Engine, c.ID) {
		actions = append(actions, ev.Action)
		if ev.Actor != "system:watchdog" {
			t.Errorf("event %s by %s, want system:watchdog", ev.Action, ev.Actor)
		}
	}
	if want := []string{"reported", "verified_dispatched", "device_check_closed"}; !slices.Equal(actions, want) {
		t.Errorf("log %v, want %v", actions, want)
	}

	// A second outage is a second case.
	f.clk.advance(3 * time.Minute)
	if n := check(t, w); n.Opened != 1 {
		t.Fatalf("second outage: %+v, want 1 opened", n)
	}
	if got := openFaults(t, w.Engine); !mapsEqual(got, map[string]string{"device:box-a": "silent"}) {
		t.Errorf("open faults %v", got)
	}
}

// TestWatchdogHeldCase: a case the dispatcher put on hold is not closed by
// the device's return; the return and a new silence are logged on it.
func TestWatchdogHeldCase(t *testing.T) {
	w, f := newWatchdog(t)
	ctx := context.Background()
	f.status("box-a", true)
	f.telemetry("box-a", map[string]bool{"cam1": true, "cam2": true})
	check(t, w)
	for range 6 {
		f.clk.advance(time.Minute)
		f.telemetry("box-a", map[string]bool{"cam1": true, "cam2": false})
		check(t, w)
	}
	cs, err := w.Engine.Store.OpenCasesWithKeyPrefix(ctx, "device:box-a/cam2")
	if err != nil || len(cs) != 1 {
		t.Fatalf("camera case: %v, %v", cs, err)
	}
	id := cs[0].ID
	if _, err := w.Engine.Hold(ctx, id, dispatcher, "camera pole being replaced by the road works"); err != nil {
		t.Fatal(err)
	}
	f.clk.advance(time.Minute)
	f.telemetry("box-a", map[string]bool{"cam1": true, "cam2": true})
	check(t, w)
	for range 6 {
		f.clk.advance(time.Minute)
		f.telemetry("box-a", map[string]bool{"cam1": true, "cam2": false})
		check(t, w)
	}
	c, err := w.Engine.Store.Case(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != cases.StatusOnHold {
		t.Errorf("status %s, want on_hold", c.Status)
	}
	var actions []string
	for _, ev := range events(t, w.Engine, id) {
		actions = append(actions, ev.Action)
	}
	if want := []string{"reported", "verified_dispatched", "on_hold", "device_back", "device_silent_again"}; !slices.Equal(actions, want) {
		t.Errorf("log %v, want %v", actions, want)
	}
	if got := openFaults(t, w.Engine); len(got) != 1 {
		t.Errorf("open faults %v, want the one held case", got)
	}
}

// TestWatchdogRemovedCamera: a camera taken out of the box's config closes its case.
func TestWatchdogRemovedCamera(t *testing.T) {
	w, f := newWatchdog(t)
	f.status("box-a", true)
	for range 7 {
		f.telemetry("box-a", map[string]bool{"cam1": true, "cam2": false})
		check(t, w)
		f.clk.advance(time.Minute)
	}
	if got := openFaults(t, w.Engine); len(got) != 1 {
		t.Fatalf("open faults %v, want cam2's", got)
	}
	f.telemetry("box-a", map[string]bool{"cam1": true})
	if n := check(t, w); n.Back != 1 {
		t.Errorf("check after cam2 left the config: %+v, want 1 back", n)
	}
	if got := openFaults(t, w.Engine); len(got) != 0 {
		t.Errorf("open faults %v, want none", got)
	}
}

func TestWatchdogPostgres(t *testing.T) {
	onPostgres(t, TestWatchdogOutage)
	onPostgres(t, TestWatchdogHeldCase)
}

// While the cloud itself is cut off from the broker every box looks silent: the watchdog blames
// nobody then, and after the reconnection counts silence from it, so a broker outage opens no case
// for boxes that speak again; a box still silent 90 s after the reconnection does get one.
func TestWatchdogIgnoresTheCloudsOwnOutage(t *testing.T) {
	w, f := newWatchdog(t)
	var since time.Time
	connected := true
	w.Listening = func() (time.Time, bool) { return since, connected }
	since = f.clk.now()
	f.status("box-a", true)
	f.status("box-b", true)
	check(t, w)

	connected = false // the broker goes down for 5 minutes
	for range 5 {
		f.clk.advance(time.Minute)
		if n := check(t, w); n.Opened != 0 {
			t.Fatalf("cloud cut off: %+v, want nothing opened", n)
		}
	}
	connected, since = true, f.clk.now() // back; box-a speaks at once, box-b never does
	f.status("box-a", true)
	f.clk.advance(60 * time.Second)
	f.status("box-a", true)
	if n := check(t, w); n.Opened != 0 {
		t.Fatalf("60 s after the reconnection: %+v, want nothing opened yet", n)
	}
	f.clk.advance(40 * time.Second)
	if n := check(t, w); n.Opened != 1 {
		t.Fatalf("100 s after the reconnection: %+v, want box-b's case", n)
	}
	if got := openFaults(t, w.Engine); len(got) != 1 || got["device:box-b"] == "" {
		t.Fatalf("open faults %v, want box-b only", got)
	}
}
