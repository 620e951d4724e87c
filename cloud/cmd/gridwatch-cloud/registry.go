package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gridwatch/gridwatch/cloud/registry"
)

func init() { commands["registry"] = registryCmd }

// registryCmd: `registry check DIR` validates a registry directory
// (departments.csv, streets.csv, grid.geojson, facilities.csv) with the same
// code serve --registry uses; `registry export-demo DIR` writes the built-in
// demo district in that layout, as a starting point for a city's own files;
// `registry diff OLD NEW` says what a re-import would change;
// `registry check DIR --fleet FLEETDIR` also checks the box configs in FLEETDIR
// against it, as serve --fleet does (DIR may be "demo").
func registryCmd(_ context.Context, args []string) error {
	if len(args) == 3 && args[0] == "diff" {
		return registryDiff(os.Stdout, args[1], args[2])
	}
	if len(args) == 4 && args[0] == "check" && args[2] == "--fleet" {
		return registryCheckFleet(os.Stdout, args[1], args[3])
	}
	if len(args) != 2 {
		return errors.New("registry: want `registry check DIR [--fleet FLEETDIR]`, `registry export-demo DIR` or `registry diff OLD NEW`")
	}
	switch args[0] {
	case "check":
		r, err := registry.LoadDir(args[1])
		if err != nil {
			return err
		}
		d, s, c, f := r.Counts()
		fmt.Printf("%s: ok (%d departments, %d streets, %d grid cells, %d facilities), version %s\n",
			args[1], d, s, c, f, r.SHA256()[:12])
		return nil
	case "export-demo":
		if err := registry.Demo().WriteDir(args[1]); err != nil {
			return err
		}
		fmt.Printf("wrote the demo district to %s\n", args[1])
		return nil
	}
	return fmt.Errorf("registry: unknown subcommand %q (check, export-demo, diff)", args[0])
}

// registryCheckFleet validates a registry and a fleet directory against it.
func registryCheckFleet(w io.Writer, regDir, fleetDir string) error {
	r, err := loadRegistry(regDir)
	if err != nil {
		return err
	}
	f, err := registry.LoadFleetDir(fleetDir, r)
	if err != nil {
		return err
	}
	boxes, cams := f.Counts()
	fmt.Fprintf(w, "%s: ok (%d boxes, %d cameras) against registry %s (%s)\n", fleetDir, boxes, cams, r.SHA256()[:12], regDir)
	return nil
}

// loadRegistry reads a registry directory; "demo" is the built-in district.
func loadRegistry(dir string) (*registry.Registry, error) {
	if dir == "demo" {
		return registry.Demo(), nil
	}
	return registry.LoadDir(dir)
}

// diffShown bounds the ids listed per kind of change.
const diffShown = 50

func registryDiff(w io.Writer, oldDir, newDir string) error {
	old, err := loadRegistry(oldDir)
	if err != nil {
		return fmt.Errorf("registry diff: old: %w", err)
	}
	next, err := loadRegistry(newDir)
	if err != nil {
		return fmt.Errorf("registry diff: new: %w", err)
	}
	d := registry.Compare(old, next)
	fmt.Fprintf(w, "registry %s (%s) -> %s (%s)\n", old.SHA256()[:12], oldDir, next.SHA256()[:12], newDir)
	if d.Empty() {
		fmt.Fprintln(w, "no changes")
		return nil
	}
	list := func(sign, what string, ids []string) {
		for i, id := range ids {
			if i == diffShown {
				fmt.Fprintf(w, "  ... and %d more %s\n", len(ids)-diffShown, what)
				break
			}
			fmt.Fprintf(w, "  %s %s %s\n", sign, what, id)
		}
	}
	fmt.Fprintf(w, "departments: %d added, %d removed, %d changed\n", len(d.DepartmentsAdded), len(d.DepartmentsRemoved), len(d.DepartmentsChanged))
	list("+", "department", d.DepartmentsAdded)
	list("-", "department", d.DepartmentsRemoved)
	list("~", "department", d.DepartmentsChanged)
	fmt.Fprintf(w, "streets: %d added, %d removed, %d changed\n", len(d.StreetsAdded), len(d.StreetsRemoved), len(d.StreetsChanged))
	list("+", "street", d.StreetsAdded)
	list("-", "street", d.StreetsRemoved)
	list("~", "street", d.StreetsChanged)
	fmt.Fprintf(w, "grid cells: %d added, %d removed, %d changed (street, community, area class or polygon)\n",
		len(d.CellsAdded), len(d.CellsRemoved), len(d.CellsChanged))
	list("+", "cell", d.CellsAdded)
	list("-", "cell", d.CellsRemoved)
	list("~", "cell", d.CellsChanged)
	fmt.Fprintf(w, "facilities: %d added, %d removed, %d owner changed, %d moved or renamed\n",
		len(d.FacilitiesAdded), len(d.FacilitiesRemoved), len(d.OwnerChanged), len(d.FacilitiesMoved))
	list("+", "facility", d.FacilitiesAdded)
	list("-", "facility", d.FacilitiesRemoved)
	for i, o := range d.OwnerChanged {
		if i == diffShown {
			fmt.Fprintf(w, "  ... and %d more owner changes\n", len(d.OwnerChanged)-diffShown)
			break
		}
		fmt.Fprintf(w, "  owner facility %s: %s -> %s\n", o.Facility, o.From, o.To)
	}
	list("~", "facility", d.FacilitiesMoved)
	return nil
}
