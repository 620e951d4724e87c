package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"strconv"
	"strings"
	"testing"
)

const (
	coversData     = "../../../../shared/data/manhole"
	coversManifest = "../../../models/cover-state/manifest.json"
	// coversMeasuredCV is the cross-validated accuracy measured at release
	// (README, models/cover-state/manifest.json).
	coversMeasuredCV = 0.917
)

// On its own training photos the eval must not headline the optimistic
// figure: it cross-validates by itself and says so.
func TestEvalCoversOnTrainingData(t *testing.T) {
	if _, err := os.Stat(coversData + "/labels.csv"); err != nil {
		t.Skipf("no real photos: %v", err)
	}
	var out, errOut bytes.Buffer
	err := runEvalCovers(context.Background(), []string{
		"--labels", coversData + "/labels.csv", "--images", coversData + "/images",
		"--model", coversManifest, "--json",
	}, &out, &errOut)
	if err != nil {
		t.Fatalf("eval covers: %v\n%s", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var res coversResult
	dec := json.NewDecoder(strings.NewReader(lines[len(lines)-1]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("last line is not the result: %v\n%s", err, out.String())
	}
	t.Logf("%+v", res)
	switch {
	case res.N != 84:
		t.Errorf("n = %d, want 84", res.N)
	case res.NSeenInTraining != 84 || res.Measure != measureCV || res.CVFolds != 5:
		t.Errorf("n_seen_in_training %d, measure %q, cv_folds %d: want the cross-validated headline", res.NSeenInTraining, res.Measure, res.CVFolds)
	case res.Accuracy != res.CVAccuracy || res.Accuracy < coversMeasuredCV-0.03:
		t.Errorf("accuracy %.3f (cv %.3f), measured %.3f at release", res.Accuracy, res.CVAccuracy, coversMeasuredCV)
	case res.ShippedAccuracy < res.CVAccuracy-0.1 || res.OpenRecall == 0 || res.OpenPrecision == 0 || res.MsPerCrop <= 0:
		t.Errorf("implausible result %+v", res)
	}
	for _, want := range []string{"OPTIMISTIC", "cross-validated: 5 folds", "called open", "ms per crop"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// Photos the model was not trained on (here: mirror images of training
// photos, which are new bytes and a new picture) are scored with the
// shipped model; when some photos were seen in training, the headline
// counts only the others.
func TestEvalCoversOnOtherPhotos(t *testing.T) {
	if _, err := os.Stat(coversData + "/labels.csv"); err != nil {
		t.Skipf("no real photos: %v", err)
	}
	raw, err := os.ReadFile(coversData + "/labels.csv")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var seenRows, newRows []string
	done := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n")[1:] {
		f := strings.Split(line, ",")
		if n, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSuffix(f[0], ".jpg"), "mh")); n >= 8 {
			break
		}
		if !done[f[0]] {
			done[f[0]] = true
			b, err := os.ReadFile(coversData + "/images/" + f[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dir+"/"+f[0], b, 0o644); err != nil {
				t.Fatal(err)
			}
			img, err := jpeg.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			mirror(t, img, dir+"/flip-"+f[0]+".png")
		}
		seenRows = append(seenRows, line)
		// Mirror the box too: x → width-x.
		img, _ := os.Open(dir + "/" + f[0])
		cfg, err := jpeg.DecodeConfig(img)
		img.Close()
		if err != nil {
			t.Fatal(err)
		}
		x0, _ := strconv.Atoi(f[2])
		x1, _ := strconv.Atoi(f[4])
		newRows = append(newRows, fmt.Sprintf("flip-%s.png,%s,%d,%s,%d,%s", f[0], f[1], cfg.Width-x1, f[3], cfg.Width-x0, f[5]))
	}
	const head = "image,class,xmin,ymin,xmax,ymax\n"
	for _, tc := range []struct {
		name    string
		rows    []string
		measure string
		n, seen int
	}{
		{"all new", newRows, measureShipped, 11, 0},
		{"some new", append(append([]string{}, seenRows...), newRows...), measureUnseen, 11, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			labels := dir + "/labels-" + strings.ReplaceAll(tc.name, " ", "-") + ".csv"
			if err := os.WriteFile(labels, []byte(head+strings.Join(tc.rows, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			err = runEvalCovers(context.Background(), []string{"--labels", labels, "--images", dir, "--model", coversManifest, "--json"}, &out, &errOut)
			if err != nil {
				t.Fatalf("eval covers: %v\n%s", err, errOut.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			var res coversResult
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", res)
			if res.Measure != tc.measure || res.N != tc.n || res.NSeenInTraining != tc.seen || res.CVFolds != 0 {
				t.Errorf("measure %q n %d seen %d cv %d; want %q, %d, %d, no cross-validation",
					res.Measure, res.N, res.NSeenInTraining, res.CVFolds, tc.measure, tc.n, tc.seen)
			}
			if res.Accuracy < 0.75 {
				t.Errorf("accuracy %.3f on mirrored photos", res.Accuracy)
			}
		})
	}
}

func mirror(t *testing.T, src image.Image, path string) {
	t.Helper()
	b := src.Bounds()
	dst := image.NewRGBA(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			dst.Set(b.Max.X-1-(x-b.Min.X), y, src.At(x, y))
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, dst); err != nil {
		t.Fatal(err)
	}
}

func TestEvalCoversErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no labels", []string{"--labels", "/nonexistent/labels.csv", "--model", coversManifest}, "no such file"},
		{"no model", []string{"--model", "/nonexistent/manifest.json"}, "no such file"},
		{"bad flag", []string{"--frobnicate"}, "frobnicate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := runEvalCovers(context.Background(), tc.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
