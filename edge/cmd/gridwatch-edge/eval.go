package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// evals holds the `gridwatch-edge eval NAME` benchmarks; each lives in its
// own eval_NAME.go and registers itself in init. Each prints a readable table
// and, with --json, one JSON object as its last line.
var evals = map[string]func(ctx context.Context, args []string) error{}

func evalCmd(ctx context.Context, args []string) error {
	names := make([]string, 0, len(evals))
	for n := range evals {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(args) == 0 {
		return fmt.Errorf("eval: name a benchmark: %s", strings.Join(names, ", "))
	}
	f, ok := evals[args[0]]
	if !ok {
		return fmt.Errorf("eval: unknown benchmark %q (have: %s)", args[0], strings.Join(names, ", "))
	}
	return f(ctx, args[1:])
}
