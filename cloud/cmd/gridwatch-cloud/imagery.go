package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gridwatch/gridwatch/cloud/imagery"
	"github.com/gridwatch/gridwatch/cloud/imagery/change"
)

func init() { commands["imagery"] = imageryCmd }

const imageryUsage = `usage:
  gridwatch-cloud imagery eval    --pairs DIR [--model FILE] [--json] [--record NAME] [--out DIR]
  gridwatch-cloud imagery train   --pairs DIR[,DIR...] --out FILE [--rounds N] [--depth N] [--samples N]
                                  [--scales 1,3,7,15,31] [--exclude NAMES] [--feature-set 0|1] [--default]
  gridwatch-cloud imagery compare --before X --after Y [--area GEOJSON] [--job DIR] [--out changes.geojson]
                                  [--cloud URL --token TOKEN [--category 0101] [--file-min-score S] [--file-min-area-m2 A]]
                                  [--zoom N] [--scheme auto|xyz|tms] [--crs auto|EPSG:3857|EPSG:4326]
                                  [--tile 1024] [--min-area-m2 20] [--model FILE] [--workers N]
DIR holds A/ (before), B/ (after) and label/ (255 = changed) with the same file names.
X and Y are both tile pyramids ({z}/{x}/{y}.png|jpg folders or .mbtiles, Web Mercator) or both
georeferenced images on one pixel grid (GeoTIFF in EPSG:3857/4326, or an image with a .pgw/.jgw/.tfw/.wld).
compare is a resumable job: run the same command again to continue after a stop.
The model defaults to models/imagery/catalog.json's default; its sha256 must match the catalog.
`

func imageryCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("imagery: missing subcommand\n%s", imageryUsage)
	}
	switch args[0] {
	case "eval":
		return imageryEval(ctx, args[1:])
	case "train":
		return imageryTrain(ctx, args[1:])
	case "compare":
		return imageryCompare(ctx, args[1:])
	case "-h", "--help", "help":
		fmt.Print(imageryUsage)
		return nil
	}
	return fmt.Errorf("imagery: unknown subcommand %q\n%s", args[0], imageryUsage)
}

func imageryEval(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("imagery eval", flag.ContinueOnError)
	pairs := fs.String("pairs", "", "folder with A/, B/ and label/ (255 = changed), same file names")
	modelPath := fs.String("model", "", "model file listed in its folder's manifest.json (default: the manifest's default in models/imagery)")
	asJSON := fs.Bool("json", false, "print one JSON object with the pooled scores as the last line")
	record := fs.String("record", "", "store the scores in the model's manifest entry under this name")
	outDir := fs.String("out", "", "write each pair's predicted mask NAME.png and probability map NAME.prob.png here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pairs == "" {
		return fmt.Errorf("imagery eval: --pairs is required")
	}
	m, entry, err := imagery.LoadModel(*modelPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "imagery eval: model %s v%s (sha256 %.12s…, trained on %s)\n", m.Name, m.Version, entry.SHA256, entry.TrainingData)
	names, err := imagery.PairNames(*pairs, true)
	if err != nil {
		return err
	}
	var seen []string
	for _, n := range names {
		if slices.Contains(m.TrainedOn, n) {
			seen = append(seen, n)
		}
	}
	if len(seen) > 0 {
		fmt.Fprintf(os.Stderr, "imagery eval: WARNING: %d of %d pairs have names the model was trained on (e.g. %s): these scores are not held-out\n", len(seen), len(names), seen[0])
	}
	start := time.Now()
	last := time.Now()
	var running change.Confusion
	res, err := imagery.Eval(ctx, m, *pairs, imagery.EvalOptions{Dir: *outDir}, func(done, total int, r imagery.PairResult) {
		running.Merge(r.Conf)
		if time.Since(last) > 2*time.Second || done == total || done == 1 {
			last = time.Now()
			fmt.Fprintf(os.Stderr, "imagery eval: %d/%d pairs, %.1fs, pooled F1 so far %.3f\n", done, total, time.Since(start).Seconds(), running.F1())
		}
	})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pair\tchanged%\tpredicted%\tprecision\trecall\tF1\tIoU\tshift px (peak)\tms\t")
	row := func(name string, c change.Confusion, shift string, ms float64) {
		n := float64(c.TP + c.FP + c.FN + c.TN)
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.3f\t%.3f\t%.3f\t%.3f\t%s\t%.0f\t\n", name,
			100*float64(c.TP+c.FN)/n, 100*float64(c.TP+c.FP)/n, c.Precision(), c.Recall(), c.F1(), c.IoU(), shift, ms)
	}
	for _, r := range res.Pairs {
		sh := fmt.Sprintf("%+.1f,%+.1f r%.2f", r.Shift.DX, r.Shift.DY, r.Shift.Response)
		if r.Shift.Applied {
			sh += "*"
		}
		row(r.Name, r.Conf, sh, r.Millis)
	}
	row("TOTAL (pooled pixels)", res.Total, "", res.Millis)
	tw.Flush()
	fmt.Printf("%d pairs, %.1f ms per megapixel of both dates (%.2f MP/s); CPU %.1f ms per megapixel (all threads)\n",
		len(res.Pairs), res.MsPerMegapixel(), 1000/res.MsPerMegapixel(), res.CPUMsPerMegapixel())
	met := imagery.MetricsOf(res, len(seen) == 0)
	if *record != "" {
		if err := recordMetrics(*modelPath, *record, met); err != nil {
			return err
		}
	}
	if *asJSON {
		out, _ := json.Marshal(map[string]any{"pairs": met.Pairs, "precision": met.Precision, "recall": met.Recall,
			"f1": met.F1, "iou": met.IoU, "ms_per_megapixel": met.MsPerMegapixel})
		fmt.Println(string(out))
	}
	return nil
}

