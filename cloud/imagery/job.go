package imagery

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"sync"
	"time"

	"gocv.io/x/gocv"

	"github.com/gridwatch/gridwatch/cloud/imagery/change"
	"github.com/gridwatch/gridwatch/cloud/imagery/georef"
)

// JobSpec says what a comparison job compares and how. Paths are on the
// machine that runs the job.
type JobSpec struct {
	Before    string  `json:"before"`
	After     string  `json:"after"`
	Area      string  `json:"area,omitempty"`   // GeoJSON polygons; "" = everything
	Zoom      int     `json:"zoom,omitempty"`   // pyramids: 0 = highest common zoom
	Scheme    string  `json:"scheme,omitempty"` // tile folders: xyz, tms or auto
	CRS       string  `json:"crs,omitempty"`    // world files: EPSG:3857, EPSG:4326 or auto
	Tile      int     `json:"tile,omitempty"`   // raster pairs: unit side in pixels
	MinAreaM2 float64 `json:"min_area_m2"`      // smaller changes are dropped
	Model     string  `json:"model,omitempty"`  // model file; "" = the catalog's default
	// Category is the case category changes are filed under (default 0101,
	// 私搭乱建 illegal construction).
	Category string `json:"category,omitempty"`
}

// DefaultCategory is the event code imagery changes are filed under.
const DefaultCategory = "0101"

// Normalize makes paths absolute and fills defaults, so a restarted job
// compares equal to its first run.
func (s *JobSpec) Normalize() error {
	if s.Before == "" || s.After == "" {
		return errors.New("before and after are required")
	}
	for _, p := range []*string{&s.Before, &s.After, &s.Area, &s.Model} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	if s.Category == "" {
		s.Category = DefaultCategory
	}
	if s.MinAreaM2 < 0 {
		return fmt.Errorf("min_area_m2: %v is negative", s.MinAreaM2)
	}
	if s.Zoom < 0 || s.Zoom > 30 {
		return fmt.Errorf("zoom: %d is not 0-30", s.Zoom)
	}
	if _, err := georef.ParseCRS(s.CRS); err != nil {
		return fmt.Errorf("crs: %w", err)
	}
	return nil
}

// JobState is the job's identity, stored as job.json in its directory.
type JobState struct {
	ID          string    `json:"id"`
	Spec        JobSpec   `json:"spec"`
	Created     time.Time `json:"created"`
	ModelName   string    `json:"model_name,omitempty"`
	ModelSHA256 string    `json:"model_sha256,omitempty"`
}

// JobChange is one change a job found.
type JobChange struct {
	ID     string       `json:"id"`  // unit key and number within the unit: stable across restarts
	Seq    uint64       `json:"seq"` // unit index × 10000 + number: the intake's idempotency key
	Ring   [][2]float64 `json:"ring"`
	AreaM2 float64      `json:"area_m2"`
	Score  float64      `json:"score"`
	Lon    float64      `json:"lon"` // centre of the bounding box
	Lat    float64      `json:"lat"`
	// Before and After are JPEG crops (the change outlined) relative to the
	// job directory, with their sha256 (evidence addresses).
	Before       string `json:"before_jpeg"`
	After        string `json:"after_jpeg"`
	BeforeSHA256 string `json:"before_sha256"`
	AfterSHA256  string `json:"after_sha256"`
	Pixels       int    `json:"pixels,omitempty"`
	// Part is set on a unit's piece of a region that reaches the unit's
	// border: when every unit has finished, the pieces that touch across
	// borders become one change (merge.go). A piece has crops only when it
	// is large enough to be a change on its own.
	Part *Part `json:"part,omitempty"`
	// Parts lists the ids of the unit pieces a merged change is made of.
	Parts []string `json:"parts,omitempty"`
}

// Part is what a unit keeps of a region that reaches its border, in the
// source's whole-image pixels (raster pairs) or pixels at the zoom
// (pyramids).
type Part struct {
	Core [4]int   `json:"core"` // the unit's core [x0, y0, x1, y1)
	Runs [][3]int `json:"runs"` // the region's pixels: row y, columns [x0, x1)
}

