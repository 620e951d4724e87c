package agent

import (
	"context"
	"errors"
	"fmt"
	"github.com/gridwatch/gridwatch/edge/atomicfile"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/gridwatch/gridwatch/edge/config"
	"github.com/gridwatch/gridwatch/edge/wire"
)

// fleet runs the cameras and swaps them when a new config arrives: cameras
// whose config did not change keep streaming.
type fleet struct {
	ctx    context.Context
	newCam func(config.Camera) *camera
	log    *slog.Logger
	wg     sync.WaitGroup

	mu      sync.Mutex
	running map[string]*running
}

type running struct {
	cam    *camera
	cancel context.CancelFunc
	done   chan error // receives run's result once
}

func newFleet(ctx context.Context, newCam func(config.Camera) *camera, log *slog.Logger) *fleet {
	return &fleet{ctx: ctx, newCam: newCam, log: log, running: map[string]*running{}}
}

// cameras returns the running cameras by id.
func (f *fleet) cameras() map[string]*camera {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]*camera, len(f.running))
	for id, r := range f.running {
		out[id] = r.cam
	}
	return out
}

// watching returns the camera that watches a facility.
func (f *fleet) watching(facility string) (*camera, bool) {
	for _, c := range f.cameras() {
		for _, cv := range c.cfg.Covers {
			if cv.FacilityID == facility {
				return c, true
			}
		}
	}
	return nil, false
}

// apply makes the running set match list; it returns the ids it started.
func (f *fleet) apply(list []config.Camera) (started []string) {
	want := map[string]config.Camera{}
	for _, c := range list {
		want[c.ID] = c
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, r := range f.running {
		if c, ok := want[id]; ok && reflect.DeepEqual(c, r.cam.cfg) {
			delete(want, id) // unchanged: keep streaming
			continue
		}
		r.cancel()
		<-r.done
		delete(f.running, id)
		f.log.Info("camera stopped for the new config", "camera", id)
	}
	for id, c := range want {
		ctx, cancel := context.WithCancel(f.ctx)
		r := &running{cam: f.newCam(c), cancel: cancel, done: make(chan error, 1)}
		f.running[id] = r
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			err := r.cam.run(ctx)
			if err != nil && ctx.Err() == nil {
				f.log.Error("camera stopped", "camera", id, "err", err)
			}
			r.done <- err
		}()
		started = append(started, id)
	}
	sort.Strings(started)
	return started
}

// failedEarly reports the first of ids whose camera stopped with an error
// within `within` (a camera that cannot start: decoder, reference image).
func (f *fleet) failedEarly(ids []string, within time.Duration) error {
	deadline := time.After(within)
	for _, id := range ids {
		f.mu.Lock()
		r := f.running[id]
		f.mu.Unlock()
		if r == nil {
			continue
		}
		select {
		case err := <-r.done:
			r.done <- err // keep it for whoever stops this camera
			if err != nil {
				return fmt.Errorf("camera %s: %w", id, err)
			}
		case <-deadline:
			return nil
		}
	}
	return nil
}

// reconfigurer applies configs pushed by the cloud.
type reconfigurer struct {
	mu     sync.Mutex
	cur    *config.Config
	fleet  *fleet
	status func(version, configErr string)
	log    *slog.Logger
	settle time.Duration // how long a new camera must survive before the config is kept
}

var errNeedsRestart = errors.New("needs a restart of the box, not applied live")

// apply validates push, applies it without restarting unchanged cameras,
// persists it, and rolls back if a changed camera cannot start.
func (rc *reconfigurer) apply(push wire.ConfigPush) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if push.Version == rc.cur.Version {
		return nil // the retained push we already run
	}
	next, err := config.Parse([]byte(push.YAML))
	if err != nil {
		return rc.refuse(push, err)
	}
	if next.Version != push.Version {
		return rc.refuse(push, fmt.Errorf("version: the YAML says %q, the push %q", next.Version, push.Version))
	}
	next.Path, next.CoverModel = rc.cur.Path, rc.cur.CoverModel
	if next.Path != "" {
		if err := next.ResolveModels(filepath.Dir(next.Path)); err != nil {
			return rc.refuse(push, err)
		}
	}
	return rc.switchTo(next, push.Version, []byte(push.YAML))
}

func (rc *reconfigurer) refuse(push wire.ConfigPush, err error) error {
	err = fmt.Errorf("config version %s refused: %w", push.Version, err)
	rc.log.Warn("config push refused", "err", err, "running", rc.cur.Version)
	rc.status(rc.cur.Version, err.Error())
	return err
}

// persist writes the config file atomically, keeping the previous as .prev.
func persist(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil {
		if err := os.WriteFile(path+".prev", old, 0o644); err != nil {
			return err
		}
	}
	return atomicfile.Write(path, data)
}
