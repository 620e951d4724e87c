package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gridwatch/gridwatch/cloud/broker"
)

func TestDevicesCommand(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "etc", "devices.passwd") // a directory that does not exist yet
	var out strings.Builder
	if err := devicesCmd(&out, []string{"add", "--credentials", creds, "--secrets", filepath.Join(dir, "boxes"), "box-a", "box-b"}); err != nil {
		t.Fatal(err)
	}
	pw, err := broker.ReadSecret(filepath.Join(dir, "boxes", "box-a.password"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := broker.LoadCredentials(creds)
	if err != nil || !c.Check("box-a", pw) {
		t.Fatalf("box-a's written password does not check against the credentials file (%v)", err)
	}
	if err := devicesCmd(&out, []string{"remove", "--credentials", creds, "box-b"}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	devicesCmd(&out, []string{"list", "--credentials", creds})
	if out.String() != "box-a\n" {
		t.Fatalf("list after removing box-b = %q", out.String())
	}
	if err := devicesCmd(&out, []string{"mosquitto-acl", "--credentials", creds, "--out", filepath.Join(dir, "mq")}); err != nil {
		t.Fatal(err)
	}
	acl, _ := os.ReadFile(filepath.Join(dir, "mq", broker.MosquittoACLFile))
	if !strings.Contains(string(acl), "pattern write gridwatch/v1/dev/%u/report") {
		t.Errorf("acl lacks the per-device write pattern:\n%s", acl)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"add", "--secrets", dir, "box-a"}, "--credentials FILE is required"},
		{[]string{"add", "--credentials", creds, "--secrets", dir, "Bad_Box"}, `device id "Bad_Box"`},
		{[]string{"remove", "--credentials", creds, "box-z"}, "box-z is not in"},
		{[]string{"list", "--credentials", filepath.Join(dir, "none")}, "no such file"},
		{[]string{"rotate", "--credentials", creds}, "unknown subcommand"},
	} {
		if err := devicesCmd(&out, tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("devices %v: %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