// UnitResult is one finished unit, one line of units.jsonl.
type UnitResult struct {
	Key     string      `json:"key"`
	Index   int         `json:"index"`
	Pixels  int         `json:"pixels"` // core pixels of both dates
	Shift   Shift       `json:"shift"`
	Millis  float64     `json:"ms"`
	Changes []JobChange `json:"changes"`
}

// Job is a comparison that survives restarts: its directory holds job.json,
// units.jsonl (one line per finished unit, appended and synced as each
// finishes), crops/, and at the end changes.geojson and summary.json.
type Job struct {
	Dir   string
	State JobState

	mu    sync.Mutex
	done  map[string]UnitResult
	final []JobChange // the merged changes of a finished job (nil until then)
}

// Job files.
const (
	jobFile     = "job.json"
	unitsFile   = "units.jsonl"
	changesFile = "changes.json" // the finished job's changes, merged across unit borders
	GeoJSONFile = "changes.geojson"
	SummaryFile = "summary.json"
)

// jobIDRE: a job directory's name becomes the job's id when it can be part
// of a device id (imagery-ID); otherwise the id is random.
var jobIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// SpecID is the id of the job a spec describes: the same comparison gets the
// same id (and directory), so starting it again resumes it.
func SpecID(spec JobSpec) (string, error) {
	if err := spec.Normalize(); err != nil {
		return "", err
	}
	data, _ := json.Marshal(spec)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:6]), nil
}

// OpenJob opens the job in dir, creating it from spec if dir has none. A
// spec given for an existing job must equal the stored one (a different
// comparison needs another directory); a nil spec resumes whatever is there.
func OpenJob(dir string, spec *JobSpec) (*Job, error) {
	j := &Job{Dir: dir, done: map[string]UnitResult{}}
	data, err := os.ReadFile(filepath.Join(dir, jobFile))
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &j.State); err != nil {
			return nil, fmt.Errorf("job %s: %s: %w", dir, jobFile, err)
		}
		if spec != nil {
			s := *spec
			if err := s.Normalize(); err != nil {
				return nil, err
			}
			if s != j.State.Spec {
				return nil, fmt.Errorf("job %s was started with %+v, not %+v: use another job directory for another comparison", dir, j.State.Spec, s)
			}
		}
	case errors.Is(err, os.ErrNotExist):
		if spec == nil {
			return nil, fmt.Errorf("job %s: no %s to resume", dir, jobFile)
		}
		s := *spec
		if err := s.Normalize(); err != nil {
			return nil, err
		}
		id := filepath.Base(dir)
		if !jobIDRE.MatchString(id) {
			var r [6]byte
			_, _ = rand.Read(r[:])
			id = hex.EncodeToString(r[:])
		}
		j.State = JobState{ID: id, Spec: s, Created: time.Now().UTC().Truncate(time.Second)}
		if err := os.MkdirAll(filepath.Join(dir, "crops"), 0o755); err != nil {
			return nil, fmt.Errorf("job: %w", err)
		}
		if err := j.saveState(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("job %s: %w", dir, err)
	}
	if err := j.readUnits(); err != nil {
		return nil, err
	}
	if data, err := os.ReadFile(filepath.Join(dir, changesFile)); err == nil {
		var final []JobChange
		if err := json.Unmarshal(data, &final); err != nil {
			return nil, fmt.Errorf("job %s: %s: %w", dir, changesFile, err)
		}
		j.final = final
	}
	return j, nil
}

// Finished says whether the job has run to its end (its changes are
// merged across unit borders, changes.geojson is written).
func (j *Job) Finished() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.final != nil
}

func (j *Job) saveState() error {
	data, _ := json.MarshalIndent(j.State, "", "  ")
	tmp := filepath.Join(j.Dir, jobFile+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("job: %w", err)
	}
	return os.Rename(tmp, filepath.Join(j.Dir, jobFile))
}