func recordMetrics(modelPath, name string, met imagery.Metrics) error {
	if modelPath == "" {
		dir, err := imagery.FindModelDir()
		if err != nil {
			return err
		}
		man, err := imagery.ReadManifest(dir)
		if err != nil {
			return err
		}
		modelPath = filepath.Join(dir, man.Default)
	}
	dir, file := filepath.Split(modelPath)
	man, err := imagery.ReadManifest(dir)
	if err != nil {
		return err
	}
	e := man.Entry(file)
	if e == nil {
		return fmt.Errorf("record: %s not in manifest", file)
	}
	if e.Metrics == nil {
		e.Metrics = map[string]imagery.Metrics{}
	}
	e.Metrics[name] = met
	return man.Write(dir)
}

func imageryTrain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("imagery train", flag.ContinueOnError)
	pairs := fs.String("pairs", "", "folder with A/, B/ and label/ to learn from")
	out := fs.String("out", "", "model file to write; its folder's manifest.json gets the sha256 and provenance")
	rounds := fs.Int("rounds", 0, "boosting rounds (default: the recipe's)")
	depth := fs.Int("depth", 0, "tree depth (default: the recipe's)")
	samples := fs.Int("samples", 0, "pixels sampled per pair (default: the recipe's)")
	scales := fs.String("scales", "", "comma-separated feature window radii (default: the recipe's)")
	setDefault := fs.Bool("default", false, "make this the manifest's default model")
	exclude := fs.String("exclude", "", "comma-separated feature names (without @rN) the trees may not use")
	augment := fs.String("augment-scales", "", "also learn from every pair at these scales: 0.5 (half resolution) and/or 2 (double)")
	featureSet := fs.Int("feature-set", 0, "0: colour/texture statistics; 1: also gradient structure (gcorr, glogratio)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pairs == "" || *out == "" {
		return fmt.Errorf("imagery train: --pairs and --out are required")
	}
	cfg := change.DefaultTrainConfig()
	if *rounds > 0 {
		cfg.Params.Rounds = *rounds
	}
	if *depth > 0 {
		cfg.Params.Depth = *depth
	}
	if *samples > 0 {
		cfg.SamplesPerPair = *samples
	}
	if *scales != "" {
		cfg.Scales = nil
		for _, f := range strings.Split(*scales, ",") {
			r, err := strconv.Atoi(f)
			if err != nil || r < 0 {
				return fmt.Errorf("imagery train: --scales: %q is not a radius", f)
			}
			cfg.Scales = append(cfg.Scales, r)
		}
	}
	cfg.FeatureSet = *featureSet
	if *exclude != "" {
		cfg.Params.Exclude = strings.Split(*exclude, ",")
	}
	var dirs []string
	var all []change.Pair
	for _, d := range strings.Split(*pairs, ",") {
		p, err := imagery.LoadTrainingPairs(d)
		if err != nil {
			return err
		}
		for _, f := range strings.Split(*augment, ",") {
			var extra []change.Pair
			for _, q := range p {
				switch strings.TrimSpace(f) {
				case "":
				case "0.5":
					extra = append(extra, q.Halve())
				case "2":
					extra = append(extra, q.Double())
				default:
					return fmt.Errorf("imagery train: --augment-scales: %q is not 0.5 or 2", f)
				}
			}
			all = append(all, extra...)
		}
		all = append(all, p...)
		dirs = append(dirs, filepath.Base(filepath.Clean(d)))
	}
	start := time.Now()
	logf := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "imagery train: %5.1fs "+format+"\n", append([]any{time.Since(start).Seconds()}, a...)...)
	}
	cfg.Name = strings.TrimSuffix(filepath.Base(*out), filepath.Ext(*out))
	m, err := change.TrainModel(all, cfg, logf)
	if err != nil {
		return err
	}
	sum, err := m.Save(*out)
	if err != nil {
		return err
	}
	e := imagery.ManifestEntry{Name: m.Name, Version: m.Version, SHA256: sum,
		TrainingData: strings.Join(dirs, "+"), TrainedOn: m.TrainedOn, OutOfFold: m.OutOfFold,
		TrainCommand: "gridwatch-cloud imagery " + strings.Join(append([]string{"train"}, args...), " ")}
	if err := imagery.Record(*out, e, *setDefault); err != nil {
		return err
	}
	logf("wrote %s (sha256 %s)", *out, sum)
	return nil
}

