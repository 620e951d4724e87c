package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gridwatch/gridwatch/cloud/broker"
)

func init() {
	commands["devices"] = func(_ context.Context, args []string) error { return devicesCmd(os.Stdout, args) }
}

const devicesUsage = `usage:
  gridwatch-cloud devices add --credentials FILE --secrets DIR DEVICE...   new password per box (DIR/DEVICE.password)
  gridwatch-cloud devices remove --credentials FILE DEVICE...
  gridwatch-cloud devices list --credentials FILE
  gridwatch-cloud devices mosquitto-acl --credentials FILE --out DIR [--service gridwatch-cloud]`

// devicesCmd manages the boxes' broker credentials: one file in
// mosquitto_passwd format that serve --devices reads for the embedded broker
// and mosquitto-acl turns into a production Mosquitto's password file and ACL.
func devicesCmd(w io.Writer, args []string) error {
	if len(args) == 0 {
		return errors.New(devicesUsage)
	}
	fs := flag.NewFlagSet("devices "+args[0], flag.ContinueOnError)
	credsPath := fs.String("credentials", "", "device credentials file (mosquitto_passwd format)")
	secrets := fs.String("secrets", "", "add: directory for each box's password file")
	out := fs.String("out", "", "mosquitto-acl: directory for passwd, acl, gridwatch.conf, service.password")
	service := fs.String("service", broker.DefaultServiceIdentity, "mosquitto-acl: the cloud's user name")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *credsPath == "" {
		return fmt.Errorf("devices %s: --credentials FILE is required", args[0])
	}
	load := func(mayBeNew bool) (*broker.Credentials, error) {
		c, err := broker.LoadCredentials(*credsPath)
		if mayBeNew && errors.Is(err, os.ErrNotExist) {
			return broker.NewCredentials(), nil
		}
		return c, err
	}
	switch args[0] {
	case "add":
		if *secrets == "" || fs.NArg() == 0 {
			return errors.New("devices add: want --secrets DIR and at least one DEVICE")
		}
		c, err := load(true)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(*secrets, 0o700); err != nil {
			return err
		}
		for _, id := range fs.Args() {
			pw, err := c.Set(id)
			if err != nil {
				return fmt.Errorf("devices add: %w", err)
			}
			p := filepath.Join(*secrets, id+".password")
			if err := broker.WriteSecret(p, pw); err != nil {
				return err
			}
			fmt.Fprintf(w, "%s: new password in %s (the box's broker.password_file; user name %s)\n", id, p, id)
		}
		return c.Write(*credsPath)
	case "remove":
		c, err := load(false)
		if err != nil {
			return err
		}
		for _, id := range fs.Args() {
			if !c.Remove(id) {
				return fmt.Errorf("devices remove: %s is not in %s", id, *credsPath)
			}
		}
		return c.Write(*credsPath)
	case "list":
		c, err := load(false)
		if err != nil {
			return err
		}
		for _, id := range c.Devices() {
			fmt.Fprintln(w, id)
		}
		return nil
	case "mosquitto-acl":
		if *out == "" {
			return errors.New("devices mosquitto-acl: --out DIR is required")
		}
		c, err := load(false)
		if err != nil {
			return err
		}
		if _, err := broker.MosquittoFiles(*out, c, *service); err != nil {
			return fmt.Errorf("devices mosquitto-acl: %w", err)
		}
		fmt.Fprintf(w, "wrote %s/{%s,%s,%s,%s} for %d boxes: add `include_dir` or copy %s into mosquitto.conf "+
			"(files readable by the mosquitto user); run the cloud with --broker-user %s --broker-password-file %s\n",
			*out, broker.MosquittoPasswdFile, broker.MosquittoACLFile, broker.MosquittoConfFile, broker.ServicePasswordFile,
			len(c.Devices()), broker.MosquittoConfFile, *service, filepath.Join(*out, broker.ServicePasswordFile))
		return nil
	}
	return fmt.Errorf("devices: unknown subcommand %q\n%s", args[0], devicesUsage)
}
