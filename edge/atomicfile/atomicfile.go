// Package atomicfile writes files so that a crash or power loss leaves
// either the old file or the whole new one, never a torn one: write a hidden
// temporary file (".tmp-*") in the same directory, fsync it, rename it over
// the target, fsync the directory. Readers of such directories skip and may
// delete ".tmp-*" leftovers.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data durably.
func Write(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
