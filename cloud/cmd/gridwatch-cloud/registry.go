package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/gridwatch/gridwatch/cloud/registry"
)

func init() { commands["registry"] = registryCmd }

// registryCmd: `registry check DIR` validates a registry directory
// (departments.csv, streets.csv, grid.geojson, facilities.csv) with the same
// code serve --registry uses; `registry export-demo DIR` writes the built-in
// demo district in that layout, as a starting point for a city's own files.
func registryCmd(_ context.Context, args []string) error {
	if len(args) != 2 {
		return errors.New("registry: want `registry check DIR` or `registry export-demo DIR`")
	}
	switch args[0] {
	case "check":
		r, err := registry.LoadDir(args[1])
		if err != nil {
			return err
		}
		d, s, c, f := r.Counts()
		fmt.Printf("%s: ok (%d departments, %d streets, %d grid cells, %d facilities)\n", args[1], d, s, c, f)
		return nil
	case "export-demo":
		if err := registry.Demo().WriteDir(args[1]); err != nil {
			return err
		}
		fmt.Printf("wrote the demo district to %s\n", args[1])
		return nil
	}
	return fmt.Errorf("registry: unknown subcommand %q (check, export-demo)", args[0])
}
