package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/gridwatch/gridwatch/edge/cover"
	"github.com/gridwatch/gridwatch/edge/coverclass"
	"github.com/gridwatch/gridwatch/edge/scenes"
	"github.com/gridwatch/gridwatch/edge/sim"
)

// `gridwatch-edge eval scenes --seeds A-B`: the cover monitor and the
// occupancy detector on the simulated suite (edge/scenes), one row per seed.
func init() { evals["scenes"] = evalScenes }

func evalScenes(ctx context.Context, args []string) error {
	return runEvalScenes(ctx, args, os.Stdout, os.Stderr)
}

func runEvalScenes(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval scenes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seedsArg := fs.String("seeds", "1-20", "seeds to run: A-B, or a comma-separated list")
	duration := fs.Duration("duration", 3*time.Minute, "simulated time per seed")
	width := fs.Int("width", 960, "picture width (16:9)")
	fps := fs.Int("fps", 10, "the stream's frame rate; a keyframe every second (the cover monitor checks keyframes, the occupancy detector samples 2 fps, so 2 is enough to feed both)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole eval (render, encode pipe, decode, detect) to this file")
	dwell := fs.Duration("dwell", 10*time.Second, "the zones' dwell time")
	manifest := fs.String("model", "models/cover-state/manifest.json", "the cover classifier's manifest (\"\": reference look only)")
	parallel := fs.Int("parallel", 2, "seeds run at once")
	keep := fs.String("keep", "", "keep each seed's H.264 and truth.json in this directory")
	coversOnly := fs.Bool("covers-only", false, "run the cover monitor alone (no occupancy detector, occupation not scored): for long runs that measure false cover reports")
	renderOnly := fs.Bool("render-only", false, "with --keep: render and keep the scenes, do not run the detectors (score them later with --replay)")
	replay := fs.String("replay", "", "do not render: run the detectors on the scenes an earlier --keep left in this directory")
	asJSON := fs.Bool("json", false, "print one JSON object as the last line")
	list := fs.Bool("list", false, "print every truth episode and every report of each seed on stderr")
	combine := fs.Bool("combine", false, "do not run anything: add up the JSON results (the last line of each file named after the flags) of earlier runs over different seeds")
	trace := fs.String("trace", "", "print every check of the cover with this facility id (or of each in a comma-separated list; \"all\": every cover) (state, confidence, correlations, dark share, classifier) on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *combine {
		return combineScenes(fs.Args(), stdout)
	}
	seeds, err := parseSeeds(*seedsArg)
	if err != nil {
		return fmt.Errorf("eval scenes: --seeds: %w", err)
	}
	if *parallel < 1 {
		return fmt.Errorf("eval scenes: --parallel %d must be at least 1", *parallel)
	}
	if *duration < 30*time.Second {
		return fmt.Errorf("eval scenes: --duration %v is shorter than 30s: too short to script a scene", *duration)
	}
	if *fps < 1 {
		return fmt.Errorf("eval scenes: --fps %d must be at least 1", *fps)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return fmt.Errorf("eval scenes: --cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("eval scenes: --cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	opts := scenes.Options{Scene: sim.SuiteOptions{Width: *width, FPS: *fps, Duration: *duration, Dwell: *dwell}, CoversOnly: *coversOnly}
	if *renderOnly && (*keep == "" || *replay != "") {
		return fmt.Errorf("eval scenes: --render-only needs --keep DIR (and no --replay)")
	}
	if *trace != "" {
		var tmu sync.Mutex
		traced := strings.Split(*trace, ",")
		opts.CoverTrace = func(at float64, id string, o cover.Observation, state string) {
			if *trace != "all" && !slices.Contains(traced, id) {
				return
			}
			tmu.Lock()
			defer tmu.Unlock()
			fmt.Fprintf(stderr, "trace %s %7.1f s: %-8s conf %.2f ncc %.2f dark %.2f open %.2f ring %.2f above %.2f below %.2f confirmed %s\n",
				id, at, o.State, o.Confidence, o.NCC, o.Dark, o.Open, o.Ring, o.Above, o.Below, state)
		}
	}
	if *keep != "" {
		if err := os.MkdirAll(*keep, 0o755); err != nil {
			return fmt.Errorf("eval scenes: --keep: %w", err)
		}
		opts.Dir, opts.Keep = *keep, true
	}

	start := time.Now()
	results := make([]scenes.Score, len(seeds))
	errs := make([]error, len(seeds))
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for range min(*parallel, len(seeds)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := opts
			if *manifest != "" {
				// One classifier per worker: its scratch buffers are not shared.
				c, err := coverclass.Load(*manifest)
				if err != nil {
					for i := range next {
						errs[i] = err
					}
					return
				}
				o.Classifier = cover.FromCoverclass(c)
			}
			for i := range next {
				var run scenes.Run
				var err error
				switch {
				case *renderOnly:
					run, err := scenes.RenderSeed(ctx, seeds[i], o)
					if err != nil {
						errs[i] = err
						continue
					}
					mu.Lock()
					done++
					fmt.Fprintf(stderr, "scenes: seed %d rendered (%d/%d): %.2f camera-hours in %.0fs\n", seeds[i], done, len(seeds), run.Truth.Duration/3600, run.Render.Seconds())
					mu.Unlock()
					continue
				case *replay != "":
					run, err = replaySeed(ctx, *replay, seeds[i], o)
				default:
					run, err = scenes.RunSeed(ctx, seeds[i], o)
				}
				if err != nil {
					errs[i] = err
					continue
				}
				results[i] = scenes.Evaluate(run)
				r := results[i]
				mu.Lock()
				if *list {
					listRun(stderr, run)
				}
				done++
				fmt.Fprintf(stderr, "scenes: seed %d done (%d/%d): covers %d/%d found, %d false; occupation %d/%d found, %d reports; render %.0fs, detect %.0fs\n",
					seeds[i], done, len(seeds), r.CoverFound, r.CoverEpisodes, r.CoverFalse, r.OccFound, r.OccEpisodes, r.OccReports, r.RenderS, r.DetectS)
				mu.Unlock()
			}
		}()
	}
	for i := range seeds {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if *renderOnly {
		for i, err := range errs {
			if err != nil {
				return fmt.Errorf("eval scenes: seed %d: %w", seeds[i], err)
			}
		}
		fmt.Fprintf(stdout, "rendered %d seeds into %s in %.0f s; score them with --replay %s\n", len(seeds), *keep, time.Since(start).Seconds(), *keep)
		return nil
	}
	var total scenes.Score
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("eval scenes: seed %d: %w", seeds[i], err)
		}
		total.Add(results[i])
	}
	printScenes(stdout, results, total, time.Since(start))
	if !*asJSON {
		return nil
	}
	return json.NewEncoder(stdout).Encode(sceneJSON(total, seeds, time.Since(start).Seconds()))
}

