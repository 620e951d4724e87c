package ui

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/gridwatch/gridwatch/cloud/registry"
)

// geoData is the registry as the map draws it. The registry answers point questions but does not list
// its records, so the UI takes one snapshot through its only listing interface, WriteDir, on first use.
type geoData struct {
	depts   []registry.Department
	streets []registry.Street
	cells   []cellGeo
	facs    []registry.Facility
	bounds  [4]float64 // west, south, east, north
	// streetsJSON is the cached FeatureCollection of street boundaries and the district outline.
	streetsJSON []byte
}

type cellGeo struct {
	code, street, community, area string
	ring                          [][2]float64 // open ring of [lon, lat]
	box                           [4]float64   // west, south, east, north
}

func (u *UI) geoData() (*geoData, error) {
	u.geoOnce.Do(func() {
		u.geo, u.geoErr = snapshot(u.cfg.Registry)
		if u.geoErr != nil {
			u.cfg.Log.Error("registry snapshot for the map", "err", u.geoErr)
		}
	})
	return u.geo, u.geoErr
}

func snapshot(r *registry.Registry) (*geoData, error) {
	dir, err := os.MkdirTemp("", "gridwatch-ui-registry-")
	if err != nil {
		return nil, fmt.Errorf("registry snapshot: %w", err)
	}
	defer os.RemoveAll(dir)
	if err := r.WriteDir(dir); err != nil {
		return nil, fmt.Errorf("registry snapshot: %w", err)
	}
	g := &geoData{}
	if err := readCSV(filepath.Join(dir, registry.DepartmentsFile), func(f map[string]string) error {
		d := registry.Department{ID: f["id"], Name: f["name"], NameZH: f["name_zh"], Kind: f["kind"]}
		if f["owns"] != "" {
			d.Owns = strings.Split(f["owns"], ";")
		}
		g.depts = append(g.depts, d)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := readCSV(filepath.Join(dir, registry.StreetsFile), func(f map[string]string) error {
		g.streets = append(g.streets, registry.Street{Code: f["code"], Name: f["name"], NameZH: f["name_zh"], OfficeDept: f["office_dept"]})
		return nil
	}); err != nil {
		return nil, err
	}
	if err := readCSV(filepath.Join(dir, registry.FacilitiesFile), func(f map[string]string) error {
		lat, err1 := strconv.ParseFloat(f["lat"], 64)
		lon, err2 := strconv.ParseFloat(f["lon"], 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("facility %s: bad coordinates", f["id"])
		}
		g.facs = append(g.facs, registry.Facility{ID: f["id"], TypeCode: f["type_code"], TypeName: f["type_name"], Lat: lat, Lon: lon, OwnerDept: f["owner_dept"]})
		return nil
	}); err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, registry.GridFile))
	if err != nil {
		return nil, fmt.Errorf("registry snapshot: %w", err)
	}
	var fc struct {
		Features []struct {
			Properties struct {
				Code      string `json:"code"`
				Street    string `json:"street"`
				Community string `json:"community"`
				AreaClass string `json:"area_class"`
			} `json:"properties"`
			Geometry struct {
				Coordinates [][][2]float64 `json:"coordinates"`
			} `json:"geometry"`
		} `json:"features"`
	}
	if err := json.Unmarshal(raw, &fc); err != nil {
		return nil, fmt.Errorf("registry snapshot: grid: %w", err)
	}
	g.bounds = [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	for _, f := range fc.Features {
		if len(f.Geometry.Coordinates) == 0 || len(f.Geometry.Coordinates[0]) < 4 {
			continue
		}
		ring := f.Geometry.Coordinates[0]
		ring = ring[:len(ring)-1] // GeoJSON closes rings; keep them open
		c := cellGeo{code: f.Properties.Code, street: f.Properties.Street, community: f.Properties.Community,
			area: f.Properties.AreaClass, ring: ring, box: ringBox(ring)}
		g.cells = append(g.cells, c)
		g.bounds[0], g.bounds[1] = math.Min(g.bounds[0], c.box[0]), math.Min(g.bounds[1], c.box[1])
		g.bounds[2], g.bounds[3] = math.Max(g.bounds[2], c.box[2]), math.Max(g.bounds[3], c.box[3])
	}
	g.streetsJSON, err = streetBoundaries(g)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// readCSV calls fn with each record keyed by the header's column names.
func readCSV(path string, fn func(map[string]string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("registry snapshot: %w", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	head, err := r.Read()
	if err != nil {
		return fmt.Errorf("registry snapshot: %s: %w", filepath.Base(path), err)
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("registry snapshot: %s: %w", filepath.Base(path), err)
		}
		m := make(map[string]string, len(head))
		for i, h := range head {
			if i < len(rec) {
				m[h] = rec[i]
			}
		}
		if err := fn(m); err != nil {
			return err
		}
	}
}

func ringBox(ring [][2]float64) [4]float64 {
	b := [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	for _, p := range ring {
		b[0], b[1] = math.Min(b[0], p[0]), math.Min(b[1], p[1])
		b[2], b[3] = math.Max(b[2], p[0]), math.Max(b[3], p[1])
	}
	return b
}

func intersects(a, b [4]float64) bool {
	return a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3]
}

type edge struct{ a, b [2]float64 }

func edgeKey(p, q [2]float64) edge {
	if p[0] < q[0] || (p[0] == q[0] && p[1] < q[1]) {
		return edge{p, q}
	}
	return edge{q, p}
}

// streetBoundaries draws each street as the edges of its cells that no other cell of the street shares
// (the cells tile with shared vertices), chained into lines, plus the district outline the same way.
// At district zoom 43 outlines say more than 8,423 cells, at a few hundred kilobytes less.
func streetBoundaries(g *geoData) ([]byte, error) {
	type agg struct {
		edges    map[edge]int
		cells    int
		lat, lon float64
	}
	by := map[string]*agg{}
	all := map[edge]int{}
	for _, c := range g.cells {
		a := by[c.street]
		if a == nil {
			a = &agg{edges: map[edge]int{}}
			by[c.street] = a
		}
		a.cells++
		a.lon += (c.box[0] + c.box[2]) / 2
		a.lat += (c.box[1] + c.box[3]) / 2
		for i := range c.ring {
			k := edgeKey(c.ring[i], c.ring[(i+1)%len(c.ring)])
			a.edges[k]++
			all[k]++
		}
	}
	type feature struct {
		Type       string         `json:"type"`
		Properties map[string]any `json:"properties"`
		Geometry   map[string]any `json:"geometry"`
	}
	var feats []feature
	for _, s := range g.streets {
		a := by[s.Code]
		if a == nil {
			continue
		}
		feats = append(feats, feature{"Feature", map[string]any{
			"kind": "street", "code": s.Code, "name": s.Name, "name_zh": s.NameZH, "office_dept": s.OfficeDept,
			"cells": a.cells, "label": [2]float64{round(a.lon/float64(a.cells), 5), round(a.lat/float64(a.cells), 5)},
		}, map[string]any{"type": "MultiLineString", "coordinates": chain(a.edges)}})
	}
	feats = append(feats, feature{"Feature", map[string]any{"kind": "district", "cells": len(g.cells)},
		map[string]any{"type": "MultiLineString", "coordinates": chain(all)}})
	return json.Marshal(map[string]any{"type": "FeatureCollection", "bounds": g.bounds, "features": feats})
}

// chain joins the edges used once into polylines.
func chain(edges map[edge]int) [][][2]float64 {
	next := map[[2]float64][]edge{}
	var keys []edge
	for e, n := range edges {
		if n == 1 {
			next[e.a] = append(next[e.a], e)
			next[e.b] = append(next[e.b], e)
			keys = append(keys, e)
		}
	}
	sort.Slice(keys, func(i, j int) bool { // deterministic output
		if keys[i].a != keys[j].a {
			return keys[i].a[0] < keys[j].a[0] || (keys[i].a[0] == keys[j].a[0] && keys[i].a[1] < keys[j].a[1])
		}
		return keys[i].b[0] < keys[j].b[0] || (keys[i].b[0] == keys[j].b[0] && keys[i].b[1] < keys[j].b[1])
	})
	used := map[edge]bool{}
	var lines [][][2]float64
	for _, start := range keys {
		if used[start] {
			continue
		}
		used[start] = true
		line := [][2]float64{rp(start.a), rp(start.b)}
		cur := start.b
		for {
			var nx *edge
			for _, e := range next[cur] {
				if !used[e] {
					nx = &e
					break
				}
			}
			if nx == nil {
				break
			}
			used[*nx] = true
			if nx.a == cur {
				cur = nx.b
			} else {
				cur = nx.a
			}
			line = append(line, rp(cur))
		}
		lines = append(lines, line)
	}
	return lines
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

func rp(p [2]float64) [2]float64 { return [2]float64{round(p[0], 5), round(p[1], 5)} }

// simplify is Douglas-Peucker on an open ring; it never returns fewer than 3 points.
func simplify(ring [][2]float64, tol float64) [][2]float64 {
	if tol <= 0 || len(ring) <= 4 {
		return ring
	}
	keep := make([]bool, len(ring))
	keep[0], keep[len(ring)-1] = true, true
	var rec func(i, j int)
	rec = func(i, j int) {
		best, at := 0.0, -1
		for k := i + 1; k < j; k++ {
			if d := segDist(ring[k], ring[i], ring[j]); d > best {
				best, at = d, k
			}
		}
		if at >= 0 && best > tol {
			keep[at] = true
			rec(i, at)
			rec(at, j)
		}
	}
	rec(0, len(ring)-1)
	out := make([][2]float64, 0, len(ring))
	for i, p := range ring {
		if keep[i] {
			out = append(out, p)
		}
	}
	if len(out) < 3 {
		return ring
	}
	return out
}

func segDist(p, a, b [2]float64) float64 {
	dx, dy := b[0]-a[0], b[1]-a[1]
	l2 := dx*dx + dy*dy
	t := 0.0
	if l2 > 0 {
		t = math.Max(0, math.Min(1, ((p[0]-a[0])*dx+(p[1]-a[1])*dy)/l2))
	}
	ex, ey := p[0]-(a[0]+t*dx), p[1]-(a[1]+t*dy)
	return math.Hypot(ex, ey)
}

// parseBBox reads bbox=west,south,east,north.
func parseBBox(s string) ([4]float64, error) {
	var b [4]float64
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return b, fmt.Errorf("bbox: want west,south,east,north")
	}
	for i, p := range parts {
		x, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return b, fmt.Errorf("bbox: %q is not a number", p)
		}
		b[i] = x
	}
	if b[0] > b[2] || b[1] > b[3] {
		return b, fmt.Errorf("bbox: west > east or south > north")
	}
	return b, nil
}

const (
	maxCells      = 4000 // a zoomed-in view holds a few hundred
	maxFacilities = 3000
)

func (u *UI) mapStreets(c *fiber.Ctx) error {
	g, err := u.geoData()
	if err != nil {
		return err
	}
	c.Type("json")
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	return c.Send(g.streetsJSON)
}

// mapCells sends the cells intersecting bbox as GeoJSON, simplified to about a pixel at the view's size
// and rounded to 1 m, at most maxCells of them ("truncated": true says the view needs zooming in).
func (u *UI) mapCells(c *fiber.Ctx) error {
	g, err := u.geoData()
	if err != nil {
		return err
	}
	b, err := parseBBox(c.Query("bbox"))
	if err != nil {
		return fiber.NewError(fiber.StatusBadRequest, err.Error())
	}
	tol := (b[2] - b[0]) / 2000
	var buf bytes.Buffer
	buf.WriteString(`{"type":"FeatureCollection","features":[`)
	n, truncated := 0, false
	for _, cell := range g.cells {
		if !intersects(cell.box, b) {
			continue
		}
		if n == maxCells {
			truncated = true
			break
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		n++
		fmt.Fprintf(&buf, `{"type":"Feature","properties":{"code":%q,"street":%q,"community":%q,"area_class":%q},"geometry":{"type":"Polygon","coordinates":[[`,
			cell.code, cell.street, cell.community, cell.area)
		ring := simplify(cell.ring, tol)
		for i, p := range append(ring[:len(ring):len(ring)], ring[0]) {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.WriteByte('[')
			buf.WriteString(strconv.FormatFloat(round(p[0], 5), 'f', -1, 64))
			buf.WriteByte(',')
			buf.WriteString(strconv.FormatFloat(round(p[1], 5), 'f', -1, 64))
			buf.WriteByte(']')
		}
		buf.WriteString(`]]}}`)
	}
	fmt.Fprintf(&buf, `],"count":%d,"truncated":%t}`, n, truncated)
	c.Type("json")
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	return c.Send(buf.Bytes())
}

// mapFacilities sends the registered facilities in bbox, at most maxFacilities.
func (u *UI) mapFacilities(c *fiber.Ctx) error {
	g, err := u.geoData()
	if err != nil {
		return err
	}
	b, err := parseBBox(c.Query("bbox"))
	if err != nil {
		return fiber.NewError(fiber.StatusBadRequest, err.Error())
	}
	out := []registry.Facility{}
	truncated := false
	for _, f := range g.facs {
		if f.Lon >= b[0] && f.Lon <= b[2] && f.Lat >= b[1] && f.Lat <= b[3] {
			if len(out) == maxFacilities {
				truncated = true
				break
			}
			out = append(out, f)
		}
	}
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	return c.JSON(fiber.Map{"facilities": out, "truncated": truncated})
}

func (u *UI) departments(c *fiber.Ctx) error {
	g, err := u.geoData()
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"departments": g.depts, "streets": g.streets, "categories": u.cfg.Taxonomy.Categories})
}
