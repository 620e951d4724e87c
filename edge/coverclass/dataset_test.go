package coverclass

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadLabels(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "a.png"))
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, image.NewGray(image.Rect(0, 0, 40, 30))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	const head = "image,class,xmin,ymin,xmax,ymax\n"
	for _, tc := range []struct {
		name, csv string
		n         int    // samples wanted
		err       string // or an error mentioning this
	}{
		{"ok", head + "a.png,open,1,2,20,12\na.png,person,0,0,5,5\na.png,closed,10,10,30,20\n", 2, ""},
		{"bad header", "img,class,x0,y0,x1,y1\n", 0, "header"},
		{"bad number", head + "a.png,open,1,two,20,12\n", 0, ":2: ymin"},
		{"box outside", head + "a.png,open,100,100,120,120\n", 0, "outside"},
		{"empty box", head + "a.png,closed,5,5,5,9\n", 0, "empty"},
		{"missing photo", head + "b.png,open,1,2,20,12\n", 0, "b.png"},
		{"only context", head + "a.png,car,1,2,20,12\n", 0, "no open or closed"},
		{"short row", head + "a.png,open,1,2,20\n", 0, "wrong number of fields"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "labels.csv")
			if err := os.WriteFile(path, []byte(tc.csv), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := ReadLabels(path, dir)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ReadLabels: %v, want an error mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s) != tc.n || !s[0].Open || s[1].Open || s[0].Group != "a.png" || s[1].Box != image.Rect(10, 10, 30, 20) {
				t.Errorf("ReadLabels = %+v", s)
			}
		})
	}
}
