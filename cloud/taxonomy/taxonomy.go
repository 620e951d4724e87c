// Package taxonomy holds the case categories gridwatch files under — part
// (部件) and event (事件) codes — as versioned data: each with its filing and
// closing conditions, who must handle it, whether it is urgent, and its
// handling time limit per area class (A core / B / C). Cities differ, so the
// table is a file, not code; the built-in one is taxonomy.yaml.
package taxonomy

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"regexp"
	"sort"
	"time"

	"gopkg.in/yaml.v3"
)

// Owner rules: who must fix a case of a category.
const (
	OwnerFacility = "facility" // the facility's owner department (covers)
	OwnerStreet   = "street"   // the grid cell's street office
	// OwnerDepartment: one named department handles every case of the
	// category wherever it is (Category.Dept), e.g. the maintenance of the
	// cameras themselves.
	OwnerDepartment = "department"
)

// Clocks: how a time limit is counted.
const (
	ClockWorking = "working" // working hours of the calendar
	ClockNatural = "natural" // wall-clock hours (urgent safety cases)
)

// Category is one code.
type Category struct {
	Code    string `yaml:"code" json:"code"`
	Kind    string `yaml:"kind" json:"kind"` // part or event
	Name    string `yaml:"name" json:"name"`
	NameEN  string `yaml:"name_en" json:"name_en"`
	Filing  string `yaml:"filing" json:"filing"`   // 立案条件
	Closing string `yaml:"closing" json:"closing"` // 结案条件
	Owner   string `yaml:"owner" json:"owner"`
	// Dept is the department (registry id) of owner rule "department".
	Dept   string `yaml:"dept" json:"dept,omitempty"`
	Urgent bool   `yaml:"urgent" json:"urgent"`
	Clock  string `yaml:"clock" json:"clock"`
	// Limits are handling time limits in hours per area class.
	Limits map[string]float64 `yaml:"limits" json:"limits"`
	// Interim is the time limit in hours for the street office's interim
	// action (warning signs) on urgent cases; 0 means no interim task.
	Interim float64 `yaml:"interim" json:"interim,omitempty"`
}

// Limit returns the handling time limit for an area class.
func (c Category) Limit(area string) time.Duration {
	h, ok := c.Limits[area]
	if !ok {
		h = c.Limits["C"]
	}
	return time.Duration(h * float64(time.Hour))
}

// Taxonomy is one version of the table.
type Taxonomy struct {
	Version    string     `yaml:"version" json:"version"`
	Categories []Category `yaml:"categories" json:"categories"`
	byCode     map[string]Category
}

//go:embed taxonomy.yaml
var builtin []byte

// Default is the built-in table.
func Default() *Taxonomy {
	t, err := Parse(builtin)
	if err != nil {
		panic(fmt.Sprintf("built-in taxonomy: %v", err))
	}
	return t
}

// Load reads a table from a file.
func Load(path string) (*Taxonomy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

var codeRE = regexp.MustCompile(`^[0-9]{4}$`)

// Parse reads and validates a table, naming the bad entry and field.
func Parse(b []byte) (*Taxonomy, error) {
	var t Taxonomy
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		return nil, err
	}
	if t.Version == "" {
		return nil, fmt.Errorf("version: required")
	}
	t.byCode = map[string]Category{}
	for i, c := range t.Categories {
		f := fmt.Sprintf("categories[%d] (%s)", i, c.Code)
		switch {
		case !codeRE.MatchString(c.Code):
			return nil, fmt.Errorf("%s.code: want 4 digits", f)
		case c.Kind != "part" && c.Kind != "event":
			return nil, fmt.Errorf("%s.kind: %q is not part or event", f, c.Kind)
		case c.Name == "":
			return nil, fmt.Errorf("%s.name: required", f)
		case c.Owner != OwnerFacility && c.Owner != OwnerStreet && c.Owner != OwnerDepartment:
			return nil, fmt.Errorf("%s.owner: %q is not facility, street or department", f, c.Owner)
		case c.Owner == OwnerDepartment && c.Dept == "":
			return nil, fmt.Errorf("%s.dept: owner department needs the department's id", f)
		case c.Owner != OwnerDepartment && c.Dept != "":
			return nil, fmt.Errorf("%s.dept: only owner department names a department (owner is %s)", f, c.Owner)
		case c.Clock != ClockWorking && c.Clock != ClockNatural:
			return nil, fmt.Errorf("%s.clock: %q is not working or natural", f, c.Clock)
		case c.Limits["C"] <= 0:
			return nil, fmt.Errorf("%s.limits: an hour limit for area class C (the fallback) is required", f)
		case c.Interim < 0:
			return nil, fmt.Errorf("%s.interim: negative", f)
		}
		for area, h := range c.Limits {
			if area != "A" && area != "B" && area != "C" {
				return nil, fmt.Errorf("%s.limits: area class %q is not A, B or C", f, area)
			}
			if h <= 0 {
				return nil, fmt.Errorf("%s.limits.%s: must be > 0 hours", f, area)
			}
		}
		key := c.Kind + ":" + c.Code
		if _, dup := t.byCode[key]; dup {
			return nil, fmt.Errorf("%s: %s code %s is listed twice", f, c.Kind, c.Code)
		}
		t.byCode[key] = c
	}
	return &t, nil
}

// Part returns the part category of a 4-digit part type code.
func (t *Taxonomy) Part(code string) (Category, bool) {
	c, ok := t.byCode["part:"+code]
	return c, ok
}

// Event returns the event category of a 4-digit event code.
func (t *Taxonomy) Event(code string) (Category, bool) {
	c, ok := t.byCode["event:"+code]
	return c, ok
}

// Codes lists every kind:code, sorted.
func (t *Taxonomy) Codes() []string {
	out := make([]string, 0, len(t.byCode))
	for k := range t.byCode {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
