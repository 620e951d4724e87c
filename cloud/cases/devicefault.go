package cases

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/gridwatch/gridwatch/cloud/store"
	"github.com/gridwatch/gridwatch/cloud/taxonomy"
)

// SourceWatchdog is the source of cases the device watchdog opens.
const SourceWatchdog = "watchdog"

// DeviceFaultCategory is the taxonomy's event code for a faulty box or
// camera (taxonomy.yaml: 0601, handled by the maintenance department).
const DeviceFaultCategory = "0601"

// Device-fault incident keys: one per box, one per camera of a box.
const deviceKeyPrefix = "device:"

// DeviceFaultKey returns the incident key of a box's (camera "") or a
// camera's device-fault case; the fleet page links open cases by it.
func DeviceFaultKey(box, camera string) string {
	if camera == "" {
		return deviceKeyPrefix + box
	}
	return deviceKeyPrefix + box + "/" + camera
}

func parseDeviceKey(key string) (box, camera string, ok bool) {
	rest, ok := strings.CutPrefix(key, deviceKeyPrefix)
	if !ok || rest == "" {
		return "", "", false
	}
	box, camera, _ = strings.Cut(rest, "/")
	return box, camera, true
}

// Watchdog opens a device-fault case for maintenance when a box or a camera
// goes silent, and records its return. It keeps no state that matters across
// restarts: the devices table says when each box was last heard from, and
// an open case is found again by its incident key, so a restarted cloud
// neither opens a second case for the same outage nor misses the return.
//
// A box is faulty when its retained status says offline (its last will) for
// Offline, or when nothing at all arrived from it for Silence. A camera is
// faulty when its box is healthy and its telemetry says disconnected or
// without pictures (grade down) for CameraDown. Silence is measured from the
// watchdog's own start at the earliest, so that a cloud coming back after a
// pause does not blame every box for the messages still queued for it.
type Watchdog struct {
	Engine *Engine
	// Silence: nothing heard from a box for this long (default 90 s: three
	// times the edge agent's default telemetry interval, as the fleet page).
	Silence time.Duration
	// Offline: a box whose status says offline for this long (default 60 s,
	// so that a box restarting for a new config or firmware is no case).
	Offline time.Duration
	// CameraDown: a camera of a healthy box down for this long (default 5 min).
	CameraDown time.Duration
	// Every is how often Run checks (default 10 s).
	Every time.Duration
	// Listening, when set, says since when the cloud has heard the broker
	// without a break (ok false: not now). A check while the cloud itself is
	// cut off blames nobody, and silence counts only from the reconnection:
	// a broker outage is not every box's fault.
	Listening func() (since time.Time, ok bool)
	Log       *slog.Logger

	mu        sync.Mutex
	started   time.Time
	downSince map[string]time.Time // camera key → first check that saw it down
}

// DeviceFaults summarises one check.
type DeviceFaults struct {
	Opened, Back, Faulty int
}

func (w *Watchdog) defaults() {
	if w.Silence <= 0 {
		w.Silence = 90 * time.Second
	}
	if w.Offline <= 0 {
		w.Offline = 60 * time.Second
	}
	if w.CameraDown <= 0 {
		w.CameraDown = 5 * time.Minute
	}
	if w.Every <= 0 {
		w.Every = 10 * time.Second
	}
	if w.Log == nil {
		w.Log = slog.Default()
	}
}

// Validate checks that the taxonomy has the device-fault category and that
// the department it names is in the registry.
func (w *Watchdog) Validate() error {
	cat, ok := w.Engine.tax().Event(DeviceFaultCategory)
	if !ok {
		return fmt.Errorf("device watchdog: taxonomy %s has no event %s (device fault)", w.Engine.tax().Version, DeviceFaultCategory)
	}
	dept := cat.Dept
	if cat.Owner != taxonomy.OwnerDepartment {
		return fmt.Errorf("device watchdog: event %s has owner %q; want %q with the maintenance department", DeviceFaultCategory, cat.Owner, taxonomy.OwnerDepartment)
	}
	if _, ok := w.Engine.Registry.Department(dept); !ok {
		return fmt.Errorf("device watchdog: event %s names department %q, which the registry lacks", DeviceFaultCategory, dept)
	}
	return nil
}

