package coverclass

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"image"
	_ "image/jpeg" // the benchmark's photos
	_ "image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ReadLabels reads a labels CSV (image,class,xmin,ymin,xmax,ymax, one box a
// row, pixel coordinates) and returns one Sample per `open` or `closed`
// box, grouped by photo, with the photos decoded from imagesDir. Other
// classes (people, cars) are context and are skipped.
func ReadLabels(csvPath, imagesDir string) ([]Sample, error) {
	f, err := os.Open(csvPath)
	if err != nil {
		return nil, fmt.Errorf("labels: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = 6
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("labels: %s: %w", csvPath, err)
	}
	if want := "image,class,xmin,ymin,xmax,ymax"; strings.Join(head, ",") != want {
		return nil, fmt.Errorf("labels: %s: header %q, want %q", csvPath, strings.Join(head, ","), want)
	}
	type photo struct {
		img image.Image
		id  string
	}
	images := map[string]photo{}
	var out []Sample
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("labels: %s: %w", csvPath, err)
		}
		class := rec[1]
		if class != "open" && class != "closed" {
			continue
		}
		var c [4]int
		for i := range c {
			if c[i], err = strconv.Atoi(rec[2+i]); err != nil {
				return nil, fmt.Errorf("labels: %s:%d: %s: %w", csvPath, line, head[2+i], err)
			}
		}
		ph, ok := images[rec[0]]
		if !ok {
			if ph.img, ph.id, err = decodeFile(filepath.Join(imagesDir, rec[0])); err != nil {
				return nil, fmt.Errorf("labels: %s:%d: %w", csvPath, line, err)
			}
			images[rec[0]] = ph
		}
		box := image.Rect(c[0], c[1], c[2], c[3])
		if box.Empty() || !box.Overlaps(ph.img.Bounds()) {
			return nil, fmt.Errorf("labels: %s:%d: box %v is empty or outside the %v image", csvPath, line, box, ph.img.Bounds())
		}
		out = append(out, Sample{Image: ph.img, Box: box, Open: class == "open", Group: rec[0], Photo: ph.id})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("labels: %s: no open or closed boxes", csvPath)
	}
	return out, nil
}

// PhotoID names a photo by its bytes: the first 16 hex digits of their
// sha256, enough to tell thousands of photos apart and short enough to list
// a training set's in its manifest.
func PhotoID(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

func decodeFile(path string) (image.Image, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return nil, "", fmt.Errorf("decode %s: %w", path, err)
	}
	return img, PhotoID(b), nil
}