func imageryCompare(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("imagery compare", flag.ContinueOnError)
	var spec imagery.JobSpec
	fs.StringVar(&spec.Before, "before", "", "before: tile folder ({z}/{x}/{y}.png|jpg), MBTiles file, GeoTIFF, or image with a world file")
	fs.StringVar(&spec.After, "after", "", "after: the same kind as --before")
	fs.StringVar(&spec.Area, "area", "", "GeoJSON (Multi)Polygons in WGS84: compare only inside them")
	fs.IntVar(&spec.Zoom, "zoom", 0, "tile pyramids: zoom level (default: the highest both dates have)")
	fs.StringVar(&spec.Scheme, "scheme", "auto", "tile folders: xyz, tms, or auto (tms when gdal2tiles' tilemapresource.xml is there)")
	fs.StringVar(&spec.CRS, "crs", "auto", "world files: EPSG:3857, EPSG:4326 or auto")
	fs.IntVar(&spec.Tile, "tile", 0, "georeferenced images: unit side in pixels (default 1024)")
	fs.Float64Var(&spec.MinAreaM2, "min-area-m2", 20, "drop changes smaller than this on the ground")
	fs.StringVar(&spec.Model, "model", "", "model file (default: the catalog's default in models/imagery)")
	jobDir := fs.String("job", "", "job directory (default .gridwatch-jobs/ID, ID from the options: the same command resumes)")
	out := fs.String("out", "changes.geojson", "GeoJSON output (WGS84 polygons with area_m2, score and crops)")
	workers := fs.Int("workers", 0, "units processed at once (default GOMAXPROCS)")
	cloudURL := fs.String("cloud", "", "file the changes as cases in this running cloud (http://HOST:PORT) when the job finishes")
	token := fs.String("token", os.Getenv("GRIDWATCH_TOKEN"), "admin token for --cloud (default $GRIDWATCH_TOKEN)")
	fs.StringVar(&spec.Category, "category", "", "event code the changes are filed under (default 0101, illegal construction)")
	var file imagery.FileOptions
	fs.Float64Var(&file.MinScore, "file-min-score", 0, "with --cloud: file only changes scoring at least this (0-1); the rest stay in the GeoJSON")
	fs.Float64Var(&file.MinAreaM2, "file-min-area-m2", 0, "with --cloud: file only changes at least this large")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("imagery compare: unexpected argument %q", fs.Arg(0))
	}
	if spec.Before == "" || spec.After == "" {
		return fmt.Errorf("imagery compare: --before and --after are required")
	}
	if file.MinScore < 0 || file.MinScore > 1 {
		return fmt.Errorf("imagery compare: --file-min-score %v: want 0-1", file.MinScore)
	}
	if file.MinAreaM2 < 0 {
		return fmt.Errorf("imagery compare: --file-min-area-m2 %v is negative", file.MinAreaM2)
	}
	var cloud *imagery.Cloud
	if *cloudURL != "" {
		var err error
		if cloud, err = imagery.NewCloud(*cloudURL, *token); err != nil {
			return fmt.Errorf("imagery compare: %w", err)
		}
		// Before the long part: is the cloud there, and does it take the token?
		cat := spec.Category
		if cat == "" {
			cat = imagery.DefaultCategory
		}
		if err := cloud.Check(ctx, cat); err != nil {
			return fmt.Errorf("imagery compare: %w", err)
		}
	} else if file != (imagery.FileOptions{}) {
		return fmt.Errorf("imagery compare: --file-min-score and --file-min-area-m2 need --cloud")
	}
	if spec.Scheme == "auto" {
		spec.Scheme = ""
	}
	if spec.CRS == "auto" {
		spec.CRS = ""
	}
	for flagName, p := range map[string]string{"--before": spec.Before, "--after": spec.After, "--area": spec.Area} {
		if _, err := os.Stat(p); p != "" && err != nil {
			return fmt.Errorf("imagery compare: %s: %w", flagName, err)
		}
	}
	id, err := imagery.SpecID(spec)
	if err != nil {
		return fmt.Errorf("imagery compare: %w", err)
	}
	if *jobDir == "" {
		*jobDir = filepath.Join(".gridwatch-jobs", id)
	}
	m, entry, err := imagery.LoadModel(spec.Model)
	if err != nil {
		return err
	}
	j, err := imagery.OpenJob(*jobDir, &spec)
	if err != nil {
		return fmt.Errorf("imagery compare: %w", err)
	}
	fmt.Fprintf(os.Stderr, "imagery compare: job %s in %s, model %s v%s (sha256 %.12s…)\n", j.State.ID, *jobDir, m.Name, m.Version, entry.SHA256)
	tty := false
	if st, err := os.Stderr.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
		tty = true
	}
	var last time.Time
	sum, err := j.Run(ctx, m, imagery.RunOptions{Workers: *workers, Progress: func(p imagery.Progress) {
		if time.Since(last) < time.Second && p.Done < p.Total {
			return
		}
		last = time.Now()
		fmt.Fprint(os.Stderr, progressLine(p, tty))
	}})
	if tty {
		fmt.Fprintln(os.Stderr)
	}
	if err != nil {
		return err
	}
	if *out != "" {
		data, err := os.ReadFile(sum.GeoJSON)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, data, 0o644); err != nil {
			return fmt.Errorf("imagery compare: %w", err)
		}
	}
	fmt.Printf("job %s: %d units (%d done by an earlier run), %d changes, %.0f m² in total; written to %s (crops in %s/crops)\n",
		sum.JobID, sum.Units, sum.Resumed, sum.Changes, sum.AreaM2, *out, *jobDir)
	if sum.MP > 0 {
		fmt.Printf("this run: %.1f MP of both dates in %.2fs: %.2f MP/s, %.1f ms per megapixel; CPU %.1f ms per megapixel\n",
			sum.MP, sum.Seconds, sum.MP/sum.Seconds, sum.MsPerMP, sum.CPUMsPerMP)
	}
	if cloud == nil {
		fmt.Printf("no cases filed (give --cloud URL --token TOKEN to file the changes as cases; running the same command again sends them without redoing the job)\n")
		return nil
	}
	fs2, err := imagery.FileChanges(ctx, j, cloud, cloud, file)
	if err != nil {
		return fmt.Errorf("imagery compare: filing in %s stopped after %d changes (run the same command again to continue; nothing is filed twice): %w",
			*cloudURL, fs2.Filed+fs2.Duplicate+fs2.Skipped, err)
	}
	fmt.Printf("filed in %s as device %s: %d new cases, %d joined an open case nearby, %d filed before, %d below the --file-min limits\n",
		*cloudURL, j.DeviceID(), fs2.Created, fs2.Joined, fs2.Duplicate, fs2.Skipped)
	return nil
}

// progressLine draws a bar on a terminal (redrawn in place) and plain
// periodic lines in logs.
func progressLine(p imagery.Progress, tty bool) string {
	frac := 0.0
	if p.Total > 0 {
		frac = float64(p.Done) / float64(p.Total)
	}
	const width = 30
	bar := strings.Repeat("#", int(frac*width)) + strings.Repeat(".", width-int(frac*width))
	eta := "?"
	if n := p.Done - p.Resumed; n > 0 {
		eta = (time.Duration(float64(p.Elapsed) / float64(n) * float64(p.Total-p.Done))).Round(time.Second).String()
	}
	rate := 0.0
	if s := p.Elapsed.Seconds(); s > 0 {
		rate = p.MP / s
	}
	line := fmt.Sprintf("[%s] %3.0f%% %d/%d units, %d changes, %.1f MP/s, %s left", bar, 100*frac, p.Done, p.Total, p.Changes, rate, eta)
	if tty {
		return "\r" + line + "   "
	}
	return "imagery compare: " + line + "\n"
}
