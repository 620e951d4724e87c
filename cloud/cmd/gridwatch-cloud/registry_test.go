package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRegistryCommand(t *testing.T) {
	dir := t.TempDir()
	if err := registryCmd(context.Background(), []string{"export-demo", dir}); err != nil {
		t.Fatal(err)
	}
	if err := registryCmd(context.Background(), []string{"check", dir}); err != nil {
		t.Fatalf("the exported demo district does not check: %v", err)
	}
	f, _ := os.OpenFile(filepath.Join(dir, "facilities.csv"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("1101050105999999,0105\n")
	f.Close()
	err := registryCmd(context.Background(), []string{"check", dir})
	if err == nil || !strings.Contains(err.Error(), "facilities.csv:") {
		t.Fatalf("a broken facilities.csv: %v, want an error naming the file and line", err)
	}
	if err := registryCmd(context.Background(), []string{"import", dir}); err == nil {
		t.Fatal("an unknown subcommand must be an error")
	}
}

func TestRegistryDiff(t *testing.T) {
	dir := t.TempDir()
	if err := registryCmd(context.Background(), []string{"export-demo", dir}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := registryDiff(&out, "demo", dir); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "no changes\n") {
		t.Fatalf("the exported demo district differs from the built-in one:\n%s", out.String())
	}
	// Hand the demo power cover to the water company.
	p := filepath.Join(dir, "facilities.csv")
	b, _ := os.ReadFile(p)
	lines := strings.Split(string(b), "\n")
	changed := false
	for i, l := range lines {
		if strings.HasPrefix(l, "1101050105000123,") && strings.HasSuffix(l, ",dept-power") {
			lines[i] = strings.TrimSuffix(l, "dept-power") + "dept-water"
			changed = true
		}
	}
	if !changed {
		t.Fatal("the demo power cover 1101050105000123 is not in facilities.csv")
	}
	os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644)
	out.Reset()
	if err := registryDiff(&out, "demo", dir); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"facilities: 0 added, 0 removed, 1 owner changed, 0 moved",
		"owner facility 1101050105000123: dept-power -> dept-water"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("diff output lacks %q:\n%s", want, out.String())
		}
	}
	if err := registryDiff(&out, "demo", filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "new:") {
		t.Errorf("a missing NEW directory: %v, want an error naming it", err)
	}
}
