// Package calendar counts working time: the hours of a working day, weekends,
// public holidays and the make-up working days (调休) that move them. Case
// time limits are counted in working hours for ordinary categories and in
// natural hours for urgent ones; this package does the former.
package calendar

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"sort"
	"time"

	"gopkg.in/yaml.v3"
)

// Calendar is a working-time calendar in one time zone.
type Calendar struct {
	Name     string
	loc      *time.Location
	start    time.Duration // working day start, from midnight
	end      time.Duration // working day end
	holidays map[string]bool
	workdays map[string]bool // weekend days that are working days
}

type file struct {
	Name     string   `yaml:"name"`
	TimeZone string   `yaml:"time_zone"`
	Day      string   `yaml:"day"` // "09:00-17:00"
	Holidays []string `yaml:"holidays"`
	Workdays []string `yaml:"workdays"`
}

//go:embed *.yaml
var builtin embed.FS

// Default is the built-in Beijing calendar.
func Default() *Calendar {
	b, err := builtin.ReadFile("beijing.yaml")
	if err != nil {
		panic(err)
	}
	c, err := Parse(b)
	if err != nil {
		panic(fmt.Sprintf("built-in calendar: %v", err))
	}
	return c
}

// Load reads a calendar file.
func Load(path string) (*Calendar, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse reads a calendar strictly.
func Parse(b []byte) (*Calendar, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	loc, err := time.LoadLocation(f.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("time_zone: %w", err)
	}
	var sh, sm, eh, em int
	if _, err := fmt.Sscanf(f.Day, "%d:%d-%d:%d", &sh, &sm, &eh, &em); err != nil {
		return nil, fmt.Errorf("day: %q is not HH:MM-HH:MM", f.Day)
	}
	c := &Calendar{Name: f.Name, loc: loc,
		start:    time.Duration(sh)*time.Hour + time.Duration(sm)*time.Minute,
		end:      time.Duration(eh)*time.Hour + time.Duration(em)*time.Minute,
		holidays: map[string]bool{}, workdays: map[string]bool{}}
	if c.start < 0 || c.end > 24*time.Hour || c.end <= c.start {
		return nil, fmt.Errorf("day: %q must start before it ends, within 00:00-24:00", f.Day)
	}
	for i, d := range f.Holidays {
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			return nil, fmt.Errorf("holidays[%d]: %q is not YYYY-MM-DD", i, d)
		}
		c.holidays[d] = true
	}
	for i, d := range f.Workdays {
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			return nil, fmt.Errorf("workdays[%d]: %q is not YYYY-MM-DD", i, d)
		}
		if c.holidays[d] {
			return nil, fmt.Errorf("workdays[%d]: %s is also a holiday", i, d)
		}
		c.workdays[d] = true
	}
	return c, nil
}

// Location is the calendar's time zone.
func (c *Calendar) Location() *time.Location { return c.loc }

// IsWorkday reports whether the local date of t is a working day.
func (c *Calendar) IsWorkday(t time.Time) bool {
	t = t.In(c.loc)
	d := t.Format(time.DateOnly)
	switch {
	case c.holidays[d]:
		return false
	case c.workdays[d]:
		return true
	default:
		return t.Weekday() != time.Saturday && t.Weekday() != time.Sunday
	}
}

func (c *Calendar) midnight(t time.Time) time.Time {
	y, m, d := t.In(c.loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, c.loc)
}

// Add returns the moment when d of working time has passed after t.
func (c *Calendar) Add(t time.Time, d time.Duration) time.Time {
	day := c.midnight(t)
	for i := 0; i < 3660; i++ { // ten years of days bounds a bad calendar
		if c.IsWorkday(day) {
			open, close := day.Add(c.start), day.Add(c.end)
			from := t
			if from.Before(open) {
				from = open
			}
			if from.Before(close) {
				if left := close.Sub(from); d <= left {
					return from.Add(d)
				} else {
					d -= left
				}
			}
		}
		day = c.midnight(day.Add(36 * time.Hour)) // next day, safe across DST
	}
	return t.Add(d)
}

// Between returns the working time between a and b (0 if b is before a).
func (c *Calendar) Between(a, b time.Time) time.Duration {
	if !b.After(a) {
		return 0
	}
	var total time.Duration
	for day := c.midnight(a); day.Before(b); day = c.midnight(day.Add(36 * time.Hour)) {
		if !c.IsWorkday(day) {
			continue
		}
		open, close := day.Add(c.start), day.Add(c.end)
		from, to := maxTime(a, open), minTime(b, close)
		if to.After(from) {
			total += to.Sub(from)
		}
	}
	return total
}

// Holidays lists the configured holidays, sorted.
func (c *Calendar) Holidays() []string {
	out := make([]string, 0, len(c.holidays))
	for d := range c.holidays {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