// Run checks every Every until ctx ends.
func (w *Watchdog) Run(ctx context.Context) error {
	w.defaults()
	if err := w.Validate(); err != nil {
		return err
	}
	t := time.NewTicker(w.Every)
	defer t.Stop()
	for {
		if n, err := w.Check(ctx); err != nil && ctx.Err() == nil {
			w.Log.Error("device check failed", "err", err)
		} else if n.Opened > 0 || n.Back > 0 {
			w.Log.Info("device faults", "opened", n.Opened, "back", n.Back, "faulty", n.Faulty)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// fault is one faulty box or camera found by a check.
type fault struct {
	box, camera string
	state, why  string
	lat, lon    float64
}

// Check looks at every box once: it opens a case for each new fault and
// records each return. Run calls it periodically; tests call it directly.
func (w *Watchdog) Check(ctx context.Context) (DeviceFaults, error) {
	w.defaults()
	now := w.Engine.now()
	w.mu.Lock()
	if w.started.IsZero() {
		w.started = now
		w.downSince = map[string]time.Time{}
	}
	started := w.started
	w.mu.Unlock()
	if w.Listening != nil {
		since, ok := w.Listening()
		if !ok {
			return DeviceFaults{}, nil
		}
		if since.After(started) {
			started = since
		}
	}

	var n DeviceFaults
	devices, err := w.Engine.Store.Devices(ctx)
	if err != nil {
		return n, fmt.Errorf("load devices: %w", err)
	}
	open, err := w.Engine.Store.OpenCasesWithKeyPrefix(ctx, deviceKeyPrefix)
	if err != nil {
		return n, fmt.Errorf("load open device-fault cases: %w", err)
	}
	openByKey := map[string]store.Case{}
	for _, c := range open {
		openByKey[c.IncidentKey] = c
	}
	faulty := map[string]fault{}
	// Keys of boxes and cameras known to work now: a box online and heard
	// from within Silence, a camera of such a box that its latest telemetry
	// says streams. (That telemetry may be one interval old just after the
	// box reconnected; the next one corrects it.)
	healthy := map[string]bool{}
	known := map[string]bool{} // healthy boxes, whose camera list is current
	for _, d := range devices {
		f, ok := w.boxFault(d, now, started)
		if ok {
			faulty[DeviceFaultKey(d.Device, "")] = f
			continue
		}
		if !d.Online || now.Sub(d.LastSeen) >= w.Silence {
			// Not faulty yet, not known to work either (just after a start):
			// neither open nor close anything for it.
			continue
		}
		healthy[DeviceFaultKey(d.Device, "")] = true
		if d.Telemetry == nil {
			continue
		}
		known[d.Device] = true
		for _, cam := range d.Telemetry.Cameras {
			key := DeviceFaultKey(d.Device, cam.Camera)
			if cam.Connected && cam.Grade != "down" {
				healthy[key] = true
				w.setDown(key, time.Time{})
				continue
			}
			since := w.setDown(key, now)
			if now.Sub(since) < w.CameraDown {
				continue
			}
			why := "disconnected"
			if cam.Connected {
				why = "connected but without pictures"
			}
			faulty[key] = fault{box: d.Device, camera: cam.Camera, state: "camera_down", lat: cam.Lat, lon: cam.Lon,
				why: fmt.Sprintf("camera %s of box %s %s since %s (box online, telemetry %s)", cam.Camera, d.Device, why,
					since.Format(time.RFC3339), d.Telemetry.At.Format(time.RFC3339))}
		}
	}
	n.Faulty = len(faulty)
	for key, f := range faulty {
		if c, ok := openByKey[key]; ok && c.RestoredAt.IsZero() {
			continue // already filed, still silent: nothing new to say
		}
		opened, err := w.file(ctx, key, f, now)
		if err != nil {
			return n, err
		}
		if opened {
			n.Opened++
		}
	}
	for key, c := range openByKey {
		if !c.RestoredAt.IsZero() {
			continue // its return is already on record
		}
		box, camera, _ := parseDeviceKey(key)
		var why string
		switch {
		case healthy[key] && camera == "":
			why = fmt.Sprintf("box %s is online again and sends its heartbeat", box)
		case healthy[key]:
			why = fmt.Sprintf("camera %s of box %s streams again", camera, box)
		case camera != "" && known[box] && !w.listed(devices, box, camera):
			why = fmt.Sprintf("camera %s is no longer in box %s's telemetry: removed from its config", camera, box)
		default:
			continue
		}
		if err := w.back(ctx, key, why, now); err != nil {
			return n, err
		}
		n.Back++
	}
	return n, nil
}

// boxFault says whether a box is faulty now and why.
func (w *Watchdog) boxFault(d store.Device, now, started time.Time) (fault, bool) {
	heard := d.LastSeen
	if heard.Before(started) {
		heard = started
	}
	f := fault{box: d.Device}
	if d.Telemetry != nil {
		// The box stands where its cameras do: the first one that says where.
		for _, c := range d.Telemetry.Cameras {
			if c.Lat != 0 || c.Lon != 0 {
				f.lat, f.lon = c.Lat, c.Lon
				break
			}
		}
	}
	switch {
	case !d.Online && now.Sub(heard) >= w.Offline:
		f.state = "offline"
		f.why = fmt.Sprintf("box %s is offline (its status, the last will, arrived %s) and has not come back for %s",
			d.Device, d.LastSeen.Format(time.RFC3339), now.Sub(heard).Round(time.Second))
		return f, true
	case now.Sub(heard) >= w.Silence:
		f.state = "silent"
		f.why = fmt.Sprintf("box %s has sent nothing (status, telemetry) since %s: %s, more than %s",
			d.Device, d.LastSeen.Format(time.RFC3339), now.Sub(heard).Round(time.Second), w.Silence)
		return f, true
	}
	return f, false
}

func (w *Watchdog) listed(devices []store.Device, box, camera string) bool {
	for _, d := range devices {
		if d.Device == box && d.Telemetry != nil {
			for _, c := range d.Telemetry.Cameras {
				if c.Camera == camera {
					return true
				}
			}
		}
	}
	return false
}

// setDown records when a camera was first seen down (zero t: it is up) and
// returns that time.
func (w *Watchdog) setDown(key string, t time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t.IsZero() {
		delete(w.downSince, key)
		return t
	}
	if s, ok := w.downSince[key]; ok {
		return s
	}
	w.downSince[key] = t
	return t
}

// file opens the fault's case and dispatches it to maintenance at once (the
// cloud itself measured the silence: there is nothing for a verifier to
// check), or, when an open case had recorded the device back, notes that it
// is silent again. opened is false when another process got there first.
func (w *Watchdog) file(ctx context.Context, key string, f fault, now time.Time) (opened bool, err error) {
	e := w.Engine
	cat, ok := e.tax().Event(DeviceFaultCategory)
	if !ok {
		return false, fmt.Errorf("taxonomy has no event %s (device fault): %w", DeviceFaultCategory, ErrInvalid)
	}
	if f.lat == 0 && f.lon == 0 {
		// No location in the telemetry: where the device's last camera case was.
		lat, lon, ok, err := e.Store.LastCaseLocation(ctx, f.box, f.camera, SourceCamera)
		if err != nil {
			return false, err
		}
		if ok {
			f.lat, f.lon = lat, lon
		}
	}
	err = e.Store.Update(ctx, func(tx *store.Tx) error {
		actor := "system:watchdog"
		c, err := tx.OpenCase(ctx, key)
		switch {
		case err == nil:
			if c.RestoredAt.IsZero() {
				return nil // another cloud process filed it meanwhile
			}
			c.RestoredAt, c.DetectionState, c.UpdatedAt = time.Time{}, f.state, now
			if err := tx.SaveCase(ctx, c); err != nil {
				return err
			}
			return tx.AddEvent(ctx, store.Event{CaseID: c.ID, At: now, Actor: actor, Action: "device_silent_again", Note: f.why})
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		c = store.Case{IncidentKey: key, Status: StatusReported, Source: SourceWatchdog, Category: DeviceFaultCategory,
			CategoryName: cat.Name + " " + cat.NameEN, Lat: f.lat, Lon: f.lon, Device: f.box, Camera: f.camera,
			DetectionState: f.state, OwnerDepartment: cat.Dept, CreatedAt: now, UpdatedAt: now}
		if cell, ok := e.Registry.CellAt(f.lat, f.lon); ok {
			c.GridCell, c.Street, c.AreaClass = cell.Code, cell.Street, cell.AreaClass
			if st, ok := e.Registry.Street(cell.Street); ok {
				c.StreetName, c.StreetOffice = st.Name, st.OfficeDept
			}
		} else {
			e.Log.Warn("device fault without a location in the district", "box", f.box, "camera", f.camera, "lat", f.lat, "lon", f.lon)
		}
		if err := e.createCase(ctx, tx, &c); err != nil {
			return err
		}
		if err := tx.AddEvent(ctx, store.Event{CaseID: c.ID, At: now, Actor: actor, Action: "reported", Note: f.why}); err != nil {
			return err
		}
		note, err := e.dispatch(ctx, tx, &c, now)
		if err != nil {
			return err
		}
		if err := tx.SaveCase(ctx, c); err != nil {
			return err
		}
		opened = true
		return tx.AddEvent(ctx, store.Event{CaseID: c.ID, At: now, Actor: actor, Action: "verified_dispatched",
			Note: "the cloud measured the silence itself, so no verifier is needed; " + note})
	})
	return opened, err
}

// back records that a faulty device works again. A dispatched or fixed case
// closes, the device's own heartbeat being the check (as the camera seeing a
// cover back is for a cover case), and the maintenance task is done at that
// moment; a case on hold or returned only gets the entry, and the dispatcher
// decides.
func (w *Watchdog) back(ctx context.Context, key, why string, now time.Time) error {
	e := w.Engine
	return e.Store.Update(ctx, func(tx *store.Tx) error {
		c, err := tx.OpenCase(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			return nil // closed meanwhile
		}
		if err != nil {
			return err
		}
		if !c.RestoredAt.IsZero() {
			return nil
		}
		c.RestoredAt, c.DetectionState, c.UpdatedAt = now, "online", now
		ev := store.Event{CaseID: c.ID, At: now, Actor: "system:watchdog", Action: "device_back", Note: why}
		if c.Status == StatusDispatched || c.Status == StatusFixed {
			tasks, err := tx.Tasks(ctx, c.ID)
			if err != nil {
				return err
			}
			for _, k := range tasks {
				if k.Role == RoleOwner && k.Status == TaskOpen {
					k.Status, k.DoneAt, k.Note = TaskDone, now, "the device is back: "+why
					if err := tx.SaveTask(ctx, k); err != nil {
						return err
					}
				}
			}
			if err := e.close(ctx, tx, &c, now); err != nil {
				return err
			}
			ev.Action, ev.Note = "device_check_closed", why+": checked by the device itself, case closed"
		}
		if err := tx.SaveCase(ctx, c); err != nil {
			return err
		}
		return tx.AddEvent(ctx, ev)
	})
}
