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
