package calendar

import (
	"strings"
	"testing"
	"time"
)

func TestAdd(t *testing.T) {
	c := Default()
	bj := c.Location()
	at := func(s string) time.Time {
		t, err := time.ParseInLocation("2006-01-02 15:04", s, bj)
		if err != nil {
			panic(err)
		}
		return t
	}
	tests := []struct {
		name  string
		from  string
		hours float64
		want  string
	}{
		{"within a day", "2026-11-27 10:00", 4, "2026-11-27 14:00"},
		{"over the evening", "2026-11-26 15:00", 4, "2026-11-27 11:00"},
		{"Friday afternoon to Monday", "2026-11-27 15:00", 4, "2026-11-30 11:00"},
		{"filed at night starts next morning", "2026-11-26 22:00", 4, "2026-11-27 13:00"},
		{"National Day week is skipped", "2026-09-30 16:00", 2, "2026-10-08 10:00"},
		{"make-up Saturday counts", "2026-10-09 16:00", 2, "2026-10-10 10:00"},
		{"20 working days end on the 20th working day's close", "2026-11-02 09:00", 160, "2026-11-27 17:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.Add(at(tt.from), time.Duration(tt.hours*float64(time.Hour)))
			want := at(tt.want)
			if !got.Equal(want) {
				t.Fatalf("got %v, want %v", got.In(bj), want)
			}
			if back := c.Between(at(tt.from), got); back != time.Duration(tt.hours*float64(time.Hour)) {
				t.Fatalf("Between = %v, want %v h", back, tt.hours)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := map[string]string{
		"time_zone: Mars/Base\nday: \"09:00-17:00\"\n":                                           "time_zone",
		"time_zone: UTC\nday: \"9 to 5\"\n":                                                      "day",
		"time_zone: UTC\nday: \"17:00-09:00\"\n":                                                 "day",
		"time_zone: UTC\nday: \"09:00-17:00\"\nholidays: [2026-13-01]\n":                         "holidays[0]",
		"time_zone: UTC\nday: \"09:00-17:00\"\nholidays: [2026-10-10]\nworkdays: [2026-10-10]\n": "also a holiday",
		"time_zone: UTC\nday: \"09:00-17:00\"\nlunch: 1h\n":                                      "field lunch not found",
	}
	for in, want := range tests {
		if _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want error containing %q", in, err, want)
		}
	}
}
