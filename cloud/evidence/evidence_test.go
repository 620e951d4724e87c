package evidence

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"testing"
)

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func TestPut(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	jpeg := []byte("\xff\xd8\xff\xe0 fake jpeg body")
	good := sum(jpeg)
	tests := []struct {
		name    string
		sum     string
		body    []byte
		created bool
		err     error
	}{
		{"first upload", good, jpeg, true, nil},
		{"retry is harmless", good, jpeg, false, nil},
		{"wrong content", sum([]byte("other")), jpeg, false, ErrHashMismatch},
		{"bad name", "../../etc/passwd", jpeg, false, ErrBadName},
		{"upper-case name", "AB" + good[2:], jpeg, false, ErrBadName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created, err := s.Put(tt.sum, bytes.NewReader(tt.body))
			if !errors.Is(err, tt.err) || created != tt.created {
				t.Fatalf("Put = %v, %v; want %v, %v", created, err, tt.created, tt.err)
			}
		})
	}
	p, err := s.Path(good)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, jpeg) {
		t.Fatal("stored bytes differ")
	}
	if s.Has(sum([]byte("other"))) {
		t.Fatal("a rejected upload was kept")
	}
}