// replaySeed runs the detectors on seed's scene as --keep left it in dir.
func replaySeed(ctx context.Context, dir string, seed int64, o scenes.Options) (scenes.Run, error) {
	paths, err := filepath.Glob(filepath.Join(dir, fmt.Sprintf("scene-%d-*.h264", seed)))
	if err != nil {
		return scenes.Run{}, err
	}
	if len(paths) == 0 {
		return scenes.Run{}, fmt.Errorf("no kept scene-%d-*.h264 in %s (render with --keep first)", seed, dir)
	}
	path := paths[len(paths)-1]
	truth, err := sim.ReadTruth(path + ".truth.json")
	if err != nil {
		return scenes.Run{}, err
	}
	if truth.Seed != seed {
		return scenes.Run{}, fmt.Errorf("%s is the truth of seed %d", path, truth.Seed)
	}
	return scenes.DetectFile(ctx, path, truth, o)
}

// jsonNum keeps NaN (no latency measured) out of the JSON.
func jsonNum(v float64) any {
	if math.IsNaN(v) {
		return nil
	}
	return v
}

func printScenes(w io.Writer, rows []scenes.Score, total scenes.Score, wall time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "seed\tconditions\tcovers found\tfalse\tdup\tdark found\toccupation found\treports ok\tlat p50 s\t")
	cond := func(c *sim.Conditions) string {
		if c == nil {
			return "-"
		}
		s := c.Light
		if c.MovingShadows {
			s += "+shadows"
		}
		if c.Rain {
			s += "+rain"
		}
		if c.Shake {
			s += "+shake"
		}
		return s + "+crf" + strconv.Itoa(c.CRF)
	}
	row := func(name, cs string, r scenes.Score) {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%d/%d\t%d/%d\t%d/%d\t%.1f\t\n", name, cs,
			r.CoverFound, r.CoverEpisodes, r.CoverFalse, r.CoverDuplicate, r.DarkFound, r.DarkEpisodes,
			r.OccFound, r.OccEpisodes, r.OccCorrect, r.OccReports, scenes.Quantile(r.Latencies(), 0.5))
	}
	for _, r := range rows {
		row(strconv.FormatInt(r.Seeds[0], 10), cond(r.Conditions), r)
	}
	row("total", fmt.Sprintf("%d seeds", len(rows)), total)
	tw.Flush()
	lat := total.Latencies()
	fmt.Fprintf(w, "\ncamera hours simulated   %.2f\n", total.Hours)
	fmt.Fprintf(w, "cover recall             %.3f (%d/%d; missing episodes on dark covers, not counted: %d, found %d)\n",
		total.CoverRecall(), total.CoverFound, total.CoverEpisodes, total.DarkEpisodes, total.DarkFound)
	fmt.Fprintf(w, "false cover reports      %d = %.2f per camera-day (duplicates within a true episode: %d)\n",
		total.CoverFalse, total.FalsePerCameraDay(), total.CoverDuplicate)
	fmt.Fprintf(w, "occupation               precision %.3f, recall %.3f, F1 %.3f (%d truth episodes, %d reported)\n",
		total.OccPrecision(), total.OccRecall(), total.OccF1(), total.OccEpisodes, total.OccReports)
	fmt.Fprintf(w, "latency                  p50 %.1f s, p95 %.1f s (covers p50 %.1f s from visible; occupation p50 %.1f s after start+dwell)\n",
		scenes.Quantile(lat, 0.5), scenes.Quantile(lat, 0.95), scenes.Quantile(total.CoverLatencies, 0.5), scenes.Quantile(total.OccLatencies, 0.5))
	fmt.Fprintf(w, "wall time                %.0f s (render+encode %.0f s, decode+detect %.0f s, summed over seeds)\n",
		wall.Seconds(), total.RenderS, total.DetectS)
}

