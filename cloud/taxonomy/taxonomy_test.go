package taxonomy

import (
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	tx := Default()
	c, ok := tx.Part("0105")
	if !ok || c.Owner != OwnerFacility || !c.Urgent || c.Clock != ClockNatural {
		t.Fatalf("power cover: %+v", c)
	}
	if c.Limit("B") != 5*time.Hour || c.Limit("X") != 6*time.Hour {
		t.Fatalf("limits: B %v, unknown class %v", c.Limit("B"), c.Limit("X"))
	}
	if e, ok := tx.Event("0101"); !ok || e.Owner != OwnerStreet || e.Clock != ClockWorking {
		t.Fatalf("illegal construction: %+v", e)
	}
	if _, ok := tx.Part("0101"); !ok {
		t.Fatal("0101 is both a part (water cover) and an event (illegal construction)")
	}
}

func TestParseErrors(t *testing.T) {
	head := "version: x\ncategories:\n"
	tests := map[string]string{
		"categories: []\n": "version",
		head + "  - {code: '12', kind: part, name: n, owner: street, clock: working, limits: {C: 1}}\n":                                                                                           "code",
		head + "  - {code: '1234', kind: thing, name: n, owner: street, clock: working, limits: {C: 1}}\n":                                                                                        "kind",
		head + "  - {code: '1234', kind: part, name: n, owner: mayor, clock: working, limits: {C: 1}}\n":                                                                                          "owner",
		head + "  - {code: '1234', kind: part, name: n, owner: street, clock: lunar, limits: {C: 1}}\n":                                                                                           "clock",
		head + "  - {code: '1234', kind: part, name: n, owner: street, clock: working, limits: {A: 1}}\n":                                                                                         "area class C",
		head + "  - {code: '1234', kind: part, name: n, owner: street, clock: working, limits: {C: 1, D: 2}}\n":                                                                                   "\"D\"",
		head + "  - {code: '1234', kind: part, name: n, owner: street, clock: working, limits: {C: 1}, x: 1}\n":                                                                                   "field x not found",
		head + "  - {code: '1234', kind: part, name: n, owner: street, clock: working, limits: {C: 1}}\n  - {code: '1234', kind: part, name: m, owner: street, clock: working, limits: {C: 1}}\n": "listed twice",
		head + "  - {code: '1234', kind: event, name: n, owner: department, clock: working, limits: {C: 1}}\n":                                                                                    "dept: owner department needs",
		head + "  - {code: '1234', kind: event, name: n, owner: street, dept: d, clock: working, limits: {C: 1}}\n":                                                                               "dept: only owner department",
	}
	for in, want := range tests {
		if _, err := Parse([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want error containing %q for\n%s", err, want, in)
		}
	}
}
