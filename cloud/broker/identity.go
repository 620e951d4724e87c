package broker

import (
	"bufio"
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gridwatch/gridwatch/edge/wire"
)

// Device credentials are kept in Mosquitto's own password-file format
// (`id:$7$101$salt$hash`, PBKDF2-SHA512, as mosquitto_passwd 2.0 writes it),
// so the same file authenticates boxes at the embedded broker and, copied
// next to its ACL (MosquittoFiles), at a production Mosquitto.

// mosquitto_passwd 2.0's parameters for the $7$ format.
const (
	pbkdf2Iterations = 101
	saltLen          = 12
	hashLen          = 64
)

// Credentials maps device ids to password hashes.
type Credentials struct {
	hashes map[string]string // id → "$7$..."
}

// NewCredentials returns an empty set.
func NewCredentials() *Credentials { return &Credentials{hashes: map[string]string{}} }

// LoadCredentials reads a password file. Every line is `device-id:$7$...`;
// blank lines and lines starting with # are skipped. A bad line is an error
// naming the file and line.
func LoadCredentials(path string) (*Credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("device credentials: %w", err)
	}
	c := NewCredentials()
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, hash, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want device-id:$7$... (a mosquitto_passwd line)", path, n)
		}
		if err := wire.ValidDeviceID(id); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if _, _, err := parseHash(hash); err != nil {
			return nil, fmt.Errorf("%s:%d: device %s: %w", path, n, id, err)
		}
		if _, dup := c.hashes[id]; dup {
			return nil, fmt.Errorf("%s:%d: device %s is listed twice", path, n, id)
		}
		c.hashes[id] = hash
	}
	return c, sc.Err()
}

// Devices lists the device ids, sorted.
func (c *Credentials) Devices() []string {
	ids := make([]string, 0, len(c.hashes))
	for id := range c.hashes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Set gives a device a new random password, replacing any old one, and
// returns the password (the only time it exists in clear).
func (c *Credentials) Set(device string) (string, error) {
	if err := wire.ValidDeviceID(device); err != nil {
		return "", err
	}
	pw := NewPassword()
	c.hashes[device] = HashPassword(pw)
	return pw, nil
}

// Remove forgets a device; it reports whether it was there.
func (c *Credentials) Remove(device string) bool {
	_, ok := c.hashes[device]
	delete(c.hashes, device)
	return ok
}

// Check reports whether password is the device's.
func (c *Credentials) Check(device, password string) bool {
	h, ok := c.hashes[device]
	return ok && CheckPassword(h, password)
}

// Write saves the credentials atomically with mode 0600.
func (c *Credentials) Write(path string) error {
	// No comment line: mosquitto_passwd calls a file with one corrupt.
	var b strings.Builder
	for _, id := range c.Devices() {
		b.WriteString(id + ":" + c.hashes[id] + "\n")
	}
	return writeSecret(path, b.String())
}

// NewPassword returns a random password of 32 URL-safe characters.
func NewPassword() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// HashPassword hashes a password the way mosquitto_passwd 2.0 does ($7$).
func HashPassword(password string) string {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	return formatHash(salt, derive(password, salt, pbkdf2Iterations))
}

// CheckPassword compares a password with a $7$ hash in constant time.
func CheckPassword(hash, password string) bool {
	salt, iter, err := parseHash(hash)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(formatHashIter(salt, iter, derive(password, salt, iter))), []byte(hash)) == 1
}

func derive(password string, salt []byte, iter int) []byte {
	k, err := pbkdf2.Key(sha512.New, password, salt, iter, hashLen)
	if err != nil {
		panic(err) // only for parameters FIPS mode refuses; ours are fixed
	}
	return k
}

func formatHash(salt, key []byte) string { return formatHashIter(salt, pbkdf2Iterations, key) }

func formatHashIter(salt []byte, iter int, key []byte) string {
	return "$7$" + strconv.Itoa(iter) + "$" + base64.StdEncoding.EncodeToString(salt) + "$" + base64.StdEncoding.EncodeToString(key)
}

// parseHash checks a "$7$iter$salt$hash" string and returns salt and iterations.
func parseHash(h string) ([]byte, int, error) {
	f := strings.Split(h, "$")
	if len(f) != 5 || f[0] != "" || f[1] != "7" {
		return nil, 0, errors.New("password hash: want $7$ITERATIONS$SALT$HASH (mosquitto_passwd 2.0)")
	}
	iter, err := strconv.Atoi(f[2])
	if err != nil || iter < 1 {
		return nil, 0, fmt.Errorf("password hash: iterations %q is not a positive number", f[2])
	}
	salt, err := base64.StdEncoding.DecodeString(f[3])
	if err != nil || len(salt) == 0 {
		return nil, 0, errors.New("password hash: the salt is not base64")
	}
	key, err := base64.StdEncoding.DecodeString(f[4])
	if err != nil || len(key) != hashLen {
		return nil, 0, fmt.Errorf("password hash: want a base64 %d-byte PBKDF2-SHA512 key", hashLen)
	}
	return salt, iter, nil
}

// ReadSecret reads a password file of one line (as boxes and the cloud keep
// their own password), refusing an empty one.
func ReadSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s: empty password file", path)
	}
	return s, nil
}

// writeSecret writes a file only its owner can read, atomically.
func writeSecret(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// WriteSecret writes a one-line password file readable only by its owner.
func WriteSecret(path, password string) error { return writeSecret(path, password+"\n") }