// listRun prints what happened and what was reported, for finding out why
// a seed scores as it does.
func listRun(w io.Writer, run scenes.Run) {
	t := run.Truth
	fmt.Fprintf(w, "seed %d truth:\n", t.Seed)
	for _, iv := range t.Timeline {
		if iv.State == sim.StateMissing {
			fmt.Fprintf(w, "  cover %s missing %.1f-%.1f s\n", iv.FacilityID, iv.From, iv.To)
		}
	}
	for _, e := range t.Episodes {
		fmt.Fprintf(w, "  zone %s %s %.1f-%.1f s box %v\n", e.Zone, e.Kind, e.From, e.To, e.Box)
	}
	fmt.Fprintf(w, "seed %d reports:\n", t.Seed)
	for _, c := range run.Covers {
		fmt.Fprintf(w, "  cover %s %s %s at %.1f s\n", c.FacilityID, c.Phase, c.State, c.At)
	}
	for _, o := range run.Occupations {
		fmt.Fprintf(w, "  zone %s %s %s at %.1f s box %v\n", o.Zone, o.Phase, o.ID, o.At, o.Box)
	}
}

// parseSeeds reads "A-B" or "a,b,c".
func parseSeeds(s string) ([]int64, error) {
	if a, b, ok := strings.Cut(s, "-"); ok && a != "" {
		lo, err1 := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
		hi, err2 := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
		if err1 != nil || err2 != nil || hi < lo {
			return nil, fmt.Errorf("%q is not a range A-B with A <= B", s)
		}
		if hi-lo >= 10000 {
			return nil, fmt.Errorf("%q: more than 10000 seeds", s)
		}
		var out []int64
		for v := lo; v <= hi; v++ {
			out = append(out, v)
		}
		return out, nil
	}
	var out []int64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a seed (want A-B or a,b,c)", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// sceneResult is the JSON line of one eval scenes run, as far as runs over
// different seeds can be added up.
type sceneResult struct {
	Seeds         []int64   `json:"seeds"`
	Hours         float64   `json:"camera_hours"`
	CoverEpisodes int       `json:"cover_episodes"`
	CoverFound    *int      `json:"cover_found"`
	CoverFalse    int       `json:"cover_false_reports"`
	CoverDup      int       `json:"cover_duplicate_reports"`
	DarkEpisodes  int       `json:"dark_cover_episodes"`
	DarkFound     int       `json:"dark_cover_episodes_found"`
	OccEpisodes   int       `json:"occupancy_episodes"`
	OccReports    int       `json:"occupancy_reports"`
	OccFound      *int      `json:"occupancy_found"`
	OccCorrect    *int      `json:"occupancy_correct"`
	CoverLat      []float64 `json:"cover_latencies_s"`
	OccLat        []float64 `json:"occupancy_latencies_s"`
	Wall          float64   `json:"wall_s"`
}

// combineScenes adds up the results of eval scenes runs (files whose last
// line is the --json object) over disjoint seeds, as one run over all of
// them would have scored them.
func combineScenes(files []string, stdout io.Writer) error {
	if len(files) == 0 {
		return fmt.Errorf("eval scenes --combine: name the result files")
	}
	var total scenes.Score
	seen := map[int64]string{}
	wall := 0.0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("eval scenes --combine: %w", err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		var r sceneResult
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
			return fmt.Errorf("eval scenes --combine: %s: last line: %w", f, err)
		}
		if r.CoverFound == nil || r.OccFound == nil || r.OccCorrect == nil {
			return fmt.Errorf("eval scenes --combine: %s has no found counts (made by an older gridwatch-edge)", f)
		}
		for _, s := range r.Seeds {
			if g, ok := seen[s]; ok {
				return fmt.Errorf("eval scenes --combine: seed %d is in both %s and %s", s, g, f)
			}
			seen[s] = f
		}
		total.Add(scenes.Score{Seeds: r.Seeds, Hours: r.Hours, CoverEpisodes: r.CoverEpisodes, CoverFound: *r.CoverFound,
			DarkEpisodes: r.DarkEpisodes, DarkFound: r.DarkFound, CoverFalse: r.CoverFalse, CoverDuplicate: r.CoverDup,
			OccEpisodes: r.OccEpisodes, OccFound: *r.OccFound, OccReports: r.OccReports, OccCorrect: *r.OccCorrect,
			CoverLatencies: r.CoverLat, OccLatencies: r.OccLat})
		wall += r.Wall
	}
	lat := total.Latencies()
	fmt.Fprintf(stdout, "%d runs, %d seeds, %.2f camera-hours\n", len(files), len(total.Seeds), total.Hours)
	fmt.Fprintf(stdout, "cover recall             %.3f (%d/%d; dark: %d, found %d)\n", total.CoverRecall(), total.CoverFound, total.CoverEpisodes, total.DarkEpisodes, total.DarkFound)
	fmt.Fprintf(stdout, "false cover reports      %d = %.2f per camera-day (duplicates %d)\n", total.CoverFalse, total.FalsePerCameraDay(), total.CoverDuplicate)
	fmt.Fprintf(stdout, "occupation               precision %.3f, recall %.3f, F1 %.3f (%d truth episodes, %d reported)\n",
		total.OccPrecision(), total.OccRecall(), total.OccF1(), total.OccEpisodes, total.OccReports)
	fmt.Fprintf(stdout, "latency                  p50 %.1f s, p95 %.1f s\n", scenes.Quantile(lat, 0.5), scenes.Quantile(lat, 0.95))
	slices.Sort(total.Seeds)
	return json.NewEncoder(stdout).Encode(sceneJSON(total, total.Seeds, wall))
}