// readUnits loads the finished units; a line cut short by a crash is
// dropped (and cut from the file) so the unit runs again.
func (j *Job) readUnits() error {
	path := filepath.Join(j.Dir, unitsFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("job: %w", err)
	}
	good := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 1<<20), 256<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var u UnitResult
		if json.Unmarshal(line, &u) != nil || good+len(line) >= len(data) { // unterminated last line
			break
		}
		j.done[u.Key] = u
		good += len(line) + 1
	}
	if good < len(data) {
		return os.Truncate(path, int64(good))
	}
	return nil
}

// DeviceID is the identity the job's changes enter the case engine under:
// imagery-ID-FP, FP a fingerprint of the job's spec and creation time. The
// case engine is idempotent by device+seq, so the device must name this
// job and no other: two different comparisons run in directories of the
// same name (the id) must not take each other's changes for duplicates.
// It is stable across resumes (both are in job.json).
func (j *Job) DeviceID() string {
	data, _ := json.Marshal(struct {
		Spec    JobSpec   `json:"spec"`
		Created time.Time `json:"created"`
	}{j.State.Spec, j.State.Created})
	sum := sha256.Sum256(data)
	return "imagery-" + j.State.ID + "-" + hex.EncodeToString(sum[:4])
}

// Progress is reported after every unit.
type Progress struct {
	Done, Total int // units, including those finished before a restart
	Resumed     int // units finished before this run
	Changes     int
	Elapsed     time.Duration
	MP          float64 // megapixels of both dates processed in this run
}

// Summary describes a finished job; it is also stored as summary.json.
type Summary struct {
	JobID      string    `json:"job_id"`
	Source     string    `json:"source"`
	Units      int       `json:"units"`
	Resumed    int       `json:"resumed"` // units finished by an earlier run, not redone
	Changes    int       `json:"changes"`
	AreaM2     float64   `json:"area_m2"`
	MP         float64   `json:"megapixels"` // both dates, this run
	Seconds    float64   `json:"seconds"`
	MsPerMP    float64   `json:"ms_per_megapixel"`
	CPUMsPerMP float64   `json:"cpu_ms_per_megapixel"`
	GeoJSON    string    `json:"geojson"`
	Finished   time.Time `json:"finished"`
}

// RunOptions tune Run.
type RunOptions struct {
	Workers  int // units at once (default GOMAXPROCS)
	Progress func(Progress)
}

// Run processes every unit not finished yet, in parallel, then writes
// changes.geojson and summary.json. Cancelling ctx stops after the units in
// flight; finished units are kept for the next Run.
func (j *Job) Run(ctx context.Context, m *change.Model, opt RunOptions) (*Summary, error) {
	start, cpu0 := time.Now(), cpuTime()
	spec := j.State.Spec
	var area *georef.Area
	if spec.Area != "" {
		var err error
		if area, err = georef.ReadArea(spec.Area); err != nil {
			return nil, err
		}
	}
	crs, _ := georef.ParseCRS(spec.CRS)
	src, err := OpenSource(spec.Before, spec.After, SourceOptions{CRS: crs, Tile: spec.Tile, Margin: m.Reach(),
		Zoom: spec.Zoom, Scheme: spec.Scheme, Area: area})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	// The network standardises every unit with the statistics of all the
	// imagery, so its result does not depend on how it is cut into units.
	var sc *change.SceneStats
	if m.Net != nil {
		st, err := src.Stats()
		if err != nil {
			return nil, fmt.Errorf("job: band statistics: %w", err)
		}
		sc = &st
	}
	units := src.Units()
	var todo []Unit
	for _, u := range units {
		if _, ok := j.done[u.Key]; !ok {
			todo = append(todo, u)
		}
	}
	resumed := len(units) - len(todo)
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	f, err := os.OpenFile(filepath.Join(j.Dir, unitsFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("job: %w", err)
	}
	defer f.Close()
	var (
		wg       sync.WaitGroup
		firstErr error
		pixels   int
		changes  int
		done     = resumed
	)
	for _, u := range j.done {
		changes += len(u.Changes)
	}
	next := make(chan Unit)
	for k := 0; k < opt.Workers; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range next {
				t0 := time.Now()
				res, err := j.processUnit(src, u, m, sc, area, spec.MinAreaM2)
				if err == nil {
					res.Millis = float64(time.Since(t0).Microseconds()) / 1000
					err = j.record(f, res)
				}
				j.mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("unit %s: %w", u.Key, err)
				}
				if err == nil {
					done++
					pixels += res.Pixels
					changes += len(res.Changes)
				}
				p := Progress{Done: done, Total: len(units), Resumed: resumed, Changes: changes,
					Elapsed: time.Since(start), MP: float64(pixels) / 1e6}
				j.mu.Unlock()
				if opt.Progress != nil {
					opt.Progress(p)
				}
			}
		}()
	}
