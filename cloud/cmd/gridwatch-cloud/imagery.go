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
	"github.com/gridwatch/gridwatch/cloud/imagery/georef"
)

func init() { commands["imagery"] = imageryCmd }

const imageryUsage = `usage:
  gridwatch-cloud imagery eval    --pairs DIR [--model FILE] [--json] [--record NAME] [--out DIR]
  gridwatch-cloud imagery train   --pairs DIR[,DIR...] --out FILE [--rounds N] [--depth N] [--samples N]
                                  [--scales 1,3,7,15,31] [--exclude NAMES] [--default]
  gridwatch-cloud imagery compare --before IMG --after IMG [--out changes.geojson] [--model FILE]
                                  [--crs auto|EPSG:3857|EPSG:4326] [--tile 768] [--min-area-m2 20]
DIR holds A/ (before), B/ (after) and label/ (255 = changed) with the same file names.
IMG has a world file beside it (.pgw/.jgw/.tfw/.wld); both dates on one pixel grid.
The model defaults to models/imagery/manifest.json's default; its sha256 must match the manifest.
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
	dir, file := filepath.Split(*out)
	man, err := imagery.ReadManifest(dir)
	if err != nil {
		return err
	}
	man.Upsert(imagery.ManifestEntry{File: file, Name: m.Name, Version: m.Version, SHA256: sum,
		TrainingData: strings.Join(dirs, "+"), TrainedOn: m.TrainedOn, OutOfFold: m.OutOfFold,
		TrainCommand: "gridwatch-cloud imagery " + strings.Join(append([]string{"train"}, args...), " ")})
	if *setDefault || man.Default == "" {
		man.Default = file
	}
	if err := man.Write(dir); err != nil {
		return err
	}
	logf("wrote %s (sha256 %s)", *out, sum)
	return nil
}

func imageryCompare(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("imagery compare", flag.ContinueOnError)
	beforePath := fs.String("before", "", "before image with a world file beside it")
	afterPath := fs.String("after", "", "after image on the same pixel grid, with a world file")
	out := fs.String("out", "changes.geojson", "GeoJSON output (WGS84 polygons with area_m2 and score)")
	modelPath := fs.String("model", "", "model file (default: the manifest's default in models/imagery)")
	crsFlag := fs.String("crs", "auto", "CRS of the world files: EPSG:3857, EPSG:4326 or auto")
	tile := fs.Int("tile", 768, "tile side in pixels")
	minArea := fs.Float64("min-area-m2", 20, "drop changes smaller than this on the ground")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *beforePath == "" || *afterPath == "" {
		return fmt.Errorf("imagery compare: --before and --after are required")
	}
	crs, err := georef.ParseCRS(*crsFlag)
	if err != nil {
		return fmt.Errorf("imagery compare: --crs: %w", err)
	}
	m, entry, err := imagery.LoadModel(*modelPath)
	if err != nil {
		return err
	}
	wfB, _, err := georef.WorldFileFor(*beforePath)
	if err != nil {
		return err
	}
	wfA, _, err := georef.WorldFileFor(*afterPath)
	if err != nil {
		return err
	}
	if wfA != wfB {
		return fmt.Errorf("imagery compare: the world files differ (%+v vs %+v): resample both dates onto one grid first (e.g. gdalwarp -tr/-te)", wfB, wfA)
	}
	before, err := imagery.ReadMat(*beforePath)
	if err != nil {
		return err
	}
	defer before.Close()
	after, err := imagery.ReadMat(*afterPath)
	if err != nil {
		return err
	}
	defer after.Close()
	g, err := georef.NewGrid(wfB, crs, before.Cols(), before.Rows())
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "imagery compare: %dx%d px, %s, model %s v%s (sha256 %.12s…)\n", g.W, g.H, g.CRS, m.Name, m.Version, entry.SHA256)
	start := time.Now()
	last := time.Time{}
	changes, st, err := imagery.Compare(ctx, m, before, after, g, imagery.CompareOptions{Tile: *tile, MinAreaM2: *minArea,
		Progress: func(done, total int) {
			if time.Since(last) > time.Second || done == total {
				last = time.Now()
				el := time.Since(start).Seconds()
				fmt.Fprintf(os.Stderr, "imagery compare: tile %d/%d (%.0f%%), %.1fs elapsed, ~%.0fs left\n",
					done, total, 100*float64(done)/float64(total), el, el/float64(done)*float64(total-done))
			}
		}})
	if err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return fmt.Errorf("imagery compare: %w", err)
	}
	if err := georef.WriteGeoJSON(f, changes); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	var total float64
	for _, c := range changes {
		total += c.AreaM2
	}
	mp := float64(st.Pixels) / 1e6
	fmt.Printf("%d changes, %.0f m² in total, written to %s\n%d tiles, %.1f MP of both dates in %.2fs: %.2f MP/s, %.1f ms per megapixel; CPU %.1f ms per megapixel\n",
		len(changes), total, *out, st.Tiles, mp, st.Duration.Seconds(), mp/st.Duration.Seconds(), st.Duration.Seconds()*1000/mp, st.CPU.Seconds()*1000/mp)
	return nil
}