// sceneJSON is the --json line of eval scenes and of --combine; it carries
// every count and latency, so combined results can be combined again. wall_s
// is summed over the runs when combined.
func sceneJSON(total scenes.Score, seeds []int64, wall float64) map[string]any {
	lat := total.Latencies()
	return map[string]any{
		"benchmark":                          "scenes",
		"seeds":                              seeds,
		"camera_hours":                       total.Hours,
		"cover_recall":                       total.CoverRecall(),
		"cover_false_reports_per_camera_day": total.FalsePerCameraDay(),
		"occupancy_precision":                total.OccPrecision(),
		"occupancy_recall":                   total.OccRecall(),
		"occupancy_f1":                       total.OccF1(),
		"latency_p50_s":                      jsonNum(scenes.Quantile(lat, 0.5)),
		"latency_p95_s":                      jsonNum(scenes.Quantile(lat, 0.95)),
		"cover_latency_p50_s":                jsonNum(scenes.Quantile(total.CoverLatencies, 0.5)),
		"occupancy_latency_p50_s":            jsonNum(scenes.Quantile(total.OccLatencies, 0.5)),
		"cover_episodes":                     total.CoverEpisodes,
		"cover_found":                        total.CoverFound,
		"occupancy_found":                    total.OccFound,
		"occupancy_correct":                  total.OccCorrect,
		"cover_latencies_s":                  total.CoverLatencies,
		"occupancy_latencies_s":              total.OccLatencies,
		"cover_false_reports":                total.CoverFalse,
		"cover_duplicate_reports":            total.CoverDuplicate,
		"dark_cover_episodes":                total.DarkEpisodes,
		"dark_cover_episodes_found":          total.DarkFound,
		"occupancy_episodes":                 total.OccEpisodes,
		"occupancy_reports":                  total.OccReports,
		"wall_s":                             wall,
	}
}