feed:
	for _, u := range todo {
		j.mu.Lock()
		failed := firstErr != nil
		j.mu.Unlock()
		if failed {
			break
		}
		select {
		case next <- u:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("job %s stopped after %d of %d units (run it again to continue): %w", j.State.ID, done, len(units), err)
	}
	all, err := j.merge(src, m, spec.MinAreaM2, opt.Workers)
	if err != nil {
		return nil, fmt.Errorf("job %s: merging changes across unit borders: %w", j.State.ID, err)
	}
	data, _ := json.Marshal(all)
	tmp := filepath.Join(j.Dir, changesFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return nil, fmt.Errorf("job: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(j.Dir, changesFile)); err != nil {
		return nil, fmt.Errorf("job: %w", err)
	}
	j.mu.Lock()
	j.final = all
	j.mu.Unlock()
	out := make([]georef.Change, len(all))
	var areaM2 float64
	for i, c := range all {
		out[i] = georef.Change{ID: i + 1, Key: c.ID, Ring: c.Ring, AreaM2: c.AreaM2, Score: c.Score,
			BeforeJPEG: c.Before, AfterJPEG: c.After}
		areaM2 += c.AreaM2
	}
	var buf bytes.Buffer
	if err := georef.WriteGeoJSON(&buf, out); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(j.Dir, GeoJSONFile), buf.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("job: %w", err)
	}
	el := time.Since(start)
	mp := float64(pixels) / 1e6
	s := &Summary{JobID: j.State.ID, Source: src.Describe(), Units: len(units), Resumed: resumed, Changes: len(all),
		AreaM2: areaM2, MP: mp, Seconds: el.Seconds(), GeoJSON: filepath.Join(j.Dir, GeoJSONFile), Finished: time.Now().UTC()}
	if mp > 0 {
		s.MsPerMP = el.Seconds() * 1000 / mp
		s.CPUMsPerMP = (cpuTime() - cpu0).Seconds() * 1000 / mp
	}
	data, _ = json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(filepath.Join(j.Dir, SummaryFile), append(data, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("job: %w", err)
	}
	return s, nil
}

// record appends a finished unit to units.jsonl and syncs it.
func (j *Job) record(f *os.File, r UnitResult) error {
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("job: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("job: %w", err)
	}
	j.done[r.Key] = r
	return nil
}

// Changes lists the job's changes in unit order: once it has finished, one
// per region, merged across unit borders; before, what the finished units
// found (a region across a border counted once per unit).
func (j *Job) Changes() []JobChange {
	j.mu.Lock()
	if j.final != nil {
		out := append([]JobChange(nil), j.final...)
		j.mu.Unlock()
		return out
	}
	j.mu.Unlock()
	return j.unitChanges()
}

// unitChanges lists what the finished units found, in unit order.
func (j *Job) unitChanges() []JobChange {
	j.mu.Lock()
	units := make([]UnitResult, 0, len(j.done))
	for _, u := range j.done {
		units = append(units, u)
	}
	j.mu.Unlock()
	sort.Slice(units, func(a, b int) bool { return units[a].Index < units[b].Index })
	var out []JobChange
	for _, u := range units {
		out = append(out, u.Changes...)
	}
	return out
}

// maxPerUnit bounds the changes one unit may report (sequence numbers are
// unit index × maxPerUnit + number).
const maxPerUnit = 10000

// processUnit finds the changes whose pixels lie in the unit's core: the
// probability map is computed with the margin's context and cleaned
// locally, then cut to the core (and to where both dates have data and the
// area of interest), so each pixel is found by exactly one unit. A region
// that reaches the core's border is kept as a Part, whatever its size, and
// judged when the job merges it with its pieces in the neighbouring units.
func (j *Job) processUnit(src Source, u Unit, m *change.Model, sc *change.SceneStats, area *georef.Area, minAreaM2 float64) (UnitResult, error) {
	p, err := src.Load(u)
	if err != nil {
		return UnitResult{}, err
	}
	a := p.Before
	b, shift := PrepareFor(m, a, p.After)
	prob, err := m.ProbScene(a, b, sc, 1)
	if err != nil {
		return UnitResult{}, err
	}
	local := m.Post.Local(prob, a.W, a.H)
	core := p.Core
	cw, ch := core.Dx(), core.Dy()
	var inArea []uint8
	if area != nil {
		inArea = area.Mask(p.Grid, core)
	}
	mask := change.NewMask(cw, ch)
	for y := 0; y < ch; y++ {
		for x := 0; x < cw; x++ {
			i := (y+core.Min.Y)*a.W + x + core.Min.X
			v := local.Pix[i]
			if p.Valid != nil && p.Valid[i] == 0 || inArea != nil && inArea[y*cw+x] == 0 {
				v = 0
			}
			mask.Pix[y*cw+x] = v
		}
	}
	// As change.RemoveSmall, except that regions reaching the border stay.
	labels, comps := change.Components(mask, 1)
	for i, l := range labels {
		if l != 0 && comps[l-1].Area < m.Post.MinArea && !atBorder(comps[l-1], cw, ch) {
			mask.Pix[i] = 0
		}
	}
	mask = change.RemoveSmall(mask, 0, m.Post.MaxHole)
	labels, comps = change.Components(mask, 1)
	chs, err := Polygons(mask, func(i int) float64 {
		return float64(prob[(i/cw+core.Min.Y)*a.W+i%cw+core.Min.X])
	}, core.Min, p.Grid, 0)
	if err != nil {
		return UnitResult{}, err
	}
	if len(chs) != len(comps) {
		return UnitResult{}, fmt.Errorf("%d polygons for %d regions", len(chs), len(comps))
	}
	origin := p.Origin.Add(core.Min) // the core's top-left in the source's pixels
	res := UnitResult{Key: u.Key, Index: u.Index, Pixels: 2 * cw * ch, Shift: shift, Changes: []JobChange{}}
	n := 0
	for k, c := range chs {
		edge := atBorder(comps[k], cw, ch)
		if !edge && c.AreaM2 < minAreaM2 {
			continue
		}
		if n+1 >= maxPerUnit {
			break
		}
		n++
		box := image.Rect(c.PixelBox[0], c.PixelBox[1], c.PixelBox[2], c.PixelBox[3])
		lon, lat := p.Grid.LonLat(float64(box.Min.X+box.Max.X)/2, float64(box.Min.Y+box.Max.Y)/2)
		jc := JobChange{ID: fmt.Sprintf("%s-%d", u.Key, n), Seq: uint64(u.Index)*maxPerUnit + uint64(n),
			Ring: c.Ring, AreaM2: c.AreaM2, Score: c.Score, Pixels: c.Pixels, Lon: lon, Lat: lat}
		if edge {
			jc.Part = &Part{Core: [4]int{origin.X, origin.Y, origin.X + cw, origin.Y + ch},
				Runs: runsOf(labels, comps[k], cw, origin)}
			if c.Pixels < m.Post.MinArea || c.AreaM2 < minAreaM2 {
				// Kept only if a neighbour's piece makes it large enough;
				// the merge then crops the whole.
				res.Changes = append(res.Changes, jc)
				continue
			}
			// Crops now, from the pixels at hand: a piece that touches no
			// other is a change as it is.
		}
		if err := j.writeCrops(&jc, a, p.After, p.Grid, box); err != nil {
			return res, err
		}
		res.Changes = append(res.Changes, jc)
	}
	return res, nil
}

// atBorder says whether a region of a w×h mask touches its edge.
func atBorder(c change.Component, w, h int) bool {
	return c.MinX == 0 || c.MinY == 0 || c.MaxX == w-1 || c.MaxY == h-1
}

// runsOf lists a region's pixels as row runs, shifted by off.
func runsOf(labels []int32, c change.Component, w int, off image.Point) [][3]int {
	var out [][3]int
	for y := c.MinY; y <= c.MaxY; y++ {
		for x := c.MinX; x <= c.MaxX; x++ {
			if labels[y*w+x] != c.Label {
				continue
			}
			x0 := x
			for x <= c.MaxX && labels[y*w+x] == c.Label {
				x++
			}
			out = append(out, [3]int{y + off.Y, x0 + off.X, x + off.X})
		}
	}
	return out
}

// writeCrops stores the before and after crops of a change (box in the
// images' pixels, its outline drawn) and records their names and sha256.
func (j *Job) writeCrops(jc *JobChange, before, after *change.Image, g georef.Grid, box image.Rectangle) error {
	outline := make([]image.Point, len(jc.Ring))
	for i, q := range jc.Ring {
		x, y := g.Pixel(q[0], q[1])
		outline[i] = image.Pt(int(x), int(y))
	}
	for _, side := range []struct {
		im        *change.Image
		name      string
		file, sum *string
	}{{before, "before", &jc.Before, &jc.BeforeSHA256}, {after, "after", &jc.After, &jc.AfterSHA256}} {
		data, err := cropJPEG(side.im, box, outline)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		*side.sum = hex.EncodeToString(sum[:])
		*side.file = filepath.Join("crops", jc.ID+"-"+side.name+".jpg")
		if err := os.WriteFile(filepath.Join(j.Dir, *side.file), data, 0o644); err != nil {
			return fmt.Errorf("job: %w", err)
		}
	}
	return nil
}

// cropJPEG encodes the region around box (grown by half its size and at
// least 32 pixels each side) with the change's outline drawn in red.
func cropJPEG(im *change.Image, box image.Rectangle, outline []image.Point) ([]byte, error) {
	g := max(32, max(box.Dx(), box.Dy())/2)
	r := image.Rect(box.Min.X-g, box.Min.Y-g, box.Max.X+g, box.Max.Y+g).Intersect(image.Rect(0, 0, im.W, im.H))
	w, h := r.Dx(), r.Dy()
	buf := make([]byte, 3*w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			i := (y+r.Min.Y)*im.W + x + r.Min.X
			o := 3 * (y*w + x)
			buf[o], buf[o+1], buf[o+2] = byte(im.B[i]), byte(im.G[i]), byte(im.R[i])
		}
	}
	mat, err := gocv.NewMatFromBytes(h, w, gocv.MatTypeCV8UC3, buf)
	if err != nil {
		return nil, err
	}
	defer mat.Close()
	if len(outline) >= 2 {
		pts := make([]image.Point, len(outline))
		for i, q := range outline {
			pts[i] = q.Sub(r.Min)
		}
		pv := gocv.NewPointsVectorFromPoints([][]image.Point{pts})
		gocv.Polylines(&mat, pv, true, color.RGBA{R: 255, A: 255}, 1)
		pv.Close()
	}
	nb, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, mat, []int{gocv.IMWriteJpegQuality, 90})
	if err != nil {
		return nil, fmt.Errorf("encode crop: %w", err)
	}
	defer nb.Close()
	return append([]byte(nil), nb.GetBytes()...), nil
}
